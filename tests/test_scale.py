"""50,000 VIPs x 4 backends: a whole walk of both tables equals `agentx-lb dump`.

The real agent process (`python -m agentx_lb run`) behind a private snmpd,
the emulated VPP (two workers, master's CLI, so every backend column is
printed) holding 50,000 served VIPs with 4 backends each: IPv4 and IPv6
VIPs, every encap (gre4, gre6 both ways, l3dsr, nat4, nat6), ports and
port-less VIPs, VIPs sharing a prefix, sticky ones, weights, flows, a
removed backend here and there, VIPs with every backend removed or none,
deleted VIPs (index gaps) and VIPs listed ` removed` (not served), packets
on the main thread and on both workers, Counter64 values past 2^32 and one
at 2^64 - 2.

The comparison is exact because nothing moves while it is made. Every
packet is counted and every change made before anything reads the
emulator; from then on it is frozen (no traffic, no configuration). So the
one scrape `agentx-lb dump` makes and every scrape the agent makes read the
same CLI text and the same stats segment bytes, and a fresh agent (empty
state directory: no counter offsets) serves each counter as VPP's sum over
threads, which is what `dump` prints. Comparing against a table that moves
could only be done with tolerances; this way every cell must be equal,
Counter64 included, and the test needs no knowledge of when a scrape ran.

What `dump` says the table is, is turned into cells here, from the MIB
(README, "What you get"), not by the agent's table code: the VIP table
column by column, rows by index; the backend table column by column, rows
by (VIP index, address type, length, address octets); absent cells where
`dump` has None (route counters without a FIB entry, weights VPP does not
print). Strings are compared as bytes (`-Ox`). The one cell `dump` cannot
know is vppLbVipDiscontinuityTime, a TimeStamp on snmpd's sysUpTime:
`dump` puts every row's discontinuity at its one scrape (0); the agent first
saw every row in one scrape and no counter of a frozen VPP goes back, so
every row must serve one and the same TimeStamp, no later than sysUpTime.

`dump` itself is held against the emulator's own model first (indices,
names, the four LB counters and the route counters summed over threads, the
backends), so walk == dump == what the emulator holds.

The walk is `snmpbulkwalk -Cr25` over each table, read line by line as it
arrives and compared with the expected cells in one ordered merge: OIDs
strictly increasing, nothing missing, nothing extra, every value equal.
The agent first has to serve a full table: every VIP row with its route
counters (all its `ip_route_lookup`s answered); the failure message says
what it served by then.

The agent scrapes every 15 s, not every 5 s (the default). At this size one
tick (read, reduce, table build) takes several seconds on a busy 2-core
guest; at 5 s a tick overran, the next slot was skipped, and the served
table's age passed the default staleness limit (3 intervals) a moment
before the next table was published: the rows were withdrawn and a walk
ended there, silently (snmpbulkwalk stops at the end of the subtree with
status 0). At 15 s the limit is 45 s, shorter than either walk, so the
walks still go on across several publishes and past their pins' age
(docs/architecture.md, walk pins), from newer tables.

Run it alone with `.venv/bin/python -m pytest tests/test_scale.py -s`: it
prints how long each step took. `AXLB_SCALE_VIPS` sets another size while
developing; `-m 'not scale'` leaves it out of a local run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentharness import (
    CONNECTED,
    LAST_ERROR,
    ROOT,
    VIP_COUNT,
    AgentProc,
    Served,
    child_env,
)
from agentx_lb.emulator import LB_COUNTERS, ROUTE_TO, EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd
from test_backends_e2e import vip_label

VIPS = int(os.environ.get("AXLB_SCALE_VIPS", "50000"))
BACKENDS = 4
# See the docstring: a scrape of 50,000 VIPs takes 3-6 s on a busy 2-core host.
INTERVAL_S = 15.0
# Extra VIPs made and then deleted: some freed (index gaps), some kept ` removed`.
DELETED, KEPT_REMOVED = 4, 3

VIP_TABLE = f"{ROOT}.1.2"
BACKEND_TABLE = f"{ROOT}.1.3"
VIP_ENTRY = f"{VIP_TABLE}.1"
BACKEND_ENTRY = f"{BACKEND_TABLE}.1"
ROUTE_PACKETS, DISCONTINUITY = 18, 20
ENCAPS = {"gre4": 1, "gre6": 2, "l3dsr": 3, "nat4": 4, "nat6": 5}
INET = {4: 1, 6: 2}
TRUE, FALSE = 1, 2
UP, NO_ACTIVE = 1, 2
USED, REMOVED = 1, 2
NEAR_WRAP = 2**64 - 2

Oid = tuple[int, ...]
Cell = tuple[Oid, str, Any]  # (OID, net-snmp type name, value)


# ---------------------------------------------------------------- the VPP


def _v4_backend(k: int) -> str:
    k %= 4096  # a farm of 4,096 servers shared by all VIPs
    return f"172.16.{k >> 8}.{k & 255}"


def _v6_backend(k: int) -> str:
    return f"2001:db8:b::{k % 4096 + 1:x}"


def _vip_spec(i: int) -> dict[str, Any]:
    """VIP number `i` of the mix: prefix, encap, protocol and port, options."""
    v6 = i % 5 == 4
    spec: dict[str, Any] = {"protocol": 6, "port": (80, 443, 8080)[i % 3]}
    if i % 3 == 2 and not v6:
        spec.update(protocol=17, port=53)
    if v6:
        spec["prefix"] = f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::1/128"
        spec["encap"] = {9: "nat6", 19: "gre4"}.get(i % 40, "gre6")
    else:
        spec["prefix"] = f"10.{64 + (i >> 16)}.{i >> 8 & 255}.{i & 255}/32"
        spec["encap"] = {3: "l3dsr", 13: "nat4", 23: "gre6"}.get(i % 40, "gre4")
    if i % 50 == 1:  # the same address as VIP i - 1 (IPv4, tcp), another port
        spec.update(prefix=_vip_spec(i - 1)["prefix"], protocol=6, port=9443, encap="gre4")
    if i % 100 == 7:  # every protocol, every port, on a /24
        k = i // 100
        spec.update(prefix=f"10.{200 + (k >> 8)}.{k & 255}.0/24", protocol=255, port=0)
    if i % 100 == 59:  # IPv6, every port, on a /64
        spec.update(prefix=f"2001:db8:ff{i >> 16:x}:{i & 0xFFFF:x}::/64", protocol=255, port=0)
    if spec["encap"] == "l3dsr":
        spec["dscp"] = i % 64
    if spec["encap"] in ("nat4", "nat6"):
        spec.update(nat_type="nodeport" if i % 2 else "clusterip", target_port=30000 + i % 1000)
    spec["new_size"] = 4096 if i % 9 == 0 else 1024
    spec["src_ip_sticky"] = i % 11 == 0
    return spec


def _backends(i: int, encap: str) -> list[str]:
    """Backend addresses of VIP `i` (the encap's family; none on a few VIPs)."""
    if i % 2500 == 33:
        return []
    make = _v6_backend if encap in ("gre6", "nat6") else _v4_backend
    return [make(i * BACKENDS + b) for b in range(BACKENDS)]


def populate(vpp: EmulatedVpp, n: int) -> None:
    """`n` served VIPs (plus ones deleted again) with backends and traffic."""
    made: list[int] = []
    for i in range(n + DELETED + KEPT_REMOVED):
        spec = _vip_spec(i)
        index = vpp.add_vip(spec.pop("prefix"), **spec)
        made.append(index)
        addresses = _backends(i, spec["encap"])
        for b, address in enumerate(addresses):
            vpp.add_backend(index, address, weight=(i + 37 * b) % 101)
            if (i + b) % 3 == 0:
                vpp.set_flows(index, address, (i * 7 + b) % 100_000)
        if addresses and i % 97 == 5:
            vpp.remove_backend(index, addresses[1])
        if addresses and i % 4999 == 17:  # every backend removed: noActiveBackends
            for address in addresses:
                vpp.remove_backend(index, address)
        if i == 1:  # one counter near the top of Counter64, on one thread only
            vpp.set_counter(LB_COUNTERS[0], 0, index, NEAR_WRAP)
            continue
        vpp.traffic(
            index,
            thread=1 + i % 2,  # every VIP on one worker ...
            next_packets=i * 1009 + 17 + (2**33 if i % 1000 == 500 else 0),
            first_packets=i % 997 + 1,
            untracked_packets=i % 7,
            no_server_packets=0 if addresses else i % 50 + 1,
            octets_per_packet=64 + i % 1400,
        )
        if i % 4 == 0:  # ... some on the other worker too, some on the main thread
            vpp.traffic(index, thread=2 - i % 2, next_packets=i % 5003 + 1, first_packets=3)
        if i % 13 == 0:
            vpp.traffic(index, thread=0, untracked_packets=i % 11 + 1)
    # Deleted again: freed (a gap in the indices) or listed ` removed` (not served).
    step = len(made) // (DELETED + KEPT_REMOVED + 1)
    for k in range(DELETED + KEPT_REMOVED):
        vpp.del_vip(made[(k + 1) * step], keep_removed=k >= DELETED)


@dataclass
class ModelVip:
    name: str
    lb: tuple[int, ...]  # the four LB counters summed over threads
    route: tuple[int, int] | None  # /net/route/to packets, octets at the prefix's entry
    backends: list[dict[str, Any]] = field(default_factory=list)


def model(vpp: EmulatedVpp) -> dict[int, ModelVip]:
    """What the emulator holds, served VIPs only (read from its own model)."""
    out: dict[int, ModelVip] = {}
    with vpp.lock:
        seg = vpp.segment
        rows = {
            name: [seg.row_values(name, t, seg.length(name)) for t in range(vpp.n_threads)]
            for name in LB_COUNTERS
        }
        for index, v in vpp._vips.items():
            if v.removed:
                continue
            lb = tuple(sum(row[index] for row in rows[name]) for name in LB_COUNTERS)
            route = None
            fib = vpp._routes.get(v.prefix)
            if fib is not None:
                pairs = [
                    seg.get_combined(ROUTE_TO, t, fib.stats_index) for t in range(vpp.n_threads)
                ]
                route = (sum(p for p, _ in pairs), sum(o for _, o in pairs))
            backends = [
                {
                    "address": str(b.address),
                    "buckets": buckets,
                    "flows": b.flows,
                    "state": "removed" if b.removed else "used",
                    "weight": b.weight,
                }
                for b, buckets in zip(v.backends, v.buckets())
            ]
            out[index] = ModelVip(vip_label(v.prefix, v.protocol, v.port), lb, route, backends)
    return out


# ---------------------------------------------------------------- dump -> cells


def run_dump(vpp: EmulatedVpp, path: str) -> list[dict[str, Any]]:
    """`agentx-lb dump` as a process; its VIPs (one JSON object per line of its output)."""
    with open(path, "w", encoding="utf-8") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "agentx_lb", "dump", "--vpp-api-socket", vpp.api_socket,
             "--vpp-stats-socket", vpp.stats_socket, "--vpp-timeout", "60"],
            stdout=out, stderr=subprocess.PIPE, text=True, env=child_env(), timeout=600,
            check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["problems"] == [], doc["problems"][:5]
    vips: list[dict[str, Any]] = doc["vips"]
    return vips


