"""The real agent as a process (`python -m agentx_lb run ...`) for fault and load tests.

`AgentProc` starts the agent wired to an emulated VPP and a private snmpd (or
any socket paths), collects its stderr line by line in a reader thread (with a
monotonic timestamp per line), measures its CPU and RSS from /proc, sends
signals and times the exit. `Served` reads what the agent serves through
snmpd (scalars, VIP rows, one column) as plain Python values. `FakeMaster` is
a minimal AgentX master that records the PDUs a subagent sends (to see its
Close). Shared by tests/test_faults*.py, tests/test_soak.py and
bench/bench_faults.py; nothing here asserts, callers do.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from agentx_lb.oids import (
    AGENT,
    DEFAULT_ROOT,
    AgentScalar,
    VipColumn,
    format_oid,
)
from agentx_lb.oids import VIP_ENTRY as _VIP_ENTRY
from agentx_lb.snmpd import PrivateSnmpd, SnmpError

ROOT = format_oid(DEFAULT_ROOT)
SCALARS = format_oid(DEFAULT_ROOT + AGENT)
VIP_ENTRY = format_oid(DEFAULT_ROOT + _VIP_ENTRY)
# Sub-ids as plain ints (they go into OID text): the scalars and VIP columns
# the process tests read.
CONNECTED, VERSION, VIP_COUNT, LAST_CHANGE, TABLE_AGE = (
    int(AgentScalar.VPP_CONNECTED),
    int(AgentScalar.VPP_VERSION),
    int(AgentScalar.VIP_COUNT),
    int(AgentScalar.VIP_TABLE_LAST_CHANGE),
    int(AgentScalar.TABLE_AGE),
)
SCRAPE_FAILURES, CONSECUTIVE_FAILURES, LAST_ERROR = (
    int(AgentScalar.SCRAPE_FAILURES),
    int(AgentScalar.CONSECUTIVE_FAILURES),
    int(AgentScalar.LAST_ERROR),
)
COL_NAME, COL_ADDRESS, COL_NEXT, COL_FIRST, COL_UNTRACKED, COL_DISC = (
    int(VipColumn.NAME),
    int(VipColumn.ADDRESS),
    int(VipColumn.NEXT_PACKETS),
    int(VipColumn.FIRST_PACKETS),
    int(VipColumn.UNTRACKED_PACKETS),
    int(VipColumn.DISCONTINUITY_TIME),
)

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_LINE = re.compile(r"^\.([\d.]+) = (?:([\w-]+): )?(.*)$")

T = TypeVar("T")


def child_env() -> dict[str, str]:
    """The caller's environment without AGENTX_LB_* or journald hints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTX_LB_")}
    env.pop("JOURNAL_STREAM", None)
    return env


