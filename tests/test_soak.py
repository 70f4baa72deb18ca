"""Soak: 1,000 VIPs with churn every second, interval 1 s, concurrent walkers and getters.

The real agent process behind a private snmpd, the emulated VPP with 1,000
VIPs; every second 10 VIPs are deleted and 10 new ones added (VPP's pool
hands the freed indices out again, so indices are reused by new identities).
Four `snmpbulkwalk` loops over the VIP table and one `snmpget` loop run
against it for about 45 s (loopback only, each run bounded).

The invariant checked in every walk: it is one scrape. snmpd walks column by
column and a walk spans many scrapes (hundreds of PDUs, a refresh every
second), so only the agent keeping each walk on the table it started on
(agentx.py, walk heads) makes its rows whole: every column lists the same VIP
indices, and each row's address is the one its name says (an index reused
mid-walk by a new VIP would show one VIP's name next to another's address).
The agent runs with a staleness limit long enough for a walk to keep its
table to the end. Every cell is checkable on its own too: a VIP's counters
are fixed when it is created and derived from its index only (next =
index * 7, first = index * 3; 0 for the instant between `add_vip` and
`traffic`), and a name must be one that index really carried. Plus: no tool
error, no "OID not increasing", OIDs strictly increasing, and the agent's RSS
grows < 5 % after warm-up.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from agentharness import (
    COL_ADDRESS,
    COL_FIRST,
    COL_NAME,
    COL_NEXT,
    ROOT,
    VIP_ENTRY,
    AgentProc,
    Served,
    child_env,
    parse_walk,
    wait_until,
)
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd

pytestmark = [pytest.mark.soak, pytest.mark.integration]

VIPS = 1000
CHURN_PER_S = 10
LOAD_S = float(os.environ.get("AXLB_SOAK_S", "45"))
WALKERS = 4
NEXT_K, FIRST_K = 7, 3


class Churn:
    """Adds and removes VIPs every second; remembers every name an index carried."""

    def __init__(self, vpp: EmulatedVpp) -> None:
        self.vpp = vpp
        self.names: dict[int, set[str]] = {}
        self.lock = threading.Lock()
        self._serial = 0
        self.rounds = 0

    def add(self) -> int:
        self._serial += 1
        n = self._serial
        # 198.x: net-snmp prints the 4-octet vppLbVipAddress as Hex-STRING.
        prefix = f"198.{18 + n // 65536 % 200}.{n // 256 % 256}.{n % 256}/32"
        index = self.vpp.add_vip(prefix, protocol=6, port=80)
        with self.lock:
            self.names.setdefault(index, set()).add(f"{prefix} tcp/80")
        self.vpp.traffic(
            index, thread=1, next_packets=index * NEXT_K, first_packets=index * FIRST_K
        )
        return index

    def run(self, stop: threading.Event) -> None:
        rng = random.Random(8298)
        while not stop.wait(1.0):
            for index in rng.sample(self.vpp.vip_indices(), CHURN_PER_S):
                self.vpp.del_vip(index)
            for _ in range(CHURN_PER_S):
                self.add()
            self.rounds += 1

    def valid_names(self, index: int) -> set[str]:
        with self.lock:
            return set(self.names.get(index, ()))


def _check_walk(out: str, churn: Churn) -> list[str]:
    """Problems in one walk of the VIP table (empty list: consistent)."""
    problems: list[str] = []
    cells = parse_walk(out)
    oids = [tuple(int(p) for p in oid.split(".")) for oid in cells]
    if any(a >= b for a, b in itertools.pairwise(oids)):
        problems.append("OIDs not strictly increasing")
    base = tuple(int(p) for p in VIP_ENTRY.split("."))
    rows = 0
    columns: dict[int, dict[int, str]] = {}
    for oid, (_typ, text) in zip(oids, cells.values()):
        col, index = oid[len(base)], oid[len(base) + 1]
        columns.setdefault(col, {})[index] = text
        if col == COL_NAME:
            rows += 1
            if text.strip('"') not in churn.valid_names(index):
                problems.append(f"name {text} never at index {index}")
        elif col in (COL_NEXT, COL_FIRST):
            k = NEXT_K if col == COL_NEXT else FIRST_K
            if int(text) not in (0, index * k):
                problems.append(f"column {col} index {index} = {text}, want {index * k}")
    if not VIPS - 3 * CHURN_PER_S <= rows <= VIPS:
        problems.append(f"{rows} rows")
    # One scrape: the same rows in every column, each row one VIP.
    names = columns.get(COL_NAME, {})
    for col, cells_of_col in columns.items():
        if cells_of_col.keys() != names.keys():
            odd = sorted(cells_of_col.keys() ^ names.keys())[:5]
            problems.append(f"column {col} and the name column differ at rows {odd}")
    addresses = columns.get(COL_ADDRESS, {})
    for index, name in names.items():
        ip = ipaddress.ip_address(name.strip('"').split("/")[0])
        want = " ".join(f"{b:02X}" for b in ip.packed)
        if addresses.get(index, "").strip() != want:
            problems.append(f"row {index}: name {name} but address {addresses.get(index)}")
    return problems


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = child_env()
    env["MIBS"], env["MIBDIRS"] = "", "/dev/null"
    return subprocess.run(
        list(args), capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_soak_1000_vips_churn_concurrent_walks(
    make_vpp: Callable[..., EmulatedVpp],
    snmpd: PrivateSnmpd,
    short_tmpdir: str,
    agents: list[AgentProc],
) -> None:
    vpp = make_vpp(workers=2)
    churn = Churn(vpp)
    for _ in range(VIPS):
        churn.add()
    # 60 s staleness limit: each walk keeps its table to the end, however
    # slow the walks get on a loaded machine.
    agent = AgentProc.for_vpp(
        str(vpp.run_dir),
        snmpd.agentx_socket,
        short_tmpdir,
        log_level="info",
        vpp_timeout_s=1.0,
        extra=("--max-stale-intervals", "60"),
    )
    agents.append(agent)
    served = Served(snmpd)
    wait_until(lambda: len(served.names()) == VIPS, 60, step_s=0.5)

    stop = threading.Event()
    walks: list[tuple[float, list[str]]] = []  # (seconds, problems)
    gets = [0, 0]  # ok, failed
    errors: list[str] = []
    lock = threading.Lock()

    def walker() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            proc = _tool("snmpbulkwalk", "-v2c", "-c", "public", "-t", "5", "-r", "1", "-On",
                         "-Cr50", snmpd.address, f"{ROOT}.1.2")  # fmt: skip
            took = time.monotonic() - t0
            with lock:
                if proc.returncode != 0 or proc.stderr.strip():
                    errors.append(f"walk rc={proc.returncode}: {proc.stderr.strip()[:300]}")
                else:
                    walks.append((took, _check_walk(proc.stdout, churn)))

    def getter() -> None:
        oids = [f"{ROOT}.1.1.{s}.0" for s in (1, 3, 8)] + [
            f"{VIP_ENTRY}.{COL_NEXT}.{i}" for i in (1, 500, 999)
        ]
        while not stop.is_set():
            proc = _tool("snmpget", "-v2c", "-c", "public", "-t", "5", "-r", "1", "-On",
                         snmpd.address, *oids)  # fmt: skip
            bad = proc.returncode != 0 or proc.stderr.strip() or "INTEGER: 1" not in proc.stdout
            with lock:
                gets[1 if bad else 0] += 1
                if bad:
                    errors.append(f"get rc={proc.returncode}: {proc.stderr.strip()[:300]}")
            stop.wait(0.05)

    threads = [threading.Thread(target=churn.run, args=(stop,), daemon=True)]
    threads += [threading.Thread(target=walker, daemon=True) for _ in range(WALKERS)]
    threads.append(threading.Thread(target=getter, daemon=True))
    for t in threads:
        t.start()
    try:
        stop.wait(min(10.0, LOAD_S / 4))  # warm-up: caches and allocator settle
        rss_warm = agent.rss_kib()
        t_load = time.monotonic()
        stop.wait(LOAD_S - min(10.0, LOAD_S / 4))
        rss_end = agent.rss_kib()
        elapsed = time.monotonic() - t_load
    finally:
        stop.set()
        for t in threads:
            t.join(90)

    inconsistent = [p for _, ps in walks for p in ps]
    assert errors == []
    assert inconsistent == [], inconsistent[:10]
    assert len(walks) >= WALKERS  # every walker completed walks
    assert gets[0] > 0 and gets[1] == 0
    assert churn.rounds >= LOAD_S / 2  # the churn really ran
    assert rss_end <= rss_warm * 1.05, (rss_warm, rss_end)
    assert agent.alive
    assert "Traceback" not in agent.log
    rc, _ = agent.stop()
    assert rc == 0
    sys.stderr.write(
        f"soak: walks={len(walks)} walks_per_s={len(walks) / max(elapsed, 1e-9):.2f}"
        f" gets={gets[0]} rss_warm_kib={rss_warm} rss_end_kib={rss_end}\n"
    )