def _oid(text: str) -> Oid:
    return tuple(int(p) for p in text.split("."))


def _backend_suffix(vip_index: int, address: str) -> Oid:
    packed = ipaddress.ip_address(address).packed
    return (vip_index, INET[4 if len(packed) == 4 else 6], len(packed), *packed)


def vip_cells(vips: list[dict[str, Any]], first_scrape: int) -> Iterator[Cell]:
    """vppLbVipTable as `dump` describes it, in OID order (column, then index)."""
    entry = _oid(VIP_ENTRY)
    rows = sorted(vips, key=lambda v: v["index"])

    def active(v: dict[str, Any]) -> int:
        return int(v["active_backend_count"])

    columns: list[tuple[int, str, Callable[[dict[str, Any]], Any]]] = [
        (2, "STRING", lambda v: v["name"].encode()),
        (3, "INTEGER", lambda v: INET[v["ip_version"]]),
        (4, "STRING", lambda v: ipaddress.ip_address(v["address"]).packed),
        (5, "Gauge32", lambda v: v["prefix_length"]),
        (6, "Gauge32", lambda v: v["protocol"]),
        (7, "Gauge32", lambda v: v["port"]),
        (8, "INTEGER", lambda v: ENCAPS[v["encap"]]),
        (9, "INTEGER", lambda v: TRUE if v["src_ip_sticky"] else FALSE),
        (10, "Gauge32", lambda v: v["flow_table_length"]),
        (11, "Gauge32", lambda v: v["backend_count"]),
        (12, "Gauge32", active),
        (13, "INTEGER", lambda v: UP if active(v) else NO_ACTIVE),
        (14, "Counter64", lambda v: v["next_packets"]),
        (15, "Counter64", lambda v: v["first_packets"]),
        (16, "Counter64", lambda v: v["untracked_packets"]),
        (17, "Counter64", lambda v: v["no_server_packets"]),
        (18, "Counter64", lambda v: v["route_packets"]),
        (19, "Counter64", lambda v: v["route_octets"]),
        # dump's one scrape is its time 0; the agent's first scrape is TimeStamp `first_scrape`.
        (20, "Timeticks", lambda v: first_scrape + v["discontinuity_cs"]),
    ]
    for col, typ, value in columns:
        for v in rows:
            got = value(v)
            if got is not None:
                yield entry + (col, v["index"]), typ, got