def wait_until(fn: Callable[[], T | None], timeout_s: float, step_s: float = 0.05) -> T:
    """Poll `fn` until it returns something truthy; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last={last!r})")
        time.sleep(step_s)


class AgentProc:
    """The agent as a child process; stderr collected in the background."""

    def __init__(
        self,
        *,
        api_socket: str,
        stats_socket: str,
        agentx_socket: str,
        state_dir: str,
        interval_s: float = 1.0,
        vpp_timeout_s: float = 0.5,
        log_level: str = "debug",
        extra: Sequence[str] = (),
    ) -> None:
        args = [
            "run",
            "--vpp-api-socket", api_socket,
            "--vpp-stats-socket", stats_socket,
            "--agentx-socket", agentx_socket,
            "--state-dir", state_dir,
            "--interval", f"{interval_s:g}",
            "--vpp-timeout", f"{vpp_timeout_s:g}",
            "--log-level", log_level,
            *extra,
        ]  # fmt: skip
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentx_lb", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="agent-stderr", daemon=True)
        self._reader.start()

    @classmethod
    def for_vpp(cls, vpp_dir: str, agentx_socket: str, state_dir: str, **kw: Any) -> AgentProc:
        return cls(
            api_socket=os.path.join(vpp_dir, "api.sock"),
            stats_socket=os.path.join(vpp_dir, "stats.sock"),
            agentx_socket=agentx_socket,
            state_dir=state_dir,
            **kw,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()
        self.proc.stderr.close()

    # ---- the log

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(text for _, text in self.lines)

    def mark(self) -> int:
        """A position in the log; `since(mark)` returns the lines after it."""
        with self._cond:
            return len(self.lines)

    def since(self, mark: int = 0) -> list[str]:
        with self._cond:
            return [text for _, text in self.lines[mark:]]

    def count(self, pattern: str, mark: int = 0) -> int:
        rx = re.compile(pattern)
        return sum(1 for line in self.since(mark) if rx.search(line))

    def wait_for(self, pattern: str, timeout_s: float = 15.0, mark: int = 0) -> tuple[float, str]:
        """(monotonic time, line) of the first line after `mark` matching `pattern`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        i = mark
        with self._cond:
            while True:
                while i < len(self.lines):
                    at, text = self.lines[i]
                    i += 1
                    if rx.search(text):
                        return at, text
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no log line {pattern!r} within {timeout_s}s: {self.log[-3000:]}"
                    )
                self._cond.wait(min(left, 0.1))

    # ---- /proc

    def cpu_s(self) -> float:
        """User + system CPU seconds of the agent so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_fraction(self, seconds: float) -> float:
        """Share of one core the agent used over the next `seconds`."""
        c0, t0 = self.cpu_s(), time.monotonic()
        time.sleep(seconds)
        return (self.cpu_s() - c0) / (time.monotonic() - t0)

    # ---- lifecycle

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> tuple[int, float]:
        """Send `sig`; (exit status, seconds until the process was gone)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout_s)
        elapsed = time.monotonic() - t0
        self._reader.join(5)
        return rc, elapsed

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._reader.join(5)


# ---------------------------------------------------------------- reading via snmpd


def parse_walk(out: str) -> dict[str, tuple[str, str]]:
    """`snmpwalk -On` output -> {dotted OID without the leading dot: (type, text)}."""
    result: dict[str, tuple[str, str]] = {}
    last = None
    for line in out.splitlines():
        m = _LINE.match(line)
        if m is None:
            if last is not None:  # a string value with a newline in it
                t, v = result[last]
                result[last] = (t, v + "\n" + line)
            continue
        last = m.group(1)
        result[last] = (m.group(2) or "", m.group(3).strip())
    return result


def _value(typ: str, text: str) -> int | str:
    if typ in ("STRING", "Hex-STRING"):
        return text[1:-1] if text.startswith('"') and text.endswith('"') else text
    if typ == "Timeticks":
        return int(text.split("(")[1].split(")")[0])
    if typ in ("INTEGER", "Gauge32", "Counter64", "Counter32", "Unsigned32"):
        return int(text.split("(")[-1].rstrip(")").split()[0])
    return text


class Served:
    """What the agent serves, read through snmpd with net-snmp's tools."""

    def __init__(self, snmpd: PrivateSnmpd) -> None:
        self.snmpd = snmpd

    def scalars(self) -> dict[int, int | str]:
        """{scalar sub-id: value}; {} when snmpd or the agent does not answer."""
        try:
            out = self.snmpd.walk(SCALARS)
        except SnmpError:
            return {}
        got: dict[int, int | str] = {}
        for oid, (typ, text) in parse_walk(out).items():
            if oid.startswith(SCALARS + "."):
                sub = int(oid[len(SCALARS) + 1 :].split(".")[0])
                got[sub] = _value(typ, text)
        return got

    def column(self, col: int) -> dict[int, int | str]:
        """{vip index: value} of one VIP column (bulkwalk); {} on any error."""
        base = f"{VIP_ENTRY}.{col}"
        try:
            out = self.snmpd.bulkwalk(base)
        except SnmpError:
            return {}
        got: dict[int, int | str] = {}
        for oid, (typ, text) in parse_walk(out).items():
            if oid.startswith(base + "."):
                got[int(oid[len(base) + 1 :])] = _value(typ, text)
        return got

    def names(self) -> dict[int, int | str]:
        return self.column(COL_NAME)

    def numbers(self, col: int) -> dict[int, int]:
        """column() of an integer column (counters, TimeStamps): {vip index: int}."""
        return {index: num(value) for index, value in self.column(col).items()}


def num(value: int | str) -> int:
    """An integer value read by Served (a counter, a TimeStamp, a count)."""
    assert isinstance(value, int), value
    return value


