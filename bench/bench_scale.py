"""The scale axis: our agent from 1,000 to 50,000 VIPs under live traffic and churn.

    .venv/bin/python bench/bench_scale.py [--points 1000x4,10000x8] [--churn-per-s 0.001]
    .venv/bin/python bench/run.py --scale [the same arguments]
    .venv/bin/python bench/bench_scale.py --points 200x4 --quick   # tiny: the test runs it
    .venv/bin/python bench/bench_scale.py --save   # also bench/results/<date>-<machine>-scale.*

A point is `VIPSxBACKENDS`. For each: the emulated VPP in a child process,
populated, with a live load balancer in it (once a second every VIP's four LB
counters and its route counters move and every backend's flow count changes;
`--churn-per-s` of the VIPs a second are deleted and replaced by new ones, and
as many VIPs lose a backend and get a new one); one private snmpd and only our
agent (`python -m agentx_lb run`, interval 5 s, a state directory, debug log).
Measured, in this order (bench/README.md, "Scale" says how and why):

(a) agent start -> the first full VIP table (every row, its route column too);
(b) three bulk walks of the whole VIP table (checked: every column has every
    row, strictly increasing OIDs), varbinds/s, agent and snmpd CPU per 1,000;
(c) a window with no SNMP request: the scrape wall from the agent's log and its
    CPU % of one core;
(d) back-to-back GETNEXTs of one VIP cell for three intervals, each classified
    by whether the agent's scrape thread was busy around it;
(e) VmRSS after the walks and VmHWM;
(f) one counter-state write at this size, and how many the agent made;
and the churn that happened. Prints ONE table: a column per point, the
growth between the two largest VIP counts of each backend count, the targets.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import multiprocessing as mp
import os
import random
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import run  # bench/run.py: agent_cmd, bulkwalk_cmd, cpu_s, status_mb, the BER helpers

from agentx_lb.oids import DEFAULT_ROOT, VIP_ENTRY, VIP_TABLE, VipColumn, format_oid

NAN = float("nan")
DEFAULT_POINTS = "1000x4,1000x8,10000x4,10000x8,50000x4,50000x8"
SEGMENT_SIZE = 256 * 1024 * 1024  # the stats segment: 50,000 x 8 uses about 30 MB
WORKERS = 2
BACKEND_POOL = 65536  # backend addresses shared between VIPs (a server serves many VIPs)
WALKS = 3
WALK_CAP_S = 600.0
TABLE_OID = format_oid(DEFAULT_ROOT + VIP_TABLE)
ENTRY_OID = format_oid(DEFAULT_ROOT + VIP_ENTRY)
COLUMNS = [int(c) for c in VipColumn if c != VipColumn.INDEX]  # INDEX: not-accessible
ROUTE_COLUMN = int(VipColumn.ROUTE_PACKETS)
ROUTE_COLUMNS = (ROUTE_COLUMN, int(VipColumn.ROUTE_OCTETS))
PROBE_COLUMN = int(VipColumn.NEXT_PACKETS)
_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) DEBUG \S+ scrape ok .*duration_ms=(\d+)"
)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the emulator child


def _vip_prefix(k: int) -> str:
    """198.18.0.0/15 (RFC 2544's benchmarking range) and on: as octets, never
    printable text, so snmpbulkwalk prints every address as one Hex-STRING line."""
    return f"198.{18 + (k >> 16)}.{(k >> 8) & 255}.{k & 255}/32"


def _backend_address(j: int) -> str:
    j %= BACKEND_POOL
    return f"172.{16 + (j >> 16)}.{(j >> 8) & 255}.{j & 255}"


class _LiveLb:
    """The emulator child's live load balancer: a tick a second (traffic, flows, churn)."""

    def __init__(self, emu: Any, n_vips: int, backends: int, churn_per_s: float) -> None:
        self.emu, self.backends = emu, backends
        self.churn_per_tick = churn_per_s * n_vips
        self.vips: dict[int, list[str]] = {}  # VIP index -> its used backends' addresses
        self.next_vip = self.next_backend = 0
        self.ticks = self.vips_replaced = self.backends_replaced = 0
        self.tick_ms: list[float] = []
        self._owed = 0.0
        self.churning = False  # set once the agent's first full table is there
        self._rng = random.Random(17)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-lb", daemon=True)

    def populate(self, n_vips: int) -> None:
        for _ in range(n_vips):
            self._add_vip()
        self.emu.traffic_all(thread=1, next_packets=50, first_packets=5, untracked_packets=1)
        self.emu.add_flows_all(10)

    def _add_vip(self) -> int:
        index: int = self.emu.add_vip(_vip_prefix(self.next_vip), protocol=6, port=80)
        self.next_vip += 1
        addresses = []
        for _ in range(self.backends):
            address = _backend_address(self.next_backend)
            self.next_backend += 1
            self.emu.add_backend(index, address)
            addresses.append(address)
        self.vips[index] = addresses
        return index

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        deadline = time.monotonic()
        while True:
            deadline += 1.0
            if self._stop.wait(max(0.0, deadline - time.monotonic())):
                return
            t0 = time.perf_counter()
            self.tick()
            self.tick_ms.append((time.perf_counter() - t0) * 1000)

    def tick(self) -> None:
        emu = self.emu
        self.ticks += 1
        emu.traffic_all(
            thread=1 + self.ticks % WORKERS,
            next_packets=7,
            first_packets=2,
            untracked_packets=1,
            no_server_packets=1,
        )
        emu.add_flows_all(2 if self.ticks % 2 else -1)
        self._owed += self.churn_per_tick if self.churning else 0.0
        while self._owed >= 1.0:
            self._owed -= 1.0
            # One lock around each change: no scrape sees a VIP gone and its
            # replacement not yet there (VPP reuses the index: the row count stays).
            with emu.lock:
                old = self._rng.choice(list(self.vips))
                emu.del_vip(old)
                del self.vips[old]
                self._add_vip()
                self.vips_replaced += 1
            with emu.lock:
                index = self._rng.choice(list(self.vips))
                addresses = self.vips[index]
                emu.remove_backend(index, addresses.pop(0))
                address = _backend_address(self.next_backend)
                self.next_backend += 1
                while address in addresses:  # the pool wrapped onto one of this VIP's
                    address = _backend_address(self.next_backend)
                    self.next_backend += 1
                emu.add_backend(index, address)
                addresses.append(address)
                self.backends_replaced += 1
        if self.ticks % 10 == 0:
            emu.gc()  # removed backends stay listed ("removed") until VPP's gc

    def stats(self) -> dict[str, float]:
        ms = self.tick_ms or [0.0]
        return {
            "ticks": self.ticks,
            "vips_replaced": self.vips_replaced,
            "backends_replaced": self.backends_replaced,
            "tick_ms_median": statistics.median(ms),
            "tick_ms_max": max(ms),
        }


def _serve_live(n_vips: int, backends: int, churn_per_s: float, conn: Connection) -> None:
    """The emulator child: populate, then answer "live" (start the ticks: traffic and
    flows), "churn" (from now on the ticks churn too), "stats" and "stop"."""
    from agentx_lb.emulator import EmulatedVpp

    run_dir = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    emu = EmulatedVpp(run_dir, workers=WORKERS, segment_size=SEGMENT_SIZE)
    emu.start()
    live = _LiveLb(emu, n_vips, backends, churn_per_s)
    try:
        t0 = time.perf_counter()
        live.populate(n_vips)
        populate_s = time.perf_counter() - t0
        conn.send((emu.stats_socket, emu.api_socket, emu.api_dir, emu.api_files, populate_s))
        while True:
            cmd = conn.recv()
            if cmd == "live":
                live.start()
                conn.send("ok")
            elif cmd == "churn":
                live.churning = True
                conn.send("ok")
            elif cmd == "stats":
                conn.send(live.stats())
            else:  # "stop"
                break
    finally:
        live.stop()
        emu.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


# ---------------------------------------------------------------- SNMP and /proc helpers


def getnext_packet(oid: tuple[int, ...], request_id: int) -> bytes:
    """An SNMPv2c GetNextRequest (PDU type 0xA1) for `oid`, community public."""
    varbind = run._ber(0x30, run._ber_oid(oid) + b"\x05\x00")
    pdu = run._ber(
        0xA1,
        run._ber(0x02, request_id.to_bytes(4, "big"))
        + b"\x02\x01\x00\x02\x01\x00"
        + run._ber(0x30, varbind),
    )
    return run._ber(0x30, b"\x02\x01\x01" + run._ber(0x04, b"public") + pdu)


def thread_cpu_s(pid: int, tid: int) -> float:
    """CPU seconds of one thread (schedstat, nanoseconds)."""
    with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
        return int(f.read().split()[0]) / 1e9


def other_threads_cpu_s(pid: int) -> float:
    """CPU seconds of every thread of `pid` but its main one (the agent's protocol
    loop runs on its main thread; the scrape and vpp_papi's reader on others)."""
    return run.cpu_s(pid) - thread_cpu_s(pid, pid)


def snmpget(address: str, oid: str) -> str:
    cmd = ["snmpget", "-v2c", "-c", "public", "-t", "1", "-r", "0", "-On", address, oid]
    return subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=run.CLIENT_ENV
    ).stdout