def backend_cells(vips: list[dict[str, Any]]) -> Iterator[Cell]:
    """vppLbBackendTable as `dump` describes it, in OID order."""
    entry = _oid(BACKEND_ENTRY)
    rows = sorted(
        ((_backend_suffix(v["index"], b["address"]), v, b) for v in vips for b in v["backends"]),
        key=lambda r: r[0],
    )
    columns: list[tuple[int, str, Callable[[dict[str, Any], dict[str, Any]], Any]]] = [
        (3, "INTEGER", lambda v, b: USED if b["state"] == "used" else REMOVED),
        (4, "Gauge32", lambda v, b: b["weight"]),
        (5, "Gauge32", lambda v, b: b["buckets"]),
        (6, "Gauge32", lambda v, b: b["flows"]),
        (7, "STRING", lambda v, b: f"{b['address']} via {v['name']}".encode()),
    ]
    for col, typ, value in columns:
        for suffix, v, b in rows:
            got = value(v, b)
            if got is not None:
                yield entry + (col, *suffix), typ, got


# ---------------------------------------------------------------- the walk


def walked_cells(lines: Iterable[str]) -> Iterator[Cell]:
    """`snmpbulkwalk -On -Ox` lines -> cells; a Hex-STRING goes on over more lines."""
    pending: list[Any] | None = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.startswith("."):
            assert pending is not None and pending[1] == "Hex-STRING", line
            pending[2] += " " + line
            continue
        if pending is not None:
            yield _finish(pending)
        oid, _, rest = line.partition(" = ")
        typ, _, text = rest.partition(": ")
        pending = [oid, typ, text]
    if pending is not None:
        yield _finish(pending)


