"""Peer: pyagentx3 0.1.4 as published serving the VIP table cells of a cells file.

    python bench/peers/pyagentx3_peer.py CELLS_FILE AGENTX_SOCKET

One `Updater` sets every cell once (freq 3600 s, so no refresh during a walk)
and `Agent.start()` runs pyagentx3's own protocol loop. Nothing is patched.
Prints "ready" and serves until killed (its loop never returns on its own).
"""

from __future__ import annotations

import pickle
import sys

import pyagentx3


def main() -> None:
    cells_file, socket_path = sys.argv[1], sys.argv[2]
    with open(cells_file, "rb") as f:
        data = pickle.load(f)
    base = data["table_oid"]  # the VIP table: entries are base.1.<col>.<index>
    cells = [(f"1.{col}.{idx}", typ, value) for col, idx, typ, value in data["cells"]]

    class Up(pyagentx3.Updater):
        def update(self) -> None:
            for name, typ, value in cells:
                self._data[name] = {"name": name, "type": typ, "value": value}

    class Agent(pyagentx3.Agent):
        def setup(self) -> None:
            self.register(base, Up, freq=3600)

    print("ready", flush=True)
    Agent(socket_path=socket_path).start()


if __name__ == "__main__":
    main()