# ---------------------------------------------------------------- fake AgentX master

_RESPONSE, _OPEN, _REGISTER, CLOSE_PDU, NOTIFY_PDU = 18, 1, 3, 2, 12


def read_pdu(conn: socket.socket) -> bytes | None:
    """One whole AgentX PDU (header and payload) from `conn`; None at end of stream."""
    buf = b""
    while len(buf) < 20:
        chunk = conn.recv(20 - len(buf))
        if not chunk:
            return None
        buf += chunk
    n = struct.unpack_from("!I", buf, 16)[0]
    while len(buf) < 20 + n:
        chunk = conn.recv(20 + n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def respond(conn: socket.socket, pdu: bytes, error: int = 0) -> None:
    """The master's Response to `pdu` (sysUpTime 42, `error`)."""
    _, _, _, _, _, tid, pid, _ = struct.unpack_from("!BBBBIIII", pdu)
    body = struct.pack("!IHH", 0, error, 0)
    conn.sendall(struct.pack("!BBBBIIII", 1, _RESPONSE, 0x10, 0, 42, tid, pid, len(body)) + body)


class ScriptedMaster:
    """A master the test drives step by step: `accept()` takes one subagent and
    answers its Open and Register (`register_error`), then the test reads its
    PDUs (`read_pdu`) and answers them (`respond`). `FakeMaster` is the one
    that runs by itself."""

    def __init__(self, path: str, register_error: int = 0) -> None:
        self.path = path
        self.register_error = register_error
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(5)

    def read_pdu(self, conn: socket.socket) -> bytes:
        pdu = read_pdu(conn)
        if pdu is None:
            raise ConnectionError("eof")
        return pdu

    def respond(self, conn: socket.socket, pdu: bytes, error: int = 0) -> None:
        respond(conn, pdu, error)

    def accept(self) -> tuple[socket.socket, bytes, bytes]:
        conn, _ = self.srv.accept()
        conn.settimeout(5)
        open_pdu = self.read_pdu(conn)
        assert open_pdu[1] == 1
        self.respond(conn, open_pdu)
        reg = self.read_pdu(conn)
        assert reg[1] == 3
        self.respond(conn, reg, self.register_error)
        return conn, open_pdu, reg

    def close(self) -> None:
        self.srv.close()


class FakeMaster:
    """Accepts one subagent at a time, answers Open/Register, records every PDU type.

    `notify_error`: answer each Notify with a Response carrying this error
    (0: none); None: leave Notifies unanswered.
    """

    def __init__(self, path: str, *, notify_error: int | None = 0) -> None:
        self.path = path
        self.notify_error = notify_error
        self.pdus: list[tuple[int, bytes]] = []  # (type, payload)
        self.sessions = 0
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(path)
        self._srv.listen(4)
        self._srv.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-master", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.2)
                self.sessions += 1
                while not self._stop.is_set():
                    try:
                        pdu = read_pdu(conn)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if pdu is None:
                        break
                    self.pdus.append((pdu[1], pdu[20:]))
                    try:
                        if pdu[1] in (_OPEN, _REGISTER):
                            respond(conn, pdu)
                        elif pdu[1] == NOTIFY_PDU and self.notify_error is not None:
                            respond(conn, pdu, self.notify_error)
                    except OSError:
                        pass  # the subagent already went (its Close may still be buffered)

    @property
    def registered(self) -> bool:
        return any(t == _REGISTER for t, _ in self.pdus)

    @property
    def notifies(self) -> list[bytes]:
        """The payload (VarBindList) of every Notify PDU received."""
        return [payload for t, payload in self.pdus if t == NOTIFY_PDU]

    @property
    def closes(self) -> list[int]:
        """The reason byte of every Close PDU received."""
        return [payload[0] for t, payload in self.pdus if t == CLOSE_PDU]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._srv.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    """Agents a test starts; killed at teardown, their logs shown if it failed."""
    started: list[AgentProc] = []
    yield started
    for agent in started:
        agent.kill()
        # pytest shows captured stderr only for a failed test.
        sys.stderr.write(f"--- agent pid={agent.pid} log:\n{agent.log[-6000:]}\n")