def _finish(p: list[Any]) -> Cell:
    oid, typ, text = _oid(p[0][1:]), p[1], p[2]
    if typ == "Hex-STRING":
        return oid, "STRING", bytes.fromhex(text)
    if typ == "STRING":  # an empty string is printed as ""
        assert text == '""', (oid, text)
        return oid, "STRING", b""
    if typ == "Timeticks":
        return oid, typ, int(text[1 : text.index(")")])
    if typ in ("INTEGER", "Gauge32", "Counter64"):
        return oid, typ, int(text)
    return oid, typ, text  # anything else (noSuchObject...) mismatches


@dataclass
class Comparison:
    cells: int = 0
    missing: list[Cell] = field(default_factory=list)
    extra: list[Cell] = field(default_factory=list)
    different: list[tuple[Cell, Cell]] = field(default_factory=list)
    not_increasing: list[tuple[Oid, Oid]] = field(default_factory=list)

    def problems(self) -> str:
        def few(items: list[Any]) -> str:
            shown = "; ".join(repr(x) for x in items[:5])
            return f"{len(items)} ({shown}{' ...' if len(items) > 5 else ''})"

        parts = [
            f"{name} {few(items)}"
            for name, items in (
                ("missing", self.missing),
                ("extra", self.extra),
                ("different", self.different),
                ("not increasing", self.not_increasing),
            )
            if items
        ]
        return ", ".join(parts)


