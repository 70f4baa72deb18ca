"""VPP's worst days, end to end: the real agent process, the emulated VPP, a private snmpd.

Each test breaks VPP in one way and checks what the agent serves through
snmpd (scalars and VIP rows), what it logs, and that it is alive and serving
again afterwards. Bounded waits only; the figures (recovery seconds, CPU while
VPP hangs) are measured by bench/bench_faults.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from agentharness import (
    COL_DISC,
    COL_FIRST,
    COL_NEXT,
    CONNECTED,
    CONSECUTIVE_FAILURES,
    LAST_ERROR,
    SCRAPE_FAILURES,
    VIP_COUNT,
    AgentProc,
    Served,
    num,
    wait_until,
)
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.oids import TRUTH_FALSE, TRUTH_TRUE
from agentx_lb.snmpd import PrivateSnmpd

pytestmark = pytest.mark.integration

WAIT_S = 20.0  # generous bound on every wait: the figures live in the benchmark


@pytest.fixture
def start_agent(
    snmpd: PrivateSnmpd, short_tmpdir: str, agents: list[AgentProc]
) -> Callable[..., AgentProc]:
    state_dir = os.path.join(short_tmpdir, "state")
    os.makedirs(state_dir, exist_ok=True)

    def start(vpp_dir: str, **kw: object) -> AgentProc:
        agent = AgentProc.for_vpp(vpp_dir, snmpd.agentx_socket, state_dir, **kw)
        agents.append(agent)
        agent.wait_for("agentx connected")
        return agent

    return start


@pytest.fixture
def served(snmpd: PrivateSnmpd) -> Served:
    return Served(snmpd)


@pytest.fixture
def down_vpp() -> Iterator[EmulatedVpp]:
    """An emulated VPP whose sockets are not served yet."""
    run_dir = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    emu = EmulatedVpp(run_dir, workers=2)
    try:
        yield emu
    finally:
        emu.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _monotonic(values: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


# ------------------------------------------------------------------ VPP absent


@pytest.mark.parametrize("stale", [False, True], ids=["absent", "stale-socket-files"])
def test_vpp_not_running_at_start_then_up(
    down_vpp: EmulatedVpp, start_agent: Callable[..., AgentProc], served: Served, stale: bool
) -> None:
    vpp = down_vpp
    vpp.start()
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    vpp.traffic(a, thread=1, next_packets=42)
    if stale:
        vpp.kill()  # crashed VPP: both socket files left, nobody listening
    else:
        vpp.api_socket_down()
        vpp.stats_socket_down()
    assert os.path.exists(vpp.api_socket) is stale

    agent = start_agent(str(vpp.run_dir))
    sc = wait_until(lambda: s if (s := served.scalars()).get(SCRAPE_FAILURES) else None, WAIT_S)
    assert sc[CONNECTED] == TRUTH_FALSE
    assert sc[VIP_COUNT] == 0
    reason = "connection refused" if stale else "no such socket"
    assert vpp.api_socket in str(sc[LAST_ERROR]) and reason in str(sc[LAST_ERROR])
    assert served.names() == {}
    assert served.column(COL_NEXT) == {}  # unknown is absent, never 0

    mark = agent.mark()
    vpp.api_socket_up()
    vpp.stats_socket_up()
    next_packets = wait_until(lambda: served.column(COL_NEXT), WAIT_S)
    assert next_packets == {a: 42}
    assert served.scalars()[CONNECTED] == TRUTH_TRUE
    # Rows at the first scrape after VPP came up: at most the one scrape that
    # was already under way failed.
    assert agent.count("scrape failed again", mark) <= 1
    _, ok = agent.wait_for("scrape ok", mark=mark)
    assert "vips=1" in ok
    assert agent.count(r"WARNING .*scrape failed") == 1  # one warning for the whole streak
    assert agent.alive


# ------------------------------------------------------------------ VPP restart


def test_vpp_restart_same_vips_monotonic_new_identity_new_row(
    make_vpp: Callable[..., EmulatedVpp], start_agent: Callable[..., AgentProc], served: Served
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    b = vpp.add_vip("2001:db8::20/128", protocol=17, port=53, encap="gre6")
    vpp.add_backend(a, "10.0.0.1")
    vpp.traffic(a, thread=1, next_packets=1000)
    vpp.traffic(b, thread=2, next_packets=500)
    agent = start_agent(str(vpp.run_dir))
    wait_until(lambda: served.column(COL_NEXT) == {a: 1000, b: 500}, WAIT_S)
    disc0 = served.numbers(COL_DISC)

    seen: list[int] = []

    def next_a(want: int) -> bool:
        got = served.column(COL_NEXT)
        if a in got:
            seen.append(int(got[a]))
        return got.get(a) == want

    # Same VIPs: new memfd, new message ids, VPP's counters back at 0.
    vpp.restart(keep_vips=True)
    assert vpp.vip_indices() == [a, b]
    vpp.traffic(a, thread=1, next_packets=10)
    wait_until(lambda: next_a(1010), WAIT_S)
    # Live values of the new segment, not the dead VPP's frozen one.
    vpp.traffic(a, thread=2, next_packets=5)
    wait_until(lambda: next_a(1015), WAIT_S)
    assert _monotonic(seen) and min(seen) >= 1000, seen
    disc1 = served.numbers(COL_DISC)
    assert disc1[a] > disc0[a] and disc1[b] > disc0[b]  # the reset was absorbed: a discontinuity
    assert served.column(COL_NEXT)[b] == 500

    # Different VIPs: index `a` now belongs to another identity, a new row.
    vpp.restart(keep_vips=False)
    c = vpp.add_vip("198.51.100.1/32", protocol=6, port=443)
    assert c == a
    vpp.traffic(c, thread=1, next_packets=3)
    wait_until(lambda: served.column(COL_NEXT) == {c: 3}, WAIT_S)
    assert served.names() == {c: "198.51.100.1/32 tcp/443"}
    assert served.numbers(COL_DISC)[c] > disc1[a]
    assert agent.alive


def test_vpp_restart_with_startup_config_keeps_counters_through_the_empty_lb(
    make_vpp: Callable[..., EmulatedVpp], start_agent: Callable[..., AgentProc], served: Served
) -> None:
    # kill -9 and a restart with the LB in `unix { startup-config }`: the API
    # answers seconds before the VIPs exist (seen on VPP 25.10). The agent
    # must serve the empty LB as it is, and continue every counter after it.
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    b = vpp.add_vip("2001:db8::20/128", protocol=17, port=53, encap="gre6")
    vpp.traffic(a, thread=1, first_packets=159)
    vpp.traffic(b, thread=2, next_packets=500)
    agent = start_agent(str(vpp.run_dir))
    wait_until(lambda: served.column(COL_NEXT) == {a: 0, b: 500}, WAIT_S)
    firsts: list[int] = []

    def first_a() -> int | None:
        got = served.numbers(COL_FIRST)
        if a in got:
            firsts.append(int(got[a]))
        return got.get(a)

    wait_until(lambda: first_a() == 159, WAIT_S)
    vpp.kill()
    vpp.restart(lb_after_s=3.0, load_s=0.5)
    wait_until(lambda: served.scalars().get(VIP_COUNT) == 0, WAIT_S)  # the empty LB, as it is
    vpp.wait_restored()
    vpp.traffic(a, thread=1, first_packets=3)
    vpp.traffic(b, thread=1, next_packets=1)
    wait_until(lambda: first_a() == 162 and served.column(COL_NEXT).get(b) == 501, WAIT_S)
    assert _monotonic(firsts) and min(firsts) >= 159, firsts
    assert agent.alive


# ------------------------------------------------------------ VIP index reuse


def test_vip_deleted_then_index_reused_is_a_new_row(
    make_vpp: Callable[..., EmulatedVpp], start_agent: Callable[..., AgentProc], served: Served
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    b = vpp.add_vip("192.0.2.20/32")
    vpp.traffic(a, thread=1, next_packets=1000)
    vpp.traffic(b, thread=1, next_packets=5)
    agent = start_agent(str(vpp.run_dir))
    wait_until(lambda: served.column(COL_NEXT) == {a: 1000, b: 5}, WAIT_S)
    disc0 = served.numbers(COL_DISC)

    vpp.del_vip(a)
    wait_until(lambda: set(served.names()) == {b}, WAIT_S)
    assert set(served.column(COL_NEXT)) == {b}  # the old row's cells are gone too

    c = vpp.add_vip("192.0.2.99/32", protocol=17, port=53)
    assert c == a  # VPP's pool hands the freed index out again
    vpp.traffic(c, thread=2, next_packets=7)
    seen: list[int] = []

    def new_row() -> bool:
        got = served.column(COL_NEXT)
        if c in got:
            seen.append(int(got[c]))
        return got.get(c) == 7

    wait_until(new_row, WAIT_S)
    assert max(seen) == 7  # nothing of the old identity's 1000 carried over
    assert served.names()[c] == "192.0.2.99/32 udp/53"
    disc = served.numbers(COL_DISC)
    assert disc[c] > disc0[a]
    assert disc[b] == disc0[b]  # the untouched row keeps its discontinuity time
    assert agent.alive


# ------------------------------------------------------------------ VPP hangs


def _hang_handshake(vpp: EmulatedVpp) -> Callable[[], None]:
    vpp.faults.handshake_hang = True
    vpp.restart()  # the agent must connect anew, into a handshake that never answers

    def repair() -> None:
        vpp.faults.handshake_hang = False

    return repair


def _hang_cli(vpp: EmulatedVpp) -> Callable[[], None]:
    vpp.faults.hang = {"cli_inband"}

    def repair() -> None:
        vpp.faults.hang = set()

    return repair


def _stuck_in_progress(vpp: EmulatedVpp) -> Callable[[], None]:
    vpp.set_in_progress(1)
    return lambda: vpp.set_in_progress(0)


def _corrupt_vector(vpp: EmulatedVpp) -> Callable[[], None]:
    name = "packet from existing sessions"
    vpp.corrupt_vector(name)
    return lambda: vpp.segment.repair(name)


HANGS = {
    "handshake": (_hang_handshake, "api socket"),
    "cli-call": (_hang_cli, "no reply within"),
    "in-progress-stuck": (_stuck_in_progress, "in_progress stuck"),
    "corrupt-vector": (_corrupt_vector, "corrupt stats segment"),
}


@pytest.mark.parametrize("fault", list(HANGS))
def test_vpp_hang_bounded_no_spin_stale_then_withdrawn(
    make_vpp: Callable[..., EmulatedVpp],
    start_agent: Callable[..., AgentProc],
    served: Served,
    fault: str,
) -> None:
    inject, reason = HANGS[fault]
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    vpp.traffic(a, thread=1, next_packets=100)
    agent = start_agent(str(vpp.run_dir))  # interval 1 s, VPP timeout 0.5 s, 3 stale intervals
    wait_until(lambda: served.column(COL_NEXT) == {a: 100}, WAIT_S)
    mark = agent.mark()
    repair = inject(vpp)

    # While the scrapes fail, the last good rows stay served (with their values).
    def failing_but_served() -> bool:
        sc = served.scalars()
        return bool(sc.get(CONSECUTIVE_FAILURES)) and served.column(COL_NEXT) == {a: 100}

    wait_until(failing_but_served, WAIT_S)
    # Every VPP call is bounded and nothing spins: a busy loop would use a whole core.
    assert agent.cpu_fraction(2.5) < 0.5

    # After max_stale_intervals without a good scrape: rows withdrawn, scalars say why.
    sc = wait_until(lambda: s if (s := served.scalars()).get(VIP_COUNT) == 0 else None, WAIT_S)
    assert sc[CONNECTED] == TRUTH_FALSE
    assert reason in str(sc[LAST_ERROR]), sc[LAST_ERROR]
    assert served.names() == {}
    assert served.column(COL_NEXT) == {}  # unknown is never served as 0
    agent.wait_for("vip table withdrawn", mark=mark)
    assert agent.count(r"WARNING .*scrape failed", mark) == 1
    assert agent.count("vip table withdrawn", mark) == 1

    repair()
    wait_until(lambda: served.column(COL_NEXT) == {a: 100}, WAIT_S)  # monotonic across it all
    sc = served.scalars()
    assert sc[CONNECTED] == TRUTH_TRUE and sc[CONSECUTIVE_FAILURES] == 0
    agent.wait_for("vip table served again", mark=mark)
    assert agent.alive


# --------------------------------------------------- lb plugin, CLI text, API


@pytest.mark.parametrize(
    ("fault", "cause"),
    [("lb_plugin", "lb plugin not loaded"), ("cli_empty", "returned nothing")],
)
def test_cli_unusable_is_a_clear_health_error(
    make_vpp: Callable[..., EmulatedVpp],
    start_agent: Callable[..., AgentProc],
    served: Served,
    fault: str,
    cause: str,
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    if fault == "lb_plugin":
        vpp.faults.lb_plugin = False  # `show lb ...` answers retval -1
    else:
        vpp.faults.cli_empty = True
    agent = start_agent(str(vpp.run_dir))
    sc = wait_until(
        lambda: s if num((s := served.scalars()).get(SCRAPE_FAILURES, 0)) >= 3 else None, WAIT_S
    )
    assert sc[CONNECTED] == TRUTH_FALSE
    assert cause in str(sc[LAST_ERROR]) and vpp.api_socket in str(sc[LAST_ERROR])
    assert served.names() == {}
    warnings = [line for line in agent.since() if " WARNING " in line]
    assert len(warnings) == 1 and cause in warnings[0], warnings  # one line, whatever the count

    vpp.faults.lb_plugin, vpp.faults.cli_empty = True, False
    wait_until(lambda: set(served.names()) == {a}, WAIT_S)
    assert agent.alive


def test_unknown_cli_lines_skip_those_vips_warn_once_per_problem(
    make_vpp: Callable[..., EmulatedVpp], start_agent: Callable[..., AgentProc], served: Served
) -> None:
    vpp = make_vpp(workers=2)
    a, b, c, d = (vpp.add_vip(f"192.0.2.{i}/32", protocol=6, port=80) for i in (1, 2, 3, 4))
    vpp.traffic(d, thread=1, next_packets=9)
    # A newer VPP prints lines we do not know: two VIPs share one problem, one has another.
    vpp.faults.cli_extra = {a: "  frobnicate:on\n", b: "  frobnicate:on\n", c: "  quantum 7\n"}
    agent = start_agent(str(vpp.run_dir))
    wait_until(lambda: agent.count("scrape ok") >= 4, WAIT_S)  # several intervals
    assert served.column(COL_NEXT) == {d: 9}
    assert served.scalars()[CONNECTED] == TRUTH_TRUE
    skipped = [line for line in agent.since() if "vpp cli output skipped" in line]
    assert len(skipped) == 2, skipped
    assert any("frobnicate:on" in line for line in skipped)
    assert any("quantum 7" in line for line in skipped)
    assert all(" WARNING " in line for line in skipped)

    vpp.faults.cli_extra = {}
    wait_until(lambda: set(served.names()) == {a, b, c, d}, WAIT_S)
    assert agent.alive


@pytest.mark.parametrize("fault", ["absent", "bad_crc"])
def test_required_api_message_missing_or_other_crc(
    make_vpp: Callable[..., EmulatedVpp],
    start_agent: Callable[..., AgentProc],
    served: Served,
    fault: str,
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    getattr(vpp.faults, fault).add("ip_route_lookup")
    agent = start_agent(str(vpp.run_dir))
    sc = wait_until(
        lambda: s if num((s := served.scalars()).get(SCRAPE_FAILURES, 0)) >= 3 else None, WAIT_S
    )
    assert sc[CONNECTED] == TRUTH_FALSE
    assert "ip_route_lookup" in str(sc[LAST_ERROR])
    assert "cli_inband" not in str(sc[LAST_ERROR])  # only what is really missing
    warnings = [line for line in agent.since() if " WARNING " in line]
    assert len(warnings) == 1 and "ip_route_lookup" in warnings[0], warnings

    getattr(vpp.faults, fault).clear()
    wait_until(lambda: set(served.names()) == {a}, WAIT_S)
    assert agent.alive


def test_socket_rebind_or_chmod_without_restart_is_not_a_new_vpp(
    make_vpp: Callable[..., EmulatedVpp], start_agent: Callable[..., AgentProc], served: Served
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    vpp.traffic(a, thread=1, next_packets=100)
    agent = start_agent(str(vpp.run_dir))
    wait_until(lambda: served.column(COL_NEXT) == {a: 100}, WAIT_S)
    mark = agent.mark()
    os.chmod(vpp.stats_socket, 0o770)  # an admin or tmpfiles rule: the socket's ctime moves
    agent.wait_for("stats socket changed", mark=mark)
    vpp.api_socket_down()  # the same VPP's sockets re-bound: same segment, same boot
    vpp.stats_socket_down()
    vpp.api_socket_up()
    vpp.stats_socket_up()
    vpp.traffic(a, thread=1, next_packets=1)
    wait_until(lambda: served.column(COL_NEXT) == {a: 101}, WAIT_S)
    wait_until(lambda: agent.count("scrape ok", mark) >= 4, WAIT_S)
    assert served.column(COL_NEXT) == {a: 101}  # not 201: no offset for a VPP that never restarted