def column_cells(address: str, column: int) -> int:
    """Cells of one VIP column, by bulk walk (0 when the walk fails)."""
    base = f"{ENTRY_OID}.{column}"
    proc = subprocess.run(
        run.bulkwalk_cmd(address, base),
        capture_output=True,
        text=True,
        check=False,
        env=run.CLIENT_ENV,
        timeout=300,
    )
    prefix = f".{base}."
    return sum(1 for line in proc.stdout.splitlines() if line.startswith(prefix))


class StateWatch:
    """Counts replacements of the counter-state file (a write is a rename: a new inode)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = None
        while not self._stop.wait(0.05):
            try:
                ino = os.stat(self.path).st_ino
            except FileNotFoundError:
                continue
            if ino != last:
                self.writes += 1
                last = ino

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# ---------------------------------------------------------------- the measurements


def wait_full_table(address: str, n_vips: int, proc: subprocess.Popen[bytes], t0: float) -> float:
    """Seconds from `t0` until the last row's route cell is served and the route
    column has every row (the table is published whole, so the rest is there)."""
    last = f"{ENTRY_OID}.{ROUTE_COLUMN}.{n_vips}"
    deadline = t0 + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited rc={proc.returncode}")
        out = snmpget(address, last)
        at = time.monotonic()
        if " = Counter64:" in out:
            cells = column_cells(address, ROUTE_COLUMN)
            if cells == n_vips:
                return at - t0
            _log(f"    route column has {cells} of {n_vips} rows; waiting")
        time.sleep(0.1)
    raise RuntimeError(f"no full table within 600 s ({n_vips} VIPs)")


class WalkError(RuntimeError):
    """A walk that failed its check (cut short, out of order, a timeout)."""


@dataclass
class WalkResult:
    wall_s: float
    varbinds: int
    agent_cpu_s: float  # every thread (the scrapes during the walk too)
    protocol_cpu_s: float  # the protocol loop's thread alone
    snmpd_cpu_s: float
    route_cells_missing: int


def walk(address: str, snmpd_pid: int, agent_pid: int, n_vips: int) -> WalkResult:
    """One bulk walk of the VIP table, checked: strictly increasing OIDs, every
    column of the MIB, each holding exactly `n_vips` rows (churn keeps the row
    count: VPP reuses the index), so the count is exact: rows x columns. Only the
    two route columns may miss a few rows (1 %, at least 1): a VIP deleted while a
    scrape looked its new route up is served without them (its route is gone)."""
    c0, a0, p0 = run.cpu_s(snmpd_pid), run.cpu_s(agent_pid), thread_cpu_s(agent_pid, agent_pid)
    t0 = time.perf_counter()
    proc = subprocess.run(
        run.bulkwalk_cmd(address, TABLE_OID),
        capture_output=True,
        text=True,
        timeout=WALK_CAP_S,
        check=False,
        env=run.CLIENT_ENV,
    )
    wall = time.perf_counter() - t0
    snmpd = run.cpu_s(snmpd_pid) - c0
    agent, protocol = run.cpu_s(agent_pid) - a0, thread_cpu_s(agent_pid, agent_pid) - p0
    lines = proc.stdout.splitlines()
    if proc.returncode != 0:
        raise WalkError(f"walk failed rc={proc.returncode}: {proc.stderr.strip()[:300]}")
    prev: tuple[int, ...] = ()
    per_column: dict[int, int] = {}
    skip = len(ENTRY_OID) + 2
    for line in lines:
        text = line.split(" ", 1)[0]
        if not text.startswith(f".{ENTRY_OID}."):  # "No more variables left in this MIB View"
            raise WalkError(f"walk ended after {len(per_column)} columns at {line[:150]!r}")
        oid = tuple(int(x) for x in text[1:].split("."))
        if oid <= prev:
            raise WalkError(f"walk not strictly increasing at {line[:100]}")
        prev = oid
        column = int(text[skip:].split(".", 1)[0])
        per_column[column] = per_column.get(column, 0) + 1
    short = {c: k for c, k in per_column.items() if k != n_vips and c not in ROUTE_COLUMNS}
    missing = sum(n_vips - per_column.get(c, 0) for c in ROUTE_COLUMNS)
    rows_missing = max(n_vips - per_column.get(c, 0) for c in ROUTE_COLUMNS)
    if short or set(per_column) != set(COLUMNS) or rows_missing > max(1, n_vips // 100):
        raise WalkError(
            f"walk: {len(lines)} varbinds in {wall:.1f} s; columns {sorted(per_column)}, "
            f"of which without {n_vips} rows {short}; route cells missing {missing}"
        )
    return WalkResult(wall, len(lines), agent, protocol, snmpd, missing)


def walk_figures(walks: list[WalkResult]) -> dict[str, float]:
    """The walk figures: min and median wall, rates, CPU of the median walk."""
    med = sorted(walks, key=lambda w: w.wall_s)[len(walks) // 2]
    best = min(walks, key=lambda w: w.wall_s)
    return {
        "walks_ok": len(walks),
        "walk_varbinds": med.varbinds,
        "walk_s_min": best.wall_s,
        "walk_s_median": med.wall_s,
        "walk_vbps_median": med.varbinds / med.wall_s,
        "walk_vbps_best": best.varbinds / best.wall_s,
        "protocol_cpu_per_kvb": 1000 * med.protocol_cpu_s / med.varbinds,
        "agent_cpu_per_kvb": 1000 * med.agent_cpu_s / med.varbinds,
        "snmpd_cpu_per_kvb": 1000 * med.snmpd_cpu_s / med.varbinds,
        "protocol_per_snmpd_cpu": med.protocol_cpu_s / max(med.snmpd_cpu_s, 1e-9),
        "walk_route_cells_missing": sum(w.route_cells_missing for w in walks),
    }


def probe_getnext(
    address: tuple[str, int], oid: tuple[int, ...], agent_pid: int, duration_s: float
) -> dict[str, float]:
    """Back-to-back GETNEXTs of `oid` for `duration_s` (1 ms apart), next to a
    sampler of the agent's non-main threads' CPU every 10 ms: a round trip is
    "quiet" when those threads used no CPU (< 0.5 ms a slot) from 50 ms before
    it was sent to 50 ms after its answer: no refresh was in progress."""
    samples: list[tuple[float, float]] = []  # (perf_counter, CPU s of the other threads)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), other_threads_cpu_s(agent_pid)))
            stop.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    trips: list[tuple[float, float]] = []  # (sent at, round trip s)
    # An answer names the next cell of the same column: its OID's BER content
    # starts with the column's. One that does not is snmpd answering from past
    # our subtree: the agent did not answer within agentXTimeout (1 s).
    column = run._ber_oid(oid[:-1])[2:]
    wrong = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        end = time.perf_counter() + duration_s
        rid = 1 << 24
        while time.perf_counter() < end:
            rid += 1
            t0 = time.perf_counter()
            s.sendto(getnext_packet(oid, rid), address)
            try:
                while True:  # skip late answers to earlier probes
                    data = s.recv(65536)
                    if rid.to_bytes(4, "big") in data:
                        break
                trips.append((t0, time.perf_counter() - t0))
                wrong += column not in data
            except TimeoutError:
                trips.append((t0, 2.0))
            time.sleep(0.001)
    stop.set()
    sampler.join(5)
    busy = [
        (a[0], b[0]) for a, b in itertools.pairwise(samples) if b[1] - a[1] > 0.0005
    ]  # slots (start, end) in which a scrape ran
    quiet, all_rtt = [], []
    j = 0
    for sent, rtt in trips:
        all_rtt.append(rtt)
        lo, hi = sent - 0.05, sent + rtt + 0.05
        while j < len(busy) and busy[j][1] < lo:
            j += 1
        if not (j < len(busy) and busy[j][0] <= hi):
            quiet.append(rtt)
    all_rtt.sort()
    nan = float("nan")
    q_median = 1000 * statistics.median(quiet) if quiet else nan
    return {
        "getnext_probes": float(len(all_rtt)),
        "getnext_skipped": float(wrong),
        "getnext_quiet_probes": float(len(quiet)),
        "getnext_median_ms": 1000 * statistics.median(all_rtt),
        "getnext_p99_ms": 1000 * all_rtt[min(len(all_rtt) - 1, int(0.99 * len(all_rtt)))],
        "getnext_max_ms": 1000 * all_rtt[-1],
        "getnext_quiet_median_ms": q_median,
        "getnext_quiet_max_ms": 1000 * max(quiet) if quiet else nan,
        "getnext_delay_ms": 1000 * all_rtt[-1] - q_median,
        "refresh_busy_pct": 100 * sum(b - a for a, b in busy) / max(duration_s, 1e-9),
    }


_LOG_EVENTS = {
    "log_notifications": re.compile(r" INFO \S+ notification vppLb"),
    "log_notify_queue_full": re.compile(r"notification queue full"),
    "log_scrape_overran": re.compile(r"scrape overran"),
    "log_session_lost": re.compile(r"agentx session lost"),
}


def log_events(log_path: str, since: float) -> dict[str, float]:
    """How many of each `_LOG_EVENTS` line the agent logged after `since` (time.time())."""
    counts = dict.fromkeys(_LOG_EVENTS, 0.0)
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                at = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue  # a traceback's line
            if at < since:
                continue
            for key, rx in _LOG_EVENTS.items():
                if rx.search(line):
                    counts[key] += 1
    return counts


def scrape_lines(log_path: str, since: float, until: float) -> list[int]:
    """duration_ms of every "scrape ok" line the agent logged between two time.time()s."""
    out = []
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _LOG_LINE.match(line)
            if m is None:
                continue
            at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if since <= at <= until:
                out.append(int(m.group(2)))
    return out


@dataclass(frozen=True)
class Timing:
    """How long each phase runs (`--quick` shortens them)."""

    interval_s: float
    scrape_window_s: float
    probe_s: float


def bench_point(
    n_vips: int, backends: int, churn_per_s: float, timing: Timing, agent_args: list[str]
) -> dict[str, float]:
    from agentx_lb.snmpd import PrivateSnmpd

    out: dict[str, float] = {"vips": n_vips, "backends": backends}
    work = tempfile.mkdtemp(prefix="axlb-scale-", dir="/tmp")
    parent, child = mp.Pipe()
    emu_proc = mp.get_context("spawn").Process(
        target=_serve_live, args=(n_vips, backends, churn_per_s, child), daemon=True
    )
    emu_proc.start()
    assert emu_proc.pid is not None
    emu_pid = emu_proc.pid
    snmpd = agent = watch = None
    keep = False  # the work directory (agent and snmpd logs) stays when something failed
    try:
        stats_sock, api_sock, api_dir, api_files, out["populate_s"] = parent.recv()
        emu = (stats_sock, api_sock, api_dir, api_files)
        _log(f"  {n_vips}x{backends}: emulator populated in {out['populate_s']:.1f} s")
        snmpd = PrivateSnmpd(work)
        snmpd.start()
        parent.send("live")
        parent.recv()
        state_dir = os.path.join(work, "state")
        os.mkdir(state_dir)
        log_path = os.path.join(work, "agent.log")
        cmd = run.agent_cmd(
            emu,
            snmpd.agentx_socket,
            state_dir,
            timing.interval_s,
            "--log-level",
            "debug",
            *agent_args,
        )
        t0 = time.monotonic()
        with open(log_path, "wb") as log_file:
            agent = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, cwd=REPO
            )
        watch = StateWatch(os.path.join(state_dir, "counters.json"))
        assert snmpd.pid is not None
        snmpd_pid = snmpd.pid

        # (a) the first full table.
        out["first_full_s"] = wait_full_table(snmpd.address, n_vips, agent, t0)
        _log(f"  {n_vips}x{backends}: first full table after {out['first_full_s']:.1f} s")
        # Churn from now on: a VIP deleted while a scrape looks its route up is
        # served without route cells (its route is gone), so (a) waits without it.
        parent.send("churn")
        parent.recv()
        measure_t0, measure_w0 = time.monotonic(), time.time()
        writes_t0 = watch.writes

        # (c) scrape cost: no SNMP request for the window (one interval settles first).
        time.sleep(timing.interval_s)
        e0, c0 = run.cpu_s(emu_pid), run.cpu_s(agent.pid)
        w0, m0 = time.time(), time.monotonic()
        time.sleep(timing.scrape_window_s)
        elapsed = time.monotonic() - m0
        cpu = run.cpu_s(agent.pid) - c0
        out["emulator_cpu_pct"] = 100 * (run.cpu_s(emu_pid) - e0) / elapsed
        durations = scrape_lines(log_path, w0, time.time())
        out["scrapes_in_window"] = len(durations)
        out["scrape_ms_median"] = statistics.median(durations) if durations else float("nan")
        out["scrape_ms_max"] = max(durations) if durations else float("nan")
        out["scrape_cpu_pct"] = 100 * cpu / elapsed
        out["scrape_cpu_ms"] = 1000 * cpu / len(durations) if durations else float("nan")
        out["scrape_window_s"] = elapsed
        _log(f"  {n_vips}x{backends}: scrape CPU {out['scrape_cpu_pct']:.1f} % of a core")

        # (b) walks: WALKS that pass their check, in at most WALKS + 2 tries.
        walks: list[WalkResult] = []
        failed = 0
        while len(walks) < WALKS and len(walks) + failed < WALKS + 2:
            try:
                walks.append(walk(snmpd.address, snmpd_pid, agent.pid, n_vips))
            except WalkError as exc:
                failed += 1
                keep = True
                _log(f"  {n_vips}x{backends}: walk FAILED its check: {exc}")
                time.sleep(timing.interval_s)  # past a passing cause (a table swap)
                continue
            _log(f"  {n_vips}x{backends}: walk {len(walks)}/{WALKS} {walks[-1].wall_s:.1f} s")
        out["walks_failed"] = failed
        if walks:
            out.update(walk_figures(walks))

        # (e) memory after the walks, scrapes going on.
        out["rss_mb"] = run.status_mb(agent.pid)
        out["hwm_mb"] = run.status_mb(agent.pid, "VmHWM")

        # (d) GETNEXT round trips while refreshes land.
        host, port = snmpd.address.split(":")
        probe_oid = DEFAULT_ROOT + VIP_ENTRY + (PROBE_COLUMN, max(1, n_vips // 2))
        out.update(probe_getnext((host, int(port)), probe_oid, agent.pid, timing.probe_s))
        _log(f"  {n_vips}x{backends}: GETNEXT longest {out['getnext_max_ms']:.1f} ms")

        out["state_writes"] = watch.writes - writes_t0
        out["measure_s"] = time.monotonic() - measure_t0
        out.update(log_events(log_path, measure_w0))
        parent.send("stats")
        churn = parent.recv()
        out.update({f"churn_{k}": float(v) for k, v in churn.items()})
        run.stop_proc(agent)
        agent = None
        # (f) one counter-state write at this size (with the agent stopped).
        out["state_write_ms"], state_bytes = run.state_write_ms(emu)
        out["state_kb"] = state_bytes / 1000
        return out
    except Exception:
        keep = True
        raise
    finally:
        if watch is not None:
            watch.stop()
        run.stop_proc(agent)
        if snmpd is not None:
            snmpd.stop()
        parent.send("stop")
        emu_proc.join(60)
        if keep:
            _log(f"  {n_vips}x{backends}: the agent's and snmpd's logs are kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    growth: bool = False  # a cost that grows with the table: ratio and slope columns


FIGURES = (
    Figure("first_full_s", "(a) agent start -> first full VIP table, s", growth=True),
    Figure("walks_ok", "(b) walks that passed the check (of 3)"),
    Figure("walks_failed", "(b) walks that failed it (cut short, a timeout; tried again)"),
    Figure("walk_varbinds", "(b) walk: varbinds (whole VIP table, checked)"),
    Figure("walk_route_cells_missing", "(b) walk: route cells missing, 3 walks (churn races)"),
    Figure("walk_s_min", "(b) walk: wall s, min of 3", growth=True),
    Figure("walk_s_median", "(b) walk: wall s, median of 3", growth=True),
    Figure("walk_vbps_median", "(b) walk: varbinds/s (median walk)"),
    Figure("walk_vbps_best", "(b) walk: varbinds/s (best walk)"),
    Figure("protocol_cpu_per_kvb", "(b) walk: agent protocol-loop CPU s per 1,000 varbinds"),
    Figure("snmpd_cpu_per_kvb", "(b) walk: snmpd CPU s per 1,000 varbinds"),
    Figure("protocol_per_snmpd_cpu", "(b) walk: agent protocol-loop CPU / snmpd CPU"),
    Figure("agent_cpu_per_kvb", "(b) walk: agent CPU s per 1,000 varbinds, all threads"),
    Figure("scrape_ms_median", "(c) scrape wall ms (read + reduce, agent log), median", True),
    Figure("scrape_ms_max", "(c) scrape wall ms (read + reduce, agent log), max", True),
    Figure("scrapes_in_window", "(c) scrapes in the no-request window"),
    Figure("scrape_window_s", "(c) no-request window, s"),
    Figure("scrape_cpu_ms", "(c) agent CPU ms per scrape (all of it: window CPU / scrapes)", True),
    Figure("scrape_cpu_pct", "(c) agent CPU % of one core at the interval, no requests", True),
    Figure("getnext_probes", "(d) GETNEXT round trips measured"),
    Figure("getnext_skipped", "(d) GETNEXT answers from past our subtree (no rows served)"),
    Figure("getnext_median_ms", "(d) GETNEXT round trip ms, median"),
    Figure("getnext_p99_ms", "(d) GETNEXT round trip ms, p99"),
    Figure("getnext_max_ms", "(d) GETNEXT round trip ms, longest", growth=True),
    Figure("getnext_quiet_probes", "(d) GETNEXT round trips with no refresh in progress"),
    Figure("getnext_quiet_median_ms", "(d) GETNEXT round trip ms, median with no refresh"),
    Figure("getnext_quiet_max_ms", "(d) GETNEXT round trip ms, longest with no refresh"),
    Figure("getnext_delay_ms", "(d) GETNEXT delay ms: longest - median with no refresh", True),
    Figure("refresh_busy_pct", "(d) share of the probe time a refresh was running, %", True),
    Figure("rss_mb", "(e) agent VmRSS MB after the walks", growth=True),
    Figure("hwm_mb", "(e) agent VmHWM MB (peak)", growth=True),
    Figure("state_write_ms", "(f) counter-state write ms (JSON + 2 fsyncs, min of 3)", True),
    Figure("state_kb", "(f) counter-state file kB", growth=True),
    Figure("state_writes", "(f) counter-state writes by the agent during the measurement"),
    Figure("measure_s", "(f) measurement s (first full table -> end of the probe)"),
    Figure("log_scrape_overran", "agent log: scrapes that overran the interval"),
    Figure("log_notifications", "agent log: notifications sent (churn: backends, VIPs)"),
    Figure("log_notify_queue_full", "agent log: notification queue full (oldest dropped)"),
    Figure("log_session_lost", "agent log: AgentX session lost"),
    Figure("churn_ticks", "churn: live-traffic ticks (1 s) during the point"),
    Figure("churn_vips_replaced", "churn: VIPs deleted and replaced by a new one"),
    Figure("churn_backends_replaced", "churn: backends removed and a new one added"),
    Figure("churn_tick_ms_median", "emulator: live-traffic tick ms, median"),
    Figure("emulator_cpu_pct", "emulator: CPU % of one core in the window (context)"),
    Figure("populate_s", "emulator: populate s (context)"),
)

# The targets: (point, figure key, "<=" or ">=", limit).
TARGETS = (
    ("10000x8", "rss_mb", "<=", 64.0),
    ("10000x8", "getnext_delay_ms", "<=", 5.0),
    ("10000x8", "scrape_cpu_pct", "<=", 3.0),
    ("10000x8", "walk_vbps_median", ">=", 30000.0),
    ("10000x8", "protocol_per_snmpd_cpu", "<=", 1.0),
    ("50000x4", "walk_vbps_median", ">=", 25000.0),
    ("50000x4", "scrape_cpu_pct", "<=", 5.0),
    ("50000x4", "rss_mb", "<=", 200.0),
    ("50000x4", "first_full_s", "<=", 10.0),
)
# Growth 10,000 -> 50,000 VIPs at 4 backends at most linear: ratio <= 5.
GROWTH_TARGET = (4, 10000, 50000, 5.0)
GROWTH_TARGET_KEYS = (
    "first_full_s",
    "scrape_ms_median",
    "scrape_cpu_ms",
    "scrape_cpu_pct",
    "rss_mb",
    "hwm_mb",
    "state_write_ms",
)


def parse_points(text: str) -> list[tuple[int, int]]:
    points = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part)
        if m is None:
            raise argparse.ArgumentTypeError(f"a point is VIPSxBACKENDS (e.g. 10000x8): {part!r}")
        points.append((int(m.group(1)), int(m.group(2))))
    return points


def label(point: tuple[int, int]) -> str:
    return f"{point[0]}x{point[1]}"


def growth_pairs(points: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(backends, smaller VIP count, larger): the two largest VIP counts of each backend count."""
    pairs = []
    for b in sorted({p[1] for p in points}):
        ns = sorted({p[0] for p in points if p[1] == b})
        if len(ns) >= 2:
            pairs.append((b, ns[-2], ns[-1]))
    return pairs