def compare(want: Iterable[Cell], got: Iterable[Cell]) -> Comparison:
    """One ordered merge of the expected cells with the walked ones."""
    result = Comparison()
    w_it, g_it = iter(want), iter(got)
    w, g = next(w_it, None), next(g_it, None)
    last: Oid | None = None
    while w is not None or g is not None:
        if g is not None and last is not None and g[0] <= last:
            result.not_increasing.append((last, g[0]))
            g = next(g_it, None)
            continue
        if g is None or (w is not None and w[0] < g[0]):
            assert w is not None
            result.missing.append(w)
            w = next(w_it, None)
            continue
        last = g[0]
        result.cells += 1
        if w is None or g[0] < w[0]:
            result.extra.append(g)
        else:
            if w != g:
                result.different.append((w, g))
            w = next(w_it, None)
        g = next(g_it, None)
    return result


def bulkwalk(snmpd: PrivateSnmpd, oid: str, want: Iterable[Cell]) -> tuple[Comparison, float]:
    """Walk `oid`, comparing each cell as it arrives; (comparison, seconds)."""
    env = {**child_env(), "MIBS": "", "MIBDIRS": "/dev/null"}
    cmd = ["snmpbulkwalk", "-v2c", "-c", "public", "-t", "10", "-r", "2", "-On", "-Ox",
           "-Cr25", snmpd.address, oid]  # fmt: skip
    t0 = time.monotonic()
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            result = compare(want, walked_cells(proc.stdout))
            stderr = proc.stderr.read()
            rc = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    elapsed = time.monotonic() - t0
    assert rc == 0 and not stderr.strip(), f"{' '.join(cmd)}: rc={rc} {stderr.strip()}"
    return result, elapsed


# ---------------------------------------------------------------- waiting


def sys_uptime(snmpd: PrivateSnmpd) -> int:
    """snmpd's sysUpTime.0 in centiseconds."""
    text = snmpd.get("1.3.6.1.2.1.1.3.0", options=["-Ot"]).partition(" = ")[2].strip()
    return int(text.rpartition(" ")[2])


def served_so_far(served: Served, snmpd: PrivateSnmpd) -> str:
    """What snmpd serves now, for a failure message."""
    scalars = served.scalars()
    routes = served.column(ROUTE_PACKETS) if scalars.get(VIP_COUNT) else {}
    return (
        f"vpp_connected={scalars.get(CONNECTED)} vip_count={scalars.get(VIP_COUNT)} "
        f"route_cells={len(routes)} last_error={scalars.get(LAST_ERROR)!r} "
        f"snmpd log: {snmpd.log_tail(5)}"
    )


def wait_full_table(agent: AgentProc, snmpd: PrivateSnmpd, n: int, timeout_s: float) -> float:
    """Until every VIP row is served with its route counters; seconds since the agent started."""
    served = Served(snmpd)
    deadline = agent.started + timeout_s
    while time.monotonic() < deadline:
        assert agent.alive, f"agent exited rc={agent.proc.returncode}: {agent.log[-3000:]}"
        if served.scalars().get(VIP_COUNT) == n and len(served.column(ROUTE_PACKETS)) == n:
            return time.monotonic() - agent.started
        time.sleep(1.0)
    raise AssertionError(
        f"no full table ({n} VIPs, each with its route counters) within {timeout_s:g}s; "
        f"served by then: {served_so_far(served, snmpd)}"
    )


# ---------------------------------------------------------------- the tests


def test_the_checker_sees_every_kind_of_difference() -> None:
    out = (
        ".1.3.6.1.2 = Hex-STRING: 31 30 2E 30 2E 30 2E 32 20 76 69 61 20 31 39 32 \n"
        "2E 30 2E 32 \n"
        ".1.3.6.1.3 = Counter64: 18446744073709551614\n"
        ".1.3.6.1.5 = Timeticks: (4242) 0:00:42.42\n"
        ".1.3.6.1.6 = Gauge32: 7\n"
        ".1.3.6.1.6 = Gauge32: 7\n"
        '.1.3.6.1.7 = STRING: ""\n'
    )
    got = list(walked_cells(out.splitlines(keepends=True)))
    assert got[0] == ((1, 3, 6, 1, 2), "STRING", b"10.0.0.2 via 192.0.2")
    assert got[1:3] == [
        ((1, 3, 6, 1, 3), "Counter64", NEAR_WRAP),
        ((1, 3, 6, 1, 5), "Timeticks", 4242),
    ]
    assert got[-1] == ((1, 3, 6, 1, 7), "STRING", b"")
    want = [
        ((1, 3, 6, 1, 2), "STRING", b"10.0.0.2 via 192.0.2"),
        ((1, 3, 6, 1, 3), "Counter64", NEAR_WRAP - 1),
        ((1, 3, 6, 1, 4), "Gauge32", 1),
        ((1, 3, 6, 1, 6), "Gauge32", 7),
    ]
    result = compare(want, got)
    assert result.cells == 5
    assert result.different == [(want[1], got[1])]
    assert result.missing == [want[2]]
    assert result.extra == [got[2], got[-1]]
    assert result.not_increasing == [((1, 3, 6, 1, 6), (1, 3, 6, 1, 6))]
    assert compare(want, want).problems() == ""


