"""Time end to end: the real agent process, the emulated VPP, a private snmpd.

docs/architecture.md: "The age rule", "TimeStamps: one clock, snmpd's".

* TimeStamps are snmpd's sysUpTime at the event (snmpd started well before
  the agent), and none exceeds sysUpTime after snmpd restarts;
* with VPP's API hung (a call that never returns), no VIP row is answered once
  its scrape is older than the limit, whatever the scrape thread is doing;
  SIGTERM then exits 0 in under 0.5 s, writing the counter state marked clean;
* kill -9 and a VPP restart while the agent is down never yield a lower
  counter without a moved discontinuity time.

Bounded waits only.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from agentharness import (
    COL_DISC,
    COL_NAME,
    COL_NEXT,
    LAST_CHANGE,
    TABLE_AGE,
    VIP_COUNT,
    VIP_ENTRY,
    AgentProc,
    Served,
    wait_until,
)
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd, SnmpError

pytestmark = pytest.mark.integration

WAIT_S = 20.0
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SLACK_CS = 100  # the issue's +-1 s


@pytest.fixture
def served(snmpd: PrivateSnmpd) -> Served:
    return Served(snmpd)


@pytest.fixture
def state_dir(short_tmpdir: str) -> str:
    path = os.path.join(short_tmpdir, "state")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture
def start_agent(
    snmpd: PrivateSnmpd, state_dir: str, agents: list[AgentProc]
) -> Callable[..., AgentProc]:
    def start(vpp: EmulatedVpp, **kw: object) -> AgentProc:
        agent = AgentProc.for_vpp(str(vpp.run_dir), snmpd.agentx_socket, state_dir, **kw)
        agents.append(agent)
        agent.wait_for("agentx connected")
        return agent

    return start


def uptime_cs(snmpd: PrivateSnmpd) -> int:
    out = snmpd.get(SYS_UPTIME, options=["-Ot"])  # `.1.3.6.1.2.1.1.3.0 = 1234`
    return int(out.split("=")[-1].strip())


def sample(snmpd: PrivateSnmpd, served: Served) -> tuple[int, dict[int, int], int]:
    """(sysUpTime before, discontinuity column, sysUpTime after): the column was
    read between the two."""
    before = uptime_cs(snmpd)
    disc = served.numbers(COL_DISC)
    return before, disc, uptime_cs(snmpd)


def test_timestamps_are_snmpds_sysuptime_at_the_event(
    snmpd: PrivateSnmpd,
    served: Served,
    make_vpp: Callable[..., EmulatedVpp],
    start_agent: Callable[..., AgentProc],
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    time.sleep(5.0)  # snmpd has been up well before the agent starts
    started_cs = uptime_cs(snmpd)
    start_agent(vpp)  # interval 1 s
    # The row is created by the agent's first scrape, after `started_cs`.
    _, disc, after = wait_until(lambda: s if (s := sample(snmpd, served))[1] else None, WAIT_S)
    assert started_cs - SLACK_CS <= disc[a] <= after + SLACK_CS, (started_cs, disc, after)
    last_change = served.scalars()[LAST_CHANGE]
    assert started_cs - SLACK_CS <= int(last_change) <= after + SLACK_CS

    # VPP restarts: the discontinuity moves to sysUpTime at the scrape that saw it.
    time.sleep(2.0)
    before = uptime_cs(snmpd)
    vpp.restart()
    _, moved, seen = wait_until(
        lambda: s if (s := sample(snmpd, served))[1].get(a, disc[a]) != disc[a] else None, WAIT_S
    )
    assert before - SLACK_CS <= moved[a] <= seen + SLACK_CS, (before, moved, seen)

    # snmpd restarts (sysUpTime back near 0): no TimeStamp exceeds the new sysUpTime;
    # every event happened before snmpd's re-initialisation: 0 (RFC 2579).
    snmpd.restart()
    wait_until(lambda: served.numbers(COL_DISC), WAIT_S)
    _, after_restart, now_cs = sample(snmpd, served)
    scalars = served.scalars()
    assert after_restart == {a: 0}, (after_restart, now_cs)
    assert 0 <= int(scalars[LAST_CHANGE]) <= now_cs


def _poll_rows(snmpd: PrivateSnmpd, oid: str, until: float) -> list[tuple[float, bool]]:
    """(time the GET was sent, row answered) until `until`, every 0.1 s."""
    got = []
    while time.monotonic() < until:
        sent = time.monotonic()
        try:
            out = snmpd.get(oid, timeout="1", retries="0")
            got.append((sent, "No Such" not in out))
        except SnmpError:
            got.append((sent, False))
        time.sleep(0.1)
    return got


@pytest.mark.parametrize("interval_s", [1.0, 5.0])
def test_vpp_hung_no_row_past_the_limit_and_sigterm_fast(
    snmpd: PrivateSnmpd,
    served: Served,
    state_dir: str,
    make_vpp: Callable[..., EmulatedVpp],
    start_agent: Callable[..., AgentProc],
    interval_s: float,
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    vpp.traffic(a, thread=1, next_packets=100)
    # A VPP call that hangs stays hung for a minute: the scrape thread is stuck in it.
    agent = start_agent(vpp, interval_s=interval_s, vpp_timeout_s=60.0)
    wait_until(lambda: served.column(COL_NEXT) == {a: 100}, WAIT_S)
    vpp.faults.hang = {"cli_inband", "sockclnt_delete", "control_ping"}
    hung_at = time.monotonic()
    limit_s = 3 * interval_s  # max_stale_intervals 3
    name = f"{VIP_ENTRY}.{COL_NAME}.{a}"
    polls = _poll_rows(snmpd, name, hung_at + limit_s + 2.0)
    # The last good scrape started before the hang: its rows are too old at
    # hung_at + limit at the latest (0.1 s for the two processes' clocks).
    late = [round(t - hung_at, 2) for t, row in polls if row and t > hung_at + limit_s + 0.1]
    assert late == [], f"rows answered {late} s after the hang (limit {limit_s} s)"
    assert any(row for t, row in polls), "the rows were never served while fresh"
    sc = served.scalars()
    assert sc[VIP_COUNT] == 0
    assert int(sc[TABLE_AGE]) >= limit_s

    # SIGTERM while the scrape thread is stuck in VPP: exit 0, fast, state written clean.
    rc, elapsed = agent.stop(signal.SIGTERM, timeout_s=10.0)
    assert rc == 0, agent.log
    assert elapsed < 0.5, f"SIGTERM took {elapsed:.2f} s"
    with open(os.path.join(state_dir, "counters.json"), encoding="utf-8") as f:
        assert json.load(f)["clean"] is True


@pytest.fixture
def moving_traffic() -> Iterator[Callable[[EmulatedVpp, int], None]]:
    """Start a thread that adds packets to a VIP every 0.1 s until the test ends."""
    stop = threading.Event()
    threads = []

    def start(vpp: EmulatedVpp, index: int) -> None:
        def body() -> None:
            while not stop.wait(0.1):
                try:
                    vpp.traffic(index, thread=1, next_packets=1000)
                except KeyError:  # VPP restarting: the VIP is back in a moment
                    continue

        t = threading.Thread(target=body, daemon=True)
        t.start()
        threads.append(t)

    yield start
    stop.set()
    for t in threads:
        t.join(5)


def test_kill9_and_vpp_restart_never_a_lower_counter_without_a_moved_discontinuity(
    served: Served,
    make_vpp: Callable[..., EmulatedVpp],
    start_agent: Callable[..., AgentProc],
    moving_traffic: Callable[[EmulatedVpp, int], None],
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    moving_traffic(vpp, a)
    agent = start_agent(vpp)  # interval 1 s
    wait_until(lambda: served.numbers(COL_NEXT).get(a), WAIT_S)
    time.sleep(4.0)  # counters move for a few intervals after the state was written
    before = wait_until(lambda: served.numbers(COL_NEXT).get(a), WAIT_S)
    disc_before = served.numbers(COL_DISC)[a]
    agent.kill()  # SIGKILL: no clean stop
    vpp.restart()  # VPP restarts while the agent is down: counters from 0
    start_agent(vpp)
    after = wait_until(lambda: served.numbers(COL_NEXT).get(a), WAIT_S)
    disc_after = served.numbers(COL_DISC)[a]
    assert int(after) >= int(before) or disc_after != disc_before, (
        before,
        after,
        disc_before,
        disc_after,
    )
