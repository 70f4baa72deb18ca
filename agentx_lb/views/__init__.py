"""The operator's own views of one scrape: `agentx-lb show` and `agentx-lb top`.

`scrape` reads VPP the way `agentx-lb dump` does (VppSource.read() + reduce);
`show` and `rates` are pure (rows in, text or numbers out); `top` is the only
module that touches the terminal (curses).
"""