@pytest.mark.scale
@pytest.mark.integration
def test_whole_walk_of_50k_vips_equals_dump(
    make_vpp: Callable[..., EmulatedVpp],
    snmpd: PrivateSnmpd,
    short_tmpdir: str,
    agents: list[AgentProc],
) -> None:
    t_start = time.monotonic()
    vpp = make_vpp(workers=2, cli_style="master")
    populate(vpp, VIPS)
    populate_s = time.monotonic() - t_start

    # What dump says is what the emulator holds (an independent ground truth).
    t0 = time.monotonic()
    dump_path = os.path.join(short_tmpdir, "dump.json")
    vips = run_dump(vpp, dump_path)
    dump_s = time.monotonic() - t0
    assert len(vips) == VIPS
    held = model(vpp)
    assert sorted(v["index"] for v in vips) == sorted(held)
    counters = ("next_packets", "first_packets", "untracked_packets", "no_server_packets")
    for v in vips:
        m = held[v["index"]]
        assert (v["name"], tuple(v[c] for c in counters)) == (m.name, m.lb), v["index"]
        assert (v["route_packets"], v["route_octets"]) == (m.route or (None, None)), v["index"]
        assert v["backends"] == m.backends, v["index"]
        assert v["discontinuity_cs"] == 0
    assert max(v["next_packets"] for v in vips) == NEAR_WRAP
    assert {v["encap"] for v in vips} == set(ENCAPS)
    del held

    state_dir = os.path.join(short_tmpdir, "state")
    os.mkdir(state_dir)
    agent = AgentProc.for_vpp(
        str(vpp.run_dir), snmpd.agentx_socket, state_dir,
        interval_s=INTERVAL_S, vpp_timeout_s=30.0, log_level="info",
    )  # fmt: skip
    agents.append(agent)
    first_full_s = wait_full_table(agent, snmpd, VIPS, timeout_s=600.0)

    # Every row first seen in one scrape: one TimeStamp for all (see the docstring),
    # the first row's; the walk holds every other row to it.
    first = min(v["index"] for v in vips)
    ((_, typ, stamp),) = walked_cells(
        snmpd.get(f"{VIP_ENTRY}.{DISCONTINUITY}.{first}").splitlines()
    )
    assert typ == "Timeticks", typ

    vip_result, vip_walk_s = bulkwalk(snmpd, VIP_TABLE, vip_cells(vips, stamp))
    backend_result, backend_walk_s = bulkwalk(snmpd, BACKEND_TABLE, backend_cells(vips))
    assert stamp <= sys_uptime(snmpd)
    assert agent.alive, agent.log[-3000:]
    print(
        f"\nscale: {VIPS} VIPs x {BACKENDS} backends: populate {populate_s:.1f} s, "
        f"dump {dump_s:.1f} s, first full table {first_full_s:.1f} s after the agent started, "
        f"walks: VIP table {vip_result.cells} cells {vip_walk_s:.1f} s, backend table "
        f"{backend_result.cells} cells {backend_walk_s:.1f} s, "
        f"whole test {time.monotonic() - t_start:.1f} s; agent RSS {agent.rss_kib() // 1024} MiB"
    )
    for table, result in (("VIP", vip_result), ("backend", backend_result)):
        assert not result.problems(), (
            f"{table} table walk != dump: {result.problems()}; "
            f"served now: {served_so_far(Served(snmpd), snmpd)}"
        )
    assert vip_result.cells == VIPS * 19  # every column of every row, route counters included
    assert backend_result.cells == sum(len(v["backends"]) for v in vips) * 5
