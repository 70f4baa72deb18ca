"""The agent against a real VPP: what it serves equals what VPP itself says.

Each test starts its own VPP (scripts/run-vpp.sh, no DPDK, 4k pages) with the
representative LB of scripts/lb-representative.vpp, sends packets with VPP's
packet generator, and compares `agentx-lb dump` and snmpwalk through a private
snmpd with VPP's CLI: exact values, exact packet deltas, counters continuing
across kill -9 restarts. The timings are printed (-s shows them), never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentharness import VIP_ENTRY, AgentProc, child_env, parse_walk, wait_until
from agentx_lb.oids import VipColumn
from agentx_lb.snmpd import PrivateSnmpd, SnmpError
from realvpp import RealVpp

pytestmark = [pytest.mark.realvpp, pytest.mark.integration]

WAIT_S = 60.0  # generous: a real VPP, on a shared 2-core machine
LB_COLUMNS = (
    VipColumn.NEXT_PACKETS,
    VipColumn.FIRST_PACKETS,
    VipColumn.UNTRACKED_PACKETS,
    VipColumn.NO_SERVER_PACKETS,
)
# scripts/lb-representative.vpp: index -> (prefix, protocol name, port)
WEB4, DNS4, WEB6, NAT6 = 1, 2, 3, 8
PREFIX = {WEB4: "192.0.2.1", DNS4: "192.0.2.1", WEB6: "2001:db8::1", NAT6: "2001:db8::4"}


def _table(snmpd: PrivateSnmpd) -> dict[int, dict[int, int | str]]:
    """{column sub-id: {VIP index: value}} of the whole VIP table, one bulk walk."""
    try:
        out = snmpd.bulkwalk(VIP_ENTRY)
    except SnmpError:
        return {}
    table: dict[int, dict[int, int | str]] = {}
    for oid, (typ, text) in parse_walk(out).items():
        if not oid.startswith(VIP_ENTRY + "."):
            continue
        col, index = map(int, oid[len(VIP_ENTRY) + 1 :].split(".")[:2])
        value: int | str = int(text.split()[0]) if typ == "Counter64" else text
        if typ == "Timeticks":
            value = int(text.split("(")[1].split(")")[0])
        table.setdefault(col, {})[index] = value
    return table


def _column_size(snmpd: PrivateSnmpd, column: VipColumn) -> int:
    base = f"{VIP_ENTRY}.{int(column)}"
    try:
        out = snmpd.bulkwalk(base, reps=100)
    except SnmpError:
        return 0
    return sum(1 for line in out.splitlines() if line.startswith(f".{base}."))


def _served_lb(table: dict[int, dict[int, int | str]], index: int) -> tuple[int, ...] | None:
    try:
        return tuple(int(table[c][index]) for c in LB_COLUMNS)
    except KeyError:
        return None


def _dump(vpp: RealVpp) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "agentx_lb", "dump", "--vpp-api-socket", vpp.api_socket,
         "--vpp-stats-socket", vpp.stats_socket, *vpp.agent_flags()],
        capture_output=True, text=True, timeout=120, check=False, env=child_env(),
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), wall


def _dump_lb(doc: dict[str, Any], index: int) -> tuple[int, ...]:
    c = next(v for v in doc["vips"] if v["index"] == index)
    return (c["next_packets"], c["first_packets"], c["untracked_packets"], c["no_server_packets"])


def _dump_route(doc: dict[str, Any], index: int) -> tuple[int, int] | None:
    c = next(v for v in doc["vips"] if v["index"] == index)
    if c["route_packets"] is None:
        return None
    return (c["route_packets"], c["route_octets"])


@pytest.fixture
def lb_vpp(make_real_vpp: Callable[..., RealVpp]) -> RealVpp:
    """A started VPP with the representative LB applied through vppctl."""
    vpp = make_real_vpp()
    vpp.start()
    vpp.configure()
    return vpp


@pytest.fixture
def started_agent(
    snmpd: PrivateSnmpd, short_tmpdir: str, agents: list[AgentProc]
) -> Callable[..., AgentProc]:
    state_dir = os.path.join(short_tmpdir, "state")
    os.makedirs(state_dir, exist_ok=True)

    def start(vpp: RealVpp, **kw: object) -> AgentProc:
        kw.setdefault("extra", tuple(vpp.agent_flags()))
        agent = AgentProc.for_vpp(vpp.run_dir, snmpd.agentx_socket, state_dir, **kw)
        agents.append(agent)
        agent.wait_for("agentx connected", timeout_s=WAIT_S)
        return agent

    return start


def test_dump_equals_vpp_cli(lb_vpp: RealVpp) -> None:
    vpp = lb_vpp
    vpp.send(PREFIX[WEB4], 100, dport=80)
    vpp.send(PREFIX[DNS4], 30, proto="UDP", dport=53)
    vpp.send(PREFIX[WEB6], 40, dport=443)
    doc, _ = _dump(vpp)
    cli = vpp.lb_counters()
    vips = vpp.vips()
    live = {i for i, (_, _, removed) in vips.items() if not removed}
    assert {v["index"] for v in doc["vips"]} == live == set(range(1, 10))
    for index in live:
        assert _dump_lb(doc, index) == cli[index], index
        prefix = next(v for v in doc["vips"] if v["index"] == index)["prefix"]
        assert _dump_route(doc, index) == vpp.route_to(prefix), index
    assert sum(_dump_lb(doc, WEB4)) == 100
    assert sum(_dump_lb(doc, WEB6)) == 40
    # Two VIPs on one prefix share its FIB entry, so its counter.
    assert _dump_route(doc, WEB4) == _dump_route(doc, DNS4) == vpp.route_to("192.0.2.1/32")
    web4_route = _dump_route(doc, WEB4)
    assert web4_route is not None
    assert web4_route[0] == 130
    web4 = next(v for v in doc["vips"] if v["index"] == WEB4)
    assert {b["address"]: b["state"] for b in web4["backends"]} == {
        "10.0.0.1": "used", "10.0.0.2": "used", "10.0.0.3": "removed",
    }  # fmt: skip


def test_snmpwalk_equals_vpp_cli(
    lb_vpp: RealVpp, started_agent: Callable[..., AgentProc], snmpd: PrivateSnmpd
) -> None:
    vpp = lb_vpp
    vpp.send(PREFIX[WEB4], 25, dport=80)
    vpp.send(PREFIX[NAT6], 15, dport=30080)
    started_agent(vpp)
    cli = vpp.lb_counters()

    def matches() -> bool:
        table = _table(snmpd)
        return all(_served_lb(table, i) == cli[i] for i in range(1, 10))

    wait_until(matches, WAIT_S)
    table = _table(snmpd)
    for index, prefix in ((WEB4, "192.0.2.1/32"), (NAT6, "2001:db8::4/128")):
        route = (
            int(table[VipColumn.ROUTE_PACKETS][index]),
            int(table[VipColumn.ROUTE_OCTETS][index]),
        )
        assert route == vpp.route_to(prefix)


@pytest.mark.parametrize("workers", [0, 1], ids=["main-thread", "worker"])
def test_packet_generator_deltas_are_exact(
    make_real_vpp: Callable[..., RealVpp],
    started_agent: Callable[..., AgentProc],
    snmpd: PrivateSnmpd,
    workers: int,
) -> None:
    if workers > (os.cpu_count() or 1) - 1:
        pytest.skip("a worker needs a CPU of its own besides the main thread's")
    vpp = make_real_vpp(workers=workers)
    vpp.start()
    vpp.configure()
    started_agent(vpp)
    wait_until(lambda: _served_lb(_table(snmpd), WEB4) == (0, 0, 0, 0), WAIT_S)
    before = _table(snmpd)
    vpp.send(PREFIX[WEB4], 123, dport=80, worker=0 if workers else None)
    vpp.send(PREFIX[WEB6], 77, dport=443, worker=0 if workers else None)

    def deltas() -> tuple[int, int] | None:
        now = _table(snmpd)
        a, b = _served_lb(now, WEB4), _served_lb(now, WEB6)
        if a is None or b is None:
            return None
        got = (
            sum(a) - sum(_served_lb(before, WEB4) or ()),
            sum(b) - sum(_served_lb(before, WEB6) or ()),
        )
        return got if got == (123, 77) else None

    wait_until(deltas, WAIT_S)
    table = _table(snmpd)
    assert (
        int(table[VipColumn.ROUTE_PACKETS][WEB6]) - int(before[VipColumn.ROUTE_PACKETS][WEB6]) == 77
    )
    assert _served_lb(table, WEB4) == vpp.lb_counters()[WEB4]


def _lb_config_file(tmp: str) -> str:
    """The representative LB as a startup-config (one file VPP runs at start)."""
    from realvpp import LB_CONFIG

    path = os.path.join(tmp, "startup.vpp")
    with open(path, "w", encoding="ascii") as f:
        f.write(LB_CONFIG.read_text(encoding="ascii"))
    return path


@pytest.mark.parametrize("how", ["startup-config", "vppctl"])
def test_kill_9_and_restart_every_counter_continues(
    make_real_vpp: Callable[..., RealVpp],
    started_agent: Callable[..., AgentProc],
    snmpd: PrivateSnmpd,
    short_tmpdir: str,
    how: str,
) -> None:
    vpp = make_real_vpp()
    startup = _lb_config_file(short_tmpdir) if how == "startup-config" else None
    vpp.start(startup)
    if startup is None:
        vpp.configure()
    else:
        wait_until(lambda: len(vpp.vips()) >= 9, WAIT_S)
    vpp.send(PREFIX[WEB4], 159, dport=80)
    vpp.send(PREFIX[WEB6], 41, dport=443)
    agent = started_agent(vpp)
    cli = vpp.lb_counters()
    wait_until(lambda: _served_lb(_table(snmpd), WEB4) == cli[WEB4], WAIT_S)
    before = _table(snmpd)
    history: list[dict[int, dict[int, int | str]]] = [before]

    vpp.kill()
    vpp.start(startup)
    if startup is None:
        time.sleep(3.0)  # an operator's script applying the config a while later
        vpp.configure()
    wait_until(lambda: len(vpp.vips()) >= 9, WAIT_S)
    vpp.send(PREFIX[WEB4], 7, dport=80)
    vpp.send(PREFIX[WEB6], 3, dport=443)

    def continued() -> bool:
        table = _table(snmpd)
        history.append(table)
        a, b = _served_lb(table, WEB4), _served_lb(table, WEB6)
        return (
            a is not None and b is not None
            and sum(a) == sum(_served_lb(before, WEB4) or ()) + 7
            and sum(b) == sum(_served_lb(before, WEB6) or ()) + 3
        )  # fmt: skip

    wait_until(continued, WAIT_S)
    # None ever lower: every column of every row, at every read.
    for col in (*LB_COLUMNS, VipColumn.ROUTE_PACKETS, VipColumn.ROUTE_OCTETS):
        for index in range(1, 10):
            seen = [int(t[col][index]) for t in history if index in t.get(col, {})]
            assert seen == sorted(seen), (col, index, seen)
    after = history[-1]
    assert int(after[VipColumn.DISCONTINUITY_TIME][WEB4]) > int(
        before[VipColumn.DISCONTINUITY_TIME][WEB4]
    )
    print(
        f"\nrestart ({how}): {VipColumn.FIRST_PACKETS.name} of VIP {WEB4}:"
        f" before {_served_lb(before, WEB4)}, after {_served_lb(after, WEB4)}"
    )
    assert agent.alive


def test_snmpd_restart_values_continue(
    lb_vpp: RealVpp, started_agent: Callable[..., AgentProc], snmpd: PrivateSnmpd
) -> None:
    vpp = lb_vpp
    vpp.send(PREFIX[WEB4], 11, dport=80)
    agent = started_agent(vpp)
    wait_until(lambda: sum(_served_lb(_table(snmpd), WEB4) or ()) == 11, WAIT_S)
    mark = agent.mark()
    snmpd.restart()
    agent.wait_for("agentx connected", timeout_s=WAIT_S, mark=mark)
    vpp.send(PREFIX[WEB4], 5, dport=80)
    wait_until(lambda: sum(_served_lb(_table(snmpd), WEB4) or ()) == 16, WAIT_S)


def _big_config(path: str, n: int) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write("lb conf ip4-src-address 10.255.0.1 ip6-src-address 2001:db8:ff::1\n")
        for i in range(n):
            prefix = f"10.{100 + (i >> 16)}.{i >> 8 & 255}.{i & 255}/32"
            f.write(f"lb vip {prefix} protocol tcp port 80 encap gre4\n")
            f.write(f"lb as {prefix} protocol tcp port 80 10.0.0.{1 + i % 8}\n")


def test_10000_vips_vpp_busy_loading_then_timings(
    make_real_vpp: Callable[..., RealVpp],
    started_agent: Callable[..., AgentProc],
    snmpd: PrivateSnmpd,
) -> None:
    n = 10_000
    vpp = make_real_vpp()
    config = os.path.join(tempfile.mkdtemp(prefix="axlb-cfg-", dir="/tmp"), "big.vpp")
    _big_config(config, n)
    t_vpp = time.monotonic()
    vpp.start(config)  # VPP answers while its startup-config is still adding VIPs
    agent = started_agent(vpp, interval_s=5.0, vpp_timeout_s=1.0)
    t_agent = agent.started

    def all_served() -> bool:
        # One column (10,000 varbinds), not the whole table: the poll itself
        # must not be what takes seconds. The route column is the last to fill.
        return _column_size(snmpd, VipColumn.ROUTE_PACKETS) == n

    wait_until(all_served, 180.0, step_s=1.0)
    first_full = time.monotonic() - t_agent
    assert agent.alive
    # Agent started on a VPP that has every VIP: start to every row served.
    agent.stop()
    agent2 = started_agent(vpp, interval_s=5.0, vpp_timeout_s=1.0)
    wait_until(all_served, 120.0, step_s=0.2)
    start_to_served = time.monotonic() - agent2.started
    _doc, dump_wall = _dump(vpp)
    durations = []
    for _ in range(3):
        mark = agent2.mark()
        _, line = agent2.wait_for(r"scrape ok vips=10000", timeout_s=30.0, mark=mark)
        durations.append(int(line.rsplit("duration_ms=", 1)[1].split()[0]))
    vpp_start_to_full = first_full + (t_agent - t_vpp)
    print(
        f"\n10,000 VIPs: VPP start to agent's first full table {vpp_start_to_full:.2f} s"
        f" (agent start while VPP loads: {first_full:.2f} s); agent start to every row"
        f" served {start_to_served:.2f} s; agentx-lb dump {dump_wall:.2f} s wall;"
        f" steady scrape {sorted(durations)} ms"
    )
