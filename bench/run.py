"""The one-command benchmark (bench/README.md): scrape cost, serving cost, refresh, memory.

    .venv/bin/python bench/run.py            # full: 10 / 100 / 1,000 / 10,000 VIPs
    .venv/bin/python bench/run.py --quick    # smallest sizes only (CI, < ~1 min)
    .venv/bin/python bench/run.py --save     # also write bench/results/<date>-<machine>.md/.json
    .venv/bin/python bench/run.py --scale [bench_scale.py's arguments]   # the scale axis

Everything compared runs in this one run on this machine; each timed figure
is the min and median of 3. Walks: `snmpbulkwalk -Cr25` of the whole VIP table
through a private snmpd per agent (one snmpd each, all up at once, walks
interleaved), for the real agent (`python -m agentx_lb run` against the
emulated VPP), pyagentx3 0.1.4 as published and python-netsnmpagent (net-snmp's
C table helper, installed into the venv here if missing) serving the same VIP
table (bench/peers/). A walk that hits the 120 s cap is not repeated.
The refresh stall: back-to-back SNMP GETs of one VIP cell in 1 s windows
while the agent refreshes every 1 s under live traffic (the emulator moves
every counter and a quarter of the backends' flow counts once a second, so
every refresh changes the table and the counter state, as on a live load
balancer); the longest round trip of each window
(one refresh each), median over the windows, minus the median round trip with
no refresh (the absolute maxima are printed too). Prints ONE table: figure,
value, target, result.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing as mp
import os
import pickle
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, cast

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

CAP_S = 120.0
REPS = 5  # walks per agent and size; the machine is noisy
NETSNMPAGENT = "netsnmpagent==0.6.0"
CLIENT_ENV = {**os.environ, "MIBS": "", "MIBDIRS": "/dev/null"}
AGENTS = ("ours", "pyagentx3", "netsnmpagent")


# ---------------------------------------------------------------- machine and /proc


def machine() -> dict[str, Any]:
    """CPU model, cores, Python and net-snmp versions (no hostnames, no paths)."""
    model = "unknown cpu"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                model = re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
                break
    snmp = subprocess.run(
        ["snmpd", "-v"], capture_output=True, text=True, check=False, env=CLIENT_ENV
    ).stdout
    m = re.search(r"version:\s*([\d.]+)", snmp)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "net_snmp": m.group(1) if m else "unknown",
    }


def cpu_s(pid: int) -> float:
    """CPU seconds of every thread of `pid`, in nanoseconds' resolution.

    /proc/<pid>/task/*/schedstat, not /proc/<pid>/stat: the latter counts 10 ms
    ticks, too coarse for snmpd's few milliseconds during a 100-VIP walk."""
    total_ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(FileNotFoundError),  # a thread that just ended
            open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f,
        ):
            total_ns += int(f.read().split()[0])
    return total_ns / 1e9


def status_mb(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def ensure_netsnmpagent() -> None:
    probe = [sys.executable, "-c", "import netsnmpagent"]
    if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", NETSNMPAGENT], check=True)


# ---------------------------------------------------------------- SNMP probe (raw UDP GET)


def _ber(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 128:
        return bytes((tag, n)) + body
    lb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(lb))) + lb + body


def _ber_oid(oid: tuple[int, ...]) -> bytes:
    out = bytearray([40 * oid[0] + oid[1]])
    for sub in oid[2:]:
        chunk = [sub & 0x7F]
        sub >>= 7
        while sub:
            chunk.append(0x80 | (sub & 0x7F))
            sub >>= 7
        out += bytes(reversed(chunk))
    return _ber(0x06, bytes(out))


def snmp_get_packet(oid: tuple[int, ...], request_id: int) -> bytes:
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _ber(
        0xA0,
        _ber(0x02, request_id.to_bytes(4, "big"))
        + b"\x02\x01\x00\x02\x01\x00"
        + _ber(0x30, varbind),
    )
    return _ber(0x30, b"\x02\x01\x01" + _ber(0x04, b"public") + pdu)


def probe_windows(
    address: tuple[str, int], oid: tuple[int, ...], windows: int
) -> list[list[float]]:
    """`probe_latency` in back-to-back 1 s windows (each holds one refresh at a 1 s interval)."""
    return [probe_latency(address, oid, 1.0) for _ in range(windows)]


def window_stall_ms(windows: list[list[float]]) -> float:
    """Median over the windows of each window's longest round trip, in ms.

    Every 1 s window while refreshing every 1 s holds one table swap, so each
    window's maximum is that refresh's worst delay; the median of them is the
    stall a refresh causes, not the one rare hiccup of this shared VM (host
    CPU steal), which `max` would report.
    """
    return 1000 * statistics.median(max(w) for w in windows)


def probe_latency(address: tuple[str, int], oid: tuple[int, ...], duration_s: float) -> list[float]:
    """Round trips (s) of back-to-back GETs for `duration_s`; a lost one counts 2 s."""
    lat = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        end = time.monotonic() + duration_s
        rid = 1 << 24  # 4 significant octets: the reply encodes it exactly like this
        while time.monotonic() < end:
            rid += 1
            t0 = time.perf_counter()
            s.sendto(snmp_get_packet(oid, rid), address)
            try:
                while True:  # skip late answers to earlier probes
                    data = s.recv(65536)
                    if rid.to_bytes(4, "big") in data:
                        break
                lat.append(time.perf_counter() - t0)
            except TimeoutError:
                lat.append(2.0)
            time.sleep(0.001)
    return lat


# ---------------------------------------------------------------- processes


class AgentProc(subprocess.Popen[bytes]):
    """An agent's process; `state_file` is where ours writes its counter state."""

    state_file = ""  # the peers keep no state


@dataclass
class Served:
    kind: str
    snmpd: Any
    proc: AgentProc | None = None
    walks: list[dict[str, float]] = field(default_factory=list)
    capped: bool = False

    @property
    def agent(self) -> AgentProc:
        """`proc`, started."""
        assert self.proc is not None, self.kind
        return self.proc


def _oid(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def agent_cmd(
    emu: tuple, agentx_socket: str, state_dir: str, interval_s: float, *extra: str
) -> list[str]:
    """`agentx-lb run` against the emulator child `emu`, quiet, as every bench runs it."""
    stats_sock, api_sock, api_dir, _ = emu
    return [
        sys.executable, "-m", "agentx_lb", "run",
        "--vpp-stats-socket", stats_sock, "--vpp-api-socket", api_sock,
        "--vpp-api-dir", api_dir, "--agentx-socket", agentx_socket,
        "--interval", f"{interval_s:g}", "--vpp-timeout", "30",
        "--state-dir", state_dir, "--log-level", "warning", *extra,
    ]  # fmt: skip


def bulkwalk_cmd(address: str, oid: str) -> list[str]:
    """The bulk walk every bench times: 25 repetitions, numeric OIDs."""
    return ["snmpbulkwalk", "-v2c", "-c", "public", "-t", "5", "-r", "2", "-On", "-Cr25",
            address, oid]  # fmt: skip


def start_agent(
    kind: str, snmpd: Any, work: str, emu: tuple, cells_file: str, interval_s: float
) -> AgentProc:
    if kind == "ours":
        state = tempfile.mkdtemp(prefix="state-", dir=work)
        cmd = agent_cmd(emu, snmpd.agentx_socket, state, interval_s)
    else:
        cmd = [
            sys.executable,
            os.path.join(HERE, "peers", f"{kind}_peer.py"),
            cells_file,
            snmpd.agentx_socket,
        ]
    proc = AgentProc(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    proc.state_file = os.path.join(state, "counters.json") if kind == "ours" else ""
    return proc


class LiveTraffic:
    """Once a second: every VIP's counters move and a quarter of the backends'
    flow counts change (the emulator child's "tick"); the counter-state file's
    replacements are counted meanwhile (a write is a rename: a new inode)."""

    def __init__(self, conn: Any, state_file: str) -> None:
        import threading

        self.conn, self.state_file = conn, state_file
        self.ticks = self.writes = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._tick, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.conn.send("tick")
            self.conn.recv()
            self.ticks += 1

    def _watch(self) -> None:
        last = None
        while not self._stop.wait(0.05):
            try:
                ino = os.stat(self.state_file).st_ino
            except FileNotFoundError:
                continue
            if ino != last:
                self.writes += last is not None
                last = ino

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def state_write_ms(emu: tuple) -> tuple[float, int]:
    """(ms to write the counter state of one scrape, its size in bytes): min of 3."""
    from agentx_lb.reduce import reduce
    from agentx_lb.state import save_state
    from agentx_lb.vpp.source import VppSource

    stats_sock, api_sock, api_dir, _ = emu
    src = VppSource(stats_sock, api_sock, api_dir, timeout_s=30.0)
    try:
        _, state = reduce(src.read(), None, 0)
    finally:
        src.close()
    d = tempfile.mkdtemp(prefix="axlb-state-", dir="/tmp")
    try:
        path = os.path.join(d, "counters.json")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            save_state(path, state)
            times.append((time.perf_counter() - t0) * 1000)
        return min(times), os.path.getsize(path)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def wait_serving(snmpd: Any, oid: str, proc: AgentProc, timeout_s: float = 120) -> None:
    cmd = cast(list[str], proc.args)  # start_agent gives a list
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited rc={proc.returncode}: {cmd[:3]}")
        out = subprocess.run(
            ["snmpget", "-v2c", "-c", "public", "-t", "1", "-r", "0", "-On", snmpd.address, oid],
            capture_output=True,
            text=True,
            check=False,
            env=CLIENT_ENV,
        ).stdout
        if "No Such" not in out and " = " in out:
            return
        time.sleep(0.2)
    raise RuntimeError(f"agent not serving {oid} after {timeout_s}s: {cmd[:3]}")


def stop_proc(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def walk(s: Served, table_oid: str, expected: int) -> None:
    """One capped bulk walk; records wall, varbinds, snmpd and agent CPU; checks order."""
    c0, a0, t0 = cpu_s(s.snmpd.pid), cpu_s(s.agent.pid), time.perf_counter()
    try:
        proc = subprocess.run(
            bulkwalk_cmd(s.snmpd.address, table_oid),
            capture_output=True,
            text=True,
            timeout=CAP_S,
            check=False,
            env=CLIENT_ENV,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        got = (out.decode() if isinstance(out, bytes) else out).count("\n")
        s.capped = True
        # The walk's per-varbind cost only grows along it (pyagentx3's O(n)
        # GETNEXT), so the rate of its first `got` varbinds extrapolated to all
        # of them is a lower bound of its full wall time.
        s.walks.append(
            {
                "wall": CAP_S,
                "varbinds": float(got),
                "wall_lower_bound": CAP_S * expected / max(got, 1),
                "snmpd_cpu": cpu_s(s.snmpd.pid) - c0,
                "agent_cpu": cpu_s(s.agent.pid) - a0,
            }
        )
        return
    wall = time.perf_counter() - t0
    snmpd_cpu, agent_cpu = cpu_s(s.snmpd.pid) - c0, cpu_s(s.agent.pid) - a0
    lines = proc.stdout.splitlines()
    prev: tuple[int, ...] = ()
    for line in lines:
        oid = _oid(line.split(" ", 1)[0].lstrip("."))
        if oid <= prev:
            raise RuntimeError(f"{s.kind}: walk not strictly increasing at {line[:80]}")
        prev = oid
    if len(lines) != expected or proc.returncode != 0:
        raise RuntimeError(
            f"{s.kind}: walk returned {len(lines)} of {expected} varbinds "
            f"rc={proc.returncode} {proc.stderr.strip()[:200]}"
        )
    s.walks.append(
        {"wall": wall, "varbinds": len(lines), "snmpd_cpu": snmpd_cpu, "agent_cpu": agent_cpu}
    )


def summarise(s: Served) -> dict[str, float]:
    walls = [w["wall"] for w in s.walks]
    med_i = sorted(range(len(walls)), key=walls.__getitem__)[len(walls) // 2]
    med = s.walks[med_i]
    return {
        "wall_min": min(walls),
        "wall_median": med["wall"],
        "varbinds": med["varbinds"],
        "vb_per_s": med["varbinds"] / med["wall"],
        "snmpd_cpu": med["snmpd_cpu"],
        "agent_cpu": med["agent_cpu"],
        # Median over the walks of each walk's own ratio.
        "wall_per_snmpd_cpu": statistics.median(
            w["wall"] / max(w["snmpd_cpu"], 1e-6) for w in s.walks
        ),
        "wall_lower_bound": med.get("wall_lower_bound", med["wall"]),
        "capped": float(s.capped),
    }


# ---------------------------------------------------------------- one size


def _emulator(n_vips: int) -> tuple[Any, Any, tuple]:
    import bench_scrape

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=bench_scrape._serve, args=(n_vips, 0.25, child), daemon=True
    )
    proc.start()
    return proc, parent, parent.recv()


def scraped_table(emu: tuple) -> Any:
    """The table the agent would serve after one scrape of the emulator."""
    from agentx_lb.model import Snapshot
    from agentx_lb.oids import DEFAULT_ROOT
    from agentx_lb.reduce import reduce
    from agentx_lb.table import build_table
    from agentx_lb.vpp.source import VppSource

    stats_sock, api_sock, api_dir, _ = emu
    src = VppSource(stats_sock, api_sock, api_dir, timeout_s=30.0)
    try:
        rows, _ = reduce(src.read(), None, 0)
    finally:
        src.close()
    return build_table(Snapshot(rows=rows), DEFAULT_ROOT)


def _cells(emu: tuple, path: str) -> tuple[str, int, str]:
    """Scrape the emulator once and write the VIP table cells for the peers."""
    from pyagentx3.pdu import PDU

    from agentx_lb.oids import DEFAULT_ROOT, format_oid

    table = scraped_table(emu)
    base = format_oid(DEFAULT_ROOT + (1, 2))
    entry = base + ".1."
    cells = []
    for vb in table.varbinds:
        pdu = PDU()
        pdu.set_decode_buf(vb)
        v, _ = pdu.decode_value()
        if v["name"].startswith(entry):
            col, idx = (int(x) for x in v["name"][len(entry) :].split("."))
            cells.append((col, idx, v["type"], v["data"]))
    with open(path, "wb") as f:
        pickle.dump({"table_oid": base, "cells": cells}, f)
    return base, len(cells), f"{entry}{cells[0][0]}.{cells[0][1]}"


def bench_size(n: int, idle_s: float, probe_windows_n: int, log: Any) -> dict[str, Any]:
    from agentx_lb.snmpd import PrivateSnmpd

    work = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    emu_proc, emu_conn, emu = _emulator(n)
    served: dict[str, Served] = {}
    out: dict[str, Any] = {}
    try:
        cells_file = os.path.join(work, "cells.pickle")
        table_oid, expected, first = _cells(emu, cells_file)
        for kind in AGENTS:
            d = tempfile.mkdtemp(prefix=kind[:4], dir=work)
            snmpd = PrivateSnmpd(d)
            snmpd.start()
            s = served[kind] = Served(kind, snmpd)
            s.proc = start_agent(kind, snmpd, work, emu, cells_file, 3600)
        for s in served.values():
            wait_serving(s.snmpd, first, s.agent)
        log(f"  {n} VIPs: all agents serving {expected:,} VIP-table varbinds")

        # Idle: no polls, table unchanged (interval 3600 s: the first scrape is done).
        c0 = {k: cpu_s(s.agent.pid) for k, s in served.items()}
        time.sleep(idle_s)
        out["idle_cpu_pct"] = {
            k: 100 * (cpu_s(s.agent.pid) - c0[k]) / idle_s for k, s in served.items()
        }

        for rep in range(REPS):
            for s in served.values():
                if not s.capped:
                    walk(s, table_oid, expected)
            log(f"  {n} VIPs: walk round {rep + 1}/{REPS} done")
        out["walk"] = {k: summarise(s) for k, s in served.items()}
        out["rss_mb"] = {k: status_mb(s.agent.pid) for k, s in served.items()}

        ours = served["ours"]
        host, port = ours.snmpd.address.split(":")
        probe_oid = _oid(first.lstrip("."))
        static_win = probe_windows((host, int(port)), probe_oid, probe_windows_n)
        static_lat = [x for w in static_win for x in w]

        # Refreshing: the same agent with a 1 s interval, under live traffic.
        stop_proc(ours.proc)
        ours.proc = start_agent("ours", ours.snmpd, work, emu, cells_file, 1)
        wait_serving(ours.snmpd, first, ours.agent)
        live = LiveTraffic(emu_conn, ours.agent.state_file)
        time.sleep(2.5)  # let refreshes start
        writes_before, ticks_before = live.writes, live.ticks
        refresh_win = probe_windows((host, int(port)), probe_oid, probe_windows_n)
        refresh_lat = [x for w in refresh_win for x in w]
        out["state_writes"] = live.writes - writes_before
        out["traffic_ticks"] = live.ticks - ticks_before
        ours.walks, ours.capped = [], False
        for _ in range(REPS):
            walk(ours, table_oid, expected)
        live.stop()
        out["refresh_walk"] = summarise(ours)
        out["state_write_ms"], out["state_bytes"] = state_write_ms(emu)
        # Steady state: after the walks, with a scrape every second meanwhile.
        out["refresh_rss_mb"] = status_mb(ours.agent.pid)
        out["refresh_peak_rss_mb"] = status_mb(ours.agent.pid, "VmHWM")
        out["probe"] = {
            "static_median_ms": 1000 * statistics.median(static_lat),
            "static_max_ms": 1000 * max(static_lat),
            "static_window_max_ms": window_stall_ms(static_win),
            "refresh_median_ms": 1000 * statistics.median(refresh_lat),
            "refresh_max_ms": 1000 * max(refresh_lat),
            "refresh_window_max_ms": window_stall_ms(refresh_win),
            "refresh_probes": len(refresh_lat),
        }
        out["stall_ms"] = out["probe"]["refresh_window_max_ms"] - out["probe"]["static_median_ms"]
        return out
    finally:
        for s in served.values():
            stop_proc(s.proc)
            s.snmpd.stop()
        emu_conn.send("stop")
        emu_proc.join(60)
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- scrape figures


SCRAPE_PHASES = ("vpp", "parse", "reduce", "table", "cycle", "cycle_cpu", "floor", "floor_cpu")


def scrape_figures(n: int) -> dict[str, float]:
    """bench_scrape's cycle split by phase next to the bare vpp_papi floor (min, median)."""
    import bench_scrape

    rounds, first = bench_scrape._bench(n, REPS, 0.1)
    out = {"first": first}
    for k in SCRAPE_PHASES:
        out[f"{k}_min"] = min(r[k] for r in rounds)
        out[f"{k}_median"] = statistics.median(r[k] for r in rounds)
    return out


# ---------------------------------------------------------------- report


def rows_for(scrape: dict[int, dict], walks: dict[int, dict]) -> list[tuple[str, float, str, str]]:
    """(figure, value, target, result) for every figure bench/README.md lists."""
    rows: list[tuple[str, float, str, str]] = []

    def add(name: str, value: float, target: str = "", result: str = "") -> None:
        rows.append((name, value, target, result))

    names = {
        "vpp": "VPP calls",
        "parse": "parse",
        "reduce": "reduce",
        "table": "table build",
        "cycle": "whole cycle",
        "cycle_cpu": "whole cycle CPU",
        "floor": "floor (bare vpp_papi)",
        "floor_cpu": "floor CPU",
    }
    for n, r in scrape.items():
        for k in SCRAPE_PHASES:
            add(f"scrape {n:,} VIPs: {names[k]} ms, min", r[f"{k}_min"])
            add(f"scrape {n:,} VIPs: {names[k]} ms, median", r[f"{k}_median"])
        add(
            f"scrape {n:,} VIPs: cycle wall / floor wall (median)",
            r["cycle_median"] / r["floor_median"],
        )

    for n, w in walks.items():
        for k in AGENTS:
            s = w["walk"][k]
            cap = " (capped at 120 s, 1 walk)" if s["capped"] else ""
            add(f"walk {n:,} VIPs {k}: wall s min{cap}", s["wall_min"])
            add(f"walk {n:,} VIPs {k}: wall s median{cap}", s["wall_median"])
            if not s["capped"]:
                add(f"walk {n:,} VIPs {k}: varbinds/s (median)", s["vb_per_s"])
            add(f"walk {n:,} VIPs {k}: snmpd CPU s (median walk)", s["snmpd_cpu"])
            add(f"walk {n:,} VIPs {k}: agent CPU s (median walk)", s["agent_cpu"])
            add(f"walk {n:,} VIPs {k}: RSS MB after walks", w["rss_mb"][k])
        rw = w["refresh_walk"]
        add(f"walk {n:,} VIPs ours, refreshing every 1 s: wall s min", rw["wall_min"])
        add(f"walk {n:,} VIPs ours, refreshing every 1 s: wall s median", rw["wall_median"])
        add(f"walk {n:,} VIPs ours, refreshing every 1 s: varbinds/s", rw["vb_per_s"])
        add(f"walk {n:,} VIPs ours, refreshing every 1 s: snmpd CPU s", rw["snmpd_cpu"])
        p = w["probe"]
        add(f"GET probe {n:,} VIPs: median ms, no refresh", p["static_median_ms"])
        add(f"GET probe {n:,} VIPs: max ms, no refresh", p["static_max_ms"])
        add(f"GET probe {n:,} VIPs: max ms, refreshing every 1 s", p["refresh_max_ms"])
        add(
            f"GET probe {n:,} VIPs: longest per 1 s window ms (median of windows), no refresh",
            p["static_window_max_ms"],
        )
        add(
            f"GET probe {n:,} VIPs: longest per 1 s window ms (median of windows), refreshing",
            p["refresh_window_max_ms"],
        )
        add(
            f"walk {n:,} VIPs ours: RSS MB after the walks while refreshing every 1 s",
            w["refresh_rss_mb"],
        )
        add(
            f"counter-state writes {n:,} VIPs during the refresh windows (live traffic, "
            f"{w['traffic_ticks']} traffic ticks)",
            w["state_writes"],
        )
        add(f"counter-state write {n:,} VIPs: ms (JSON + 2 fsyncs, min of 3)", w["state_write_ms"])
        add(f"counter-state file {n:,} VIPs: kB", w["state_bytes"] / 1000)
        add(
            f"walk {n:,} VIPs ours: peak RSS MB (VmHWM) while refreshing every 1 s",
            w["refresh_peak_rss_mb"],
        )

    # Targets, at the sizes this run measured.
    sizes = sorted(walks)
    big, small = sizes[-1], sizes[0]
    mid = 1000 if 1000 in walks else big

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    if scrape:
        sbig = max(scrape)
        r = scrape[sbig]
        ratio = r["cycle_median"] / r["floor_median"]
        add(
            f"TARGET scrape cycle / floor at {sbig:,} VIPs x 8 backends (wall, median)",
            ratio,
            "<= 2.0",
            verdict(ratio <= 2.0),
        )
        pct = r["cycle_cpu_median"] / 5000 * 100  # CPU ms per cycle over a 5 s interval
        add(
            f"TARGET scrape CPU % of one core at a 5 s interval, {sbig:,} VIPs",
            pct,
            "<= 5",
            verdict(pct <= 5),
        )
    ours_mid, c_mid = walks[mid]["walk"]["ours"], walks[mid]["walk"]["netsnmpagent"]
    ratio = c_mid["wall_median"] / ours_mid["wall_median"]
    add(
        f"TARGET walk {mid:,} VIPs: netsnmpagent wall / ours wall",
        ratio,
        ">= 1.0",
        verdict(ratio >= 1.0),
    )
    ob = walks[big]["walk"]["ours"]
    add(
        f"TARGET walk {big:,} VIPs: ours varbinds/s",
        ob["vb_per_s"],
        ">= 20,000",
        verdict(ob["vb_per_s"] >= 20000),
    )
    pb = walks[big]["walk"]["pyagentx3"]
    # A capped pyagentx3 walk: its partial rate extrapolated (a lower bound).
    ratio = pb["wall_lower_bound"] / ob["wall_median"]
    add(
        f"TARGET walk {big:,} VIPs: pyagentx3 wall / ours wall"
        + (
            f" (pyagentx3 capped at {CAP_S:.0f} s after {pb['varbinds']:,.0f} varbinds; its"
            " rate so far extrapolated: a lower bound)"
            if pb["capped"]
            else ""
        ),
        ratio,
        ">= 10",
        verdict(ratio >= 10),
    )
    # Best walk against best walk: this 2-vCPU guest runs a walk either on one
    # vCPU or bouncing between two (about 5x slower, whatever the agent), and a
    # median of a few walks can mix the two modes (bench/profile_walk.py).
    per = {
        n: walks[n]["walk"]["ours"]["wall_min"] / walks[n]["walk"]["ours"]["varbinds"]
        for n in sizes
    }
    ratio = per[big] / per[small]
    add(
        f"TARGET per-varbind cost {big:,} vs {small:,} VIPs (best walks)",
        ratio,
        "<= 1.3",
        verdict(ratio <= 1.3),
    )
    for n in sizes:
        add(
            f"walk {n:,} VIPs ours: wall / snmpd CPU (median of per-walk ratios)",
            walks[n]["walk"]["ours"]["wall_per_snmpd_cpu"],
        )
    ratio = walks[big]["walk"]["ours"]["wall_per_snmpd_cpu"]
    add(
        f"TARGET walk wall / snmpd CPU during the walk at {big:,} VIPs (ours)",
        ratio,
        "<= 2.0",
        verdict(ratio <= 2.0),
    )
    stall = walks[big]["stall_ms"]
    add(
        f"TARGET protocol-loop stall from a table swap at {big:,} VIPs ms "
        "(longest GET round trip per refresh, median of 1 s windows, - median with no refresh)",
        stall,
        "<= 5",
        verdict(stall <= 5),
    )
    rss = walks[big]["refresh_rss_mb"]
    add(
        f"TARGET agent RSS MB at {big:,} VIPs x 8 backends (after the walks, refreshing every 1 s)",
        rss,
        "<= 100",
        verdict(rss <= 100),
    )
    idle = walks[small]["idle_cpu_pct"]["ours"]
    add(
        f"TARGET idle CPU % of one core ({small:,} VIPs, no polls, no refresh)",
        idle,
        "< 1",
        verdict(idle < 1),
    )
    return rows


def render(rows: list[tuple[str, float, str, str]]) -> str:
    lines = ["| figure | value | target | result |", "|---|---:|---|---|"]
    for name, value, target, result in rows:
        v = (
            f"{value:,.0f}"
            if abs(value) >= 1000
            else f"{value:.3g}"
            if value < 10
            else f"{value:.1f}"
        )
        lines.append(f"| {name} | {v} | {target} | {result} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--scale" in args:  # 1,000 to 50,000 VIPs under live traffic: bench/bench_scale.py
        import bench_scale

        return bench_scale.main([x for x in args if x != "--scale"], prog="run.py --scale")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smallest sizes only (CI)")
    p.add_argument("--save", action="store_true", help="write bench/results/<date>-<machine>.*")
    p.add_argument("--scale", action="store_true", help="the scale axis (bench/bench_scale.py)")
    a = p.parse_args(args)
    scrape_sizes = [10] if a.quick else [10, 1000, 10000]
    walk_sizes = [100] if a.quick else [100, 1000, 10000]
    idle_s, probe_windows_n = (5.0, 3) if a.quick else (10.0, 9)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    ensure_netsnmpagent()
    mach = machine()
    log(f"machine: {mach}")
    scrape = {}
    for n in scrape_sizes:
        log(f"scrape {n} VIPs ...")
        scrape[n] = scrape_figures(n)
    walks = {}
    for n in walk_sizes:
        log(f"walks {n} VIPs ...")
        walks[n] = bench_size(n, idle_s, probe_windows_n, log)
    rows = rows_for(scrape, walks)
    table = render(rows)
    header = (
        f"agentx-lb benchmark ({'quick' if a.quick else 'full'}): {mach['cpu']}, "
        f"{mach['cores']} cores, Python {mach['python']}, net-snmp {mach['net_snmp']}"
    )
    print(header)
    print(table)
    if a.save:
        date = datetime.date.today().isoformat()
        slug = re.sub(r"[^a-z0-9]+", "-", f"{mach['cpu']}-{mach['cores']}core".lower()).strip("-")
        base = os.path.join(HERE, "results", f"{date}-{slug}")
        os.makedirs(os.path.dirname(base), exist_ok=True)
        with open(base + ".md", "w", encoding="utf-8") as f:
            f.write(
                f"# {header}\n\nCommand: `.venv/bin/python bench/run.py"
                f"{' --quick' if a.quick else ''} --save`\n\n{table}\n"
            )
        with open(base + ".json", "w", encoding="utf-8") as f:
            json.dump(
                {
                    "machine": mach,
                    "quick": a.quick,
                    "scrape": scrape,
                    "walks": walks,
                    "figures": [
                        dict(zip(("figure", "value", "target", "result"), r)) for r in rows
                    ],
                },
                f,
                indent=1,
                default=str,
            )
        log(f"saved {base}.md/.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
