"""`agentx-lb show` and `agentx-lb top` as an operator runs them, against the emulated VPP.

`show` runs as a process with a pipe for stdout: the same numbers as `dump`,
and no escape sequence. `top` runs in a real terminal: a private tmux server
(its own socket) runs a shell, the test types the command, reads the screen
with `capture-pane` and types keys. The emulator's counters grow at known
rates with the monotonic clock (a traffic thread), so the rates on screen
must be those rates; a VPP restart must show as `reset`, never as a negative
or huge number; a small terminal must say so; q, Ctrl-C and SIGTERM must give
the shell prompt back with the terminal in its normal modes.

The set-up installs tmux (setup.sh, test packages): a missing tmux fails the
run, it is never a silent skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from agentharness import child_env, wait_until
from agentx_lb.emulator import EmulatedVpp

pytestmark = pytest.mark.integration

PROMPT = "axlb-test$ "
WIDTH, HEIGHT = 120, 24
# Packets per second the traffic thread adds, per VIP (emulator thread 1).
FIRST_PER_S = 200  # VIP a: first session packets
NEXT_PER_S = 1000  # VIP b: packets of existing sessions
DROPS_PER_S = 50  # VIP c: no server configured
TOLERANCE = 0.25  # share of the rate a frame may be off (scheduling of two processes)


def _flags(vpp: EmulatedVpp) -> list[str]:
    return ["--vpp-api-socket", vpp.api_socket, "--vpp-stats-socket", vpp.stats_socket]


# ---------------------------------------------------------------- show


@pytest.fixture
def static_vpp(make_vpp: Callable[..., EmulatedVpp]) -> EmulatedVpp:
    vpp = make_vpp(workers=2, cli_style="25.10")
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_backend(a, "10.0.0.1")
    vpp.add_backend(a, "10.0.0.2")
    vpp.remove_backend(a, "10.0.0.2")
    b = vpp.add_vip("2001:db8::80/128", protocol=6, port=443, encap="gre6")
    vpp.add_backend(b, "2001:db8:1::1")
    vpp.add_vip("198.51.100.0/24")
    vpp.traffic(a, thread=1, next_packets=1234567, first_packets=8901, octets_per_packet=100)
    vpp.traffic(b, thread=2, next_packets=42, untracked_packets=7)
    return vpp


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentx_lb", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )


def test_show_prints_what_dump_prints(static_vpp: EmulatedVpp) -> None:
    dump = _cli("dump", *_flags(static_vpp))
    assert dump.returncode == 0, dump.stderr
    shown = _cli("show", "--backends", *_flags(static_vpp))
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    assert "\x1b" not in shown.stdout  # stdout is a pipe: no escapes at all
    doc = json.loads(dump.stdout)
    lines = shown.stdout.splitlines()
    assert lines[0] == "VPP 25.10-release: 3 VIPs, 3 backends (2 active)"
    vip_lines = {int(ln.split()[0]): ln for ln in lines[3:6]}
    assert sorted(vip_lines) == [v["index"] for v in doc["vips"]]
    for vip in doc["vips"]:
        line = vip_lines[vip["index"]]
        assert line.split()[1] == vip["name"].split()[0]
        numbers = line.split()[-6:]
        want = [
            vip[k]
            for k in (
                "next_packets",
                "first_packets",
                "untracked_packets",
                "no_server_packets",
                "route_packets",
                "route_octets",
            )
        ]
        assert numbers == ["-" if n is None else f"{n:,}" for n in want], line
        assert f"{vip['active_backend_count']}/{vip['backend_count']}" in line.split()
    assert "1,234,567" in vip_lines[1]
    backend_lines = [ln.split() for ln in lines[8:]]
    assert [(b[0], b[3], b[4]) for b in backend_lines] == [
        ("1", "10.0.0.1", "used"),
        ("1", "10.0.0.2", "removed"),
        ("2", "2001:db8:1::1", "used"),
    ]


def test_show_without_vpp_is_one_line_exit_1(tmp_path: object) -> None:
    proc = _cli(
        "show",
        "--vpp-api-socket",
        f"{tmp_path}/api.sock",
        "--vpp-stats-socket",
        f"{tmp_path}/stats.sock",
        "--vpp-timeout",
        "0.5",
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentx-lb: show: cannot read VPP"), lines


def test_top_refuses_a_pipe() -> None:
    proc = _cli("top")
    assert proc.returncode == 2
    assert proc.stderr == "agentx-lb: top: needs a terminal (for a one-off, use `agentx-lb show`)\n"


# ---------------------------------------------------------------- top in tmux


class Traffic:
    """Counters = rate x seconds since the start (or the last VPP restart)."""

    def __init__(self, vpp: EmulatedVpp, a: int, b: int, c: int) -> None:
        self.vpp, self.a, self.b, self.c = vpp, a, b, c
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            with self.lock:
                s = time.monotonic() - self.t0
                self.vpp.set_counter("first session packet", 1, self.a, int(FIRST_PER_S * s))
                self.vpp.set_counter(
                    "packet from existing sessions", 1, self.b, int(NEXT_PER_S * s)
                )
                self.vpp.set_counter("no server configured", 1, self.c, int(DROPS_PER_S * s))

    def restart_vpp(self) -> None:
        with self.lock:
            self.vpp.restart(keep_vips=True)  # counters back at 0, as a VPP restart does
            self.t0 = time.monotonic()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@dataclass
class Tmux:
    socket: str
    session: str = "top"

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert proc.returncode == 0, (args, proc.stderr)
        return proc.stdout

    def screen(self) -> list[str]:
        return self.run("capture-pane", "-p", "-t", self.session).splitlines()

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def type_line(self, text: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", text)
        self.keys("Enter")

    def shell_pid(self) -> int:
        return int(self.run("display-message", "-p", "-t", self.session, "#{pane_pid}").strip())

    def at_prompt(self) -> bool:
        lines = [ln for ln in self.screen() if ln.strip()]
        return bool(lines) and lines[-1] == PROMPT.rstrip()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: the set-up installs it (./setup.sh test)")
    t = Tmux(socket=f"axlb-{os.getpid()}-{time.monotonic_ns()}")
    env = child_env()
    env.update(TERM="xterm-256color")
    proc = subprocess.run(
        [
            "tmux",
            "-L",
            t.socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            t.session,
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "bash --norc --noprofile",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    try:
        wait_until(lambda: any(ln.strip() for ln in t.screen()), 10)  # bash's own prompt
        t.type_line(f"PS1='{PROMPT}'; clear")
        wait_until(t.at_prompt, 10)
        yield t
    finally:
        subprocess.run(
            ["tmux", "-L", t.socket, "kill-server"], capture_output=True, timeout=10, check=False
        )


@pytest.fixture
def live_vpp(make_vpp: Callable[..., EmulatedVpp]) -> Iterator[tuple[EmulatedVpp, Traffic]]:
    vpp = make_vpp(workers=2, cli_style="25.10")
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_backend(a, "10.0.0.1")
    vpp.add_backend(a, "10.0.0.2")
    b = vpp.add_vip("2001:db8::80/128", protocol=6, port=443, encap="gre6")
    vpp.add_backend(b, "2001:db8:1::1")
    c = vpp.add_vip("198.51.100.0/24")  # no backend: its packets are no-server drops
    traffic = Traffic(vpp, a, b, c)
    try:
        yield vpp, traffic
    finally:
        traffic.close()


def _rows(screen: list[str]) -> dict[str, list[str]]:
    """{VIP name: [backends, first/s, drops/s, next/s, ...]} of the rate rows on screen."""
    rows = {}
    for line in screen:
        m = re.match(r"^\s*\d+ (\S+ \S+)\s+(\d+/\d+)\s+(.*)$", line)
        if m:
            rows[m[1]] = [m[2], *m[3].split()]
    return rows


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _near(text: str, want: float) -> bool:
    value = _number(text)
    return value is not None and abs(value - want) <= TOLERANCE * want


def _rates_right(screen: list[str]) -> bool:
    rows = _rows(screen)
    a, b, c = (
        rows.get(n)
        for n in ("192.0.2.1/32 tcp/80", "2001:db8::80/128 tcp/443", "198.51.100.0/24 any")
    )
    if not (a and b and c):
        return False
    return (
        a[0] == "2/2"
        and _near(a[1], FIRST_PER_S)
        and a[2] == "0"
        and a[3] == "0"
        and b[0] == "1/1"
        and b[1] == "0"
        and _near(b[3], NEXT_PER_S)
        and c[0] == "0/0"
        and _near(c[2], DROPS_PER_S)
        and c[1] == "0"
    )


def _never_wrong(screen: list[str]) -> None:
    for cells in _rows(screen).values():
        for cell in cells[1:]:
            assert not cell.startswith("-") or cell == "-", screen  # never a negative rate
            value = _number(cell)
            assert value is None or value <= 3 * NEXT_PER_S * 8, screen  # never a huge one


def _top_pid(tmux: Tmux) -> int | None:
    shell = tmux.shell_pid()
    with open(f"/proc/{shell}/task/{shell}/children") as f:
        children = f.read().split()
    return int(children[0]) if children else None


def _stty_is_sane(tmux: Tmux) -> None:
    tmux.type_line("clear; stty -a")
    words = wait_until(
        lambda: (
            " ".join(tmux.screen()).split()
            if tmux.at_prompt() and any("icanon" in ln for ln in tmux.screen())
            else None
        ),
        10,
    )
    assert "icanon" in words and "-icanon" not in words
    assert "echo" in words and "-echo" not in words


def _start_top(tmux: Tmux, vpp: EmulatedVpp) -> None:
    tmux.type_line(
        " ".join([sys.executable, "-m", "agentx_lb", "top", "--interval", "1", *_flags(vpp)])
    )
    wait_until(lambda: any(ln.startswith("agentx-lb top") for ln in tmux.screen()), 30)


def test_top_in_a_terminal(tmux: Tmux, live_vpp: tuple[EmulatedVpp, Traffic]) -> None:
    vpp, traffic = live_vpp
    _start_top(tmux, vpp)
    screen = tmux.screen()
    assert "[f]first/s*" in screen[1] and "[q]uit" in screen[1], screen

    # The rates of the known traffic, sorted by first/s (a first).
    def frame() -> list[str] | None:
        s = tmux.screen()
        _never_wrong(s)
        return s if _rates_right(s) else None

    screen = wait_until(frame, 30, step_s=0.2)
    assert next(iter(_rows(screen))) == "192.0.2.1/32 tcp/80", screen

    # d: sorted by no-server drops/s; the key line says so.
    tmux.keys("d")
    screen = wait_until(lambda: s if (s := tmux.screen()) and "[d]drops/s*" in s[1] else None, 10)
    assert next(iter(_rows(screen))) == "198.51.100.0/24 any", screen

    # A VPP restart between two scrapes: `reset` for that interval, never a number.
    traffic.restart_vpp()

    def reset_frame() -> list[str] | None:
        s = tmux.screen()
        _never_wrong(s)
        rows = _rows(s)
        return s if rows and all(cells[1:] == ["reset"] * 6 for cells in rows.values()) else None

    wait_until(reset_frame, 30, step_s=0.1)
    wait_until(frame, 30, step_s=0.2)  # then rates again, from the restarted counters

    # Too small a terminal says so; back to normal when it grows again.
    tmux.run("resize-window", "-t", tmux.session, "-x", "50", "-y", "10")
    wait_until(lambda: "terminal too small" in " ".join(tmux.screen()), 10)
    tmux.run("resize-window", "-t", tmux.session, "-x", str(WIDTH), "-y", str(HEIGHT))
    wait_until(frame, 30, step_s=0.2)

    # q: the shell prompt is back, the screen is the shell's again, modes restored.
    tmux.keys("q")
    wait_until(tmux.at_prompt, 10)
    assert not any(ln.startswith("agentx-lb top") for ln in tmux.screen())
    tmux.type_line("echo rc=$?")
    wait_until(lambda: "rc=0" in tmux.screen(), 10)
    _stty_is_sane(tmux)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_top_leaves_the_terminal_clean_on_a_signal(
    tmux: Tmux, live_vpp: tuple[EmulatedVpp, Traffic], how: str
) -> None:
    vpp, _ = live_vpp
    _start_top(tmux, vpp)
    if how == "ctrl-c":
        tmux.keys("C-c")
    else:
        pid = wait_until(lambda: _top_pid(tmux), 10)
        os.kill(pid, signal.SIGTERM)
    wait_until(tmux.at_prompt, 10)
    assert not any(ln.startswith("agentx-lb top") for ln in tmux.screen())
    tmux.type_line("echo rc=$?")
    wait_until(lambda: "rc=0" in tmux.screen(), 10)
    _stty_is_sane(tmux)