def fmt(value: float | None) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _verdict(value: float, op: str, limit: float) -> str:
    if value != value:
        return "FAIL (n/a)"
    ok = value <= limit if op == "<=" else value >= limit
    return "PASS" if ok else "FAIL"


def table_rows(results: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a figure per row, a column per point, growth, targets."""
    points = [(int(r["vips"]), int(r["backends"])) for r in results.values()]
    pairs = growth_pairs(points)
    header = ["figure", *results]
    for b, lo, hi in pairs:
        header += [f"x{b}: {lo}->{hi} ratio", f"x{b}: slope per 1,000 VIPs"]
    header.append("targets")
    rows = []
    for fig in FIGURES:
        row = [fig.label, *(fmt(r.get(fig.key)) for r in results.values())]
        for b, lo, hi in pairs:
            if not fig.growth:
                row += ["", ""]
                continue
            a = results[f"{lo}x{b}"].get(fig.key, NAN)
            z = results[f"{hi}x{b}"].get(fig.key, NAN)
            row += [fmt(z / a if a else NAN), fmt((z - a) / ((hi - lo) / 1000))]
        verdicts = []
        for point, key, op, limit in TARGETS:
            if key == fig.key:
                if point in results:
                    v = results[point].get(key, NAN)
                    verdicts.append(f"{point} {op} {fmt(limit)}: {_verdict(v, op, limit)}")
                else:
                    verdicts.append(f"{point} {op} {fmt(limit)}: not measured")
        b, lo, hi, limit = GROWTH_TARGET
        if fig.key in GROWTH_TARGET_KEYS:
            lo_p, hi_p = f"{lo}x{b}", f"{hi}x{b}"
            if lo_p in results and hi_p in results:
                a, z = results[lo_p].get(fig.key, NAN), results[hi_p].get(fig.key, NAN)
                ratio = z / a if a else NAN
                verdicts.append(
                    f"x{b} {lo}->{hi} ratio <= {limit:g}: {_verdict(ratio, '<=', limit)}"
                )
            else:
                verdicts.append(f"x{b} {lo}->{hi} ratio <= {limit:g}: not measured")
        row.append("; ".join(verdicts))
        rows.append(row)
    return header, rows


def render(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 2) + "---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- saving


def _matplotlib() -> Any:
    """pyplot with the Agg backend, or exit 2 with how to install it (the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log(
            "bench_scale: --save draws a plot with matplotlib, which is not installed: "
            ".venv/bin/python -m pip install -e '.[bench]'"
        )
        raise SystemExit(2) from None
    return plt


def plot(plt: Any, results: dict[str, dict[str, float]], path: str, title: str) -> None:
    """One subplot per cost that grows with the table, cost vs VIP count, a line per
    backend count (log x)."""
    figs = [f for f in FIGURES if f.growth] + [
        f for f in FIGURES if f.key in ("walk_vbps_median", "protocol_cpu_per_kvb")
    ]
    cols = 4
    rows = (len(figs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    backends = sorted({int(r["backends"]) for r in results.values()})
    counts = sorted({int(r["vips"]) for r in results.values()})
    for ax, f in zip(axes.flat, figs):
        for b in backends:
            pts = sorted(
                (r["vips"], r.get(f.key, NAN)) for r in results.values() if int(r["backends"]) == b
            )
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"x{b} backends")
        ax.set_xscale("log")
        ax.set_xticks(counts, [f"{n:,}" for n in counts])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_title(f.label, fontsize=8)
        ax.set_xlabel("VIPs", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(figs) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(
    plt: Any,
    results: dict[str, dict[str, float]],
    table: str,
    header: str,
    argv: list[str],
    directory: str,
) -> str:
    mach = run.machine()
    date = datetime.date.today().isoformat()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{mach['cpu']}-{mach['cores']}core".lower()).strip("-")
    base = os.path.join(directory, f"{date}-{slug}-scale")
    os.makedirs(os.path.dirname(base), exist_ok=True)
    command = " ".join(["bench/bench_scale.py", *argv])
    with open(base + ".md", "w", encoding="utf-8") as f:
        f.write(f"# {header}\n\nCommand: `.venv/bin/python {command}`\n\n{table}\n\n")
        f.write(f"![costs by VIP count]({os.path.basename(base)}.png)\n")
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump({"machine": mach, "command": command, "points": results}, f, indent=1)
    plot(plt, results, base + ".png", header)
    return base


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument(
        "--points",
        type=parse_points,
        default=parse_points(DEFAULT_POINTS),
        help=f"VIPSxBACKENDS, comma separated (default {DEFAULT_POINTS})",
    )
    p.add_argument(
        "--churn-per-s",
        type=float,
        default=0.001,
        help="share of the VIPs replaced per second, and as many backends (default 0.001)",
    )
    p.add_argument(
        "--agent-args",
        default="",
        help="more arguments for `agentx-lb run`, e.g. '--notifications false'",
    )
    p.add_argument("--interval", type=float, default=None, help="agent interval s (default 5)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="short windows and a 1 s interval: checks the bench runs, measures little",
    )
    p.add_argument(
        "--save", action="store_true", help="write bench/results/<date>-<machine>-scale.*"
    )
    p.add_argument("--results-dir", default=os.path.join(HERE, "results"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    interval = a.interval or (1.0 if a.quick else 5.0)
    timing = Timing(
        interval_s=interval,
        scrape_window_s=3 * interval if a.quick else max(30.0, 6 * interval),
        probe_s=3 * interval,
    )
    plt = _matplotlib() if a.save else None  # fail now, not after the run
    mach = run.machine()
    _log(f"machine: {mach}")
    results: dict[str, dict[str, float]] = {}
    failed_points = 0
    for n, b in a.points:
        _log(f"point {n} VIPs x {b} backends ...")
        try:
            results[label((n, b))] = bench_point(
                n, b, a.churn_per_s, timing, shlex.split(a.agent_args)
            )
        except Exception:  # one point's failure leaves the others' figures standing
            _log(f"point {n}x{b} FAILED:\n{traceback.format_exc()}")
            results[label((n, b))] = {"vips": n, "backends": b}
            failed_points += 1
    header = (
        f"agentx-lb scale benchmark: {mach['cpu']}, {mach['cores']} cores, "
        f"Python {mach['python']}, net-snmp {mach['net_snmp']}; interval {interval:g} s, "
        f"churn {a.churn_per_s:g} of the VIPs per second"
        + (f"; agent args {a.agent_args!r}" if a.agent_args else "")
        + (" (quick: short windows)" if a.quick else "")
    )
    head, rows = table_rows(results)
    table = render(head, rows)
    print(header)
    print(table)
    if plt is not None:
        command = list(argv if argv is not None else sys.argv[1:])
        base = save(plt, results, table, header, command, a.results_dir)
        _log(f"saved {base}.md, .json and .png")
    return 1 if failed_points else 0


if __name__ == "__main__":
    sys.exit(main())
