"""snmpd's worst days and the agent's exit, end to end with the real agent process.

snmpd absent at start, killed, restarted and upgraded (stopped, new config,
new pid): the agent reconnects and re-registers by itself and serves every row
again. SIGTERM and SIGINT in every state (nothing up, VPP absent, stale or
hanging, master gone, serving): exit status 0, and the AgentX session closed
with a Close PDU whenever a master is there to receive it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest

from agentharness import (
    COL_NAME,
    COL_NEXT,
    AgentProc,
    FakeMaster,
    Served,
    wait_until,
)
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd

pytestmark = pytest.mark.integration

WAIT_S = 20.0
CLOSE_SHUTDOWN = 5  # RFC 2741 reasonShutdown


@pytest.fixture
def daemons(short_tmpdir: str) -> Iterator[list[PrivateSnmpd]]:
    made: list[PrivateSnmpd] = []
    yield made
    for d in made:
        d.stop()


def _rows(served: Served) -> dict[int, tuple[int | str, int | str]]:
    names, nexts = served.column(COL_NAME), served.column(COL_NEXT)
    return {i: (names[i], nexts.get(i, -1)) for i in names}


def test_snmpd_down_at_start_killed_restarted_upgraded(
    make_vpp: Callable[..., EmulatedVpp],
    short_tmpdir: str,
    agents: list[AgentProc],
    daemons: list[PrivateSnmpd],
) -> None:
    vpp = make_vpp(workers=2)
    want = {}
    for i in range(1, 6):
        index = vpp.add_vip(f"192.0.2.{i}/32", protocol=6, port=80)
        vpp.traffic(index, thread=1, next_packets=100 * i)
        want[index] = (f"192.0.2.{i}/32 tcp/80", 100 * i)
    daemon = PrivateSnmpd(short_tmpdir)  # not started: snmpd is down when the agent starts
    daemons.append(daemon)
    agent = AgentProc.for_vpp(str(vpp.run_dir), daemon.agentx_socket, short_tmpdir)
    agents.append(agent)
    agent.wait_for("scrape ok")  # scraping VPP without a master
    agent.wait_for("agentx session lost")
    served = Served(daemon)

    daemon.start()
    assert wait_until(lambda: _rows(served) == want, WAIT_S)
    agent.wait_for("agentx connected")

    mark = agent.mark()
    daemon.kill()  # snmpd crashed
    agent.wait_for("agentx session lost", mark=mark)
    daemon.start()
    assert wait_until(lambda: _rows(served) == want, WAIT_S)

    old_pid = daemon.pid
    daemon.stop()  # upgrade: stopped, a fresh config, started again with a new pid
    upgraded = PrivateSnmpd(short_tmpdir, port=daemon.port)
    daemons.append(upgraded)
    upgraded.start()
    assert upgraded.pid != old_pid
    assert wait_until(lambda: _rows(Served(upgraded)) == want, WAIT_S)
    assert agent.count("agentx connected") == 3
    assert agent.alive
    rc, _ = agent.stop()
    assert rc == 0


# --------------------------------------------------------------------- signals


def _nothing(vpp: EmulatedVpp) -> None:
    vpp.api_socket_down()
    vpp.stats_socket_down()


STATES: dict[str, tuple[bool, Callable[[EmulatedVpp], None], str]] = {
    # name: (master up, what to do to VPP, log line that says the state is reached)
    "nothing-up": (False, _nothing, "agentx session lost"),
    "vpp-absent": (True, _nothing, "scrape failed"),
    "vpp-stale": (True, lambda v: v.kill(), "scrape failed"),
    "vpp-cli-hang": (True, lambda v: setattr(v.faults, "hang", {"cli_inband"}), "scrape failed"),
    "vpp-handshake-hang": (
        True,
        lambda v: setattr(v.faults, "handshake_hang", True),
        "scrape failed",
    ),
    "stats-in-progress": (True, lambda v: v.set_in_progress(1), "scrape failed"),
    "serving": (True, lambda v: None, "scrape ok"),
    "master-gone": (True, lambda v: None, "agentx session lost"),
}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("state", list(STATES))
def test_signal_in_every_state_exits_0_and_closes(
    make_vpp: Callable[..., EmulatedVpp],
    short_tmpdir: str,
    agents: list[AgentProc],
    state: str,
    sig: int,
) -> None:
    master_up, break_vpp, reached = STATES[state]
    vpp = make_vpp(workers=2)
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    break_vpp(vpp)
    path = os.path.join(short_tmpdir, "master.sock")
    master = FakeMaster(path) if master_up else None
    try:
        agent = AgentProc.for_vpp(str(vpp.run_dir), path, short_tmpdir)
        agents.append(agent)
        if master is not None:
            agent.wait_for("agentx connected")
        if state == "master-gone":
            assert master is not None
            master.close()
            master = None
        agent.wait_for(reached)
        if state in ("vpp-cli-hang", "vpp-handshake-hang", "stats-in-progress"):
            agent.wait_for("scrape failed again")  # the scrape thread is in a hung call again
        rc, _elapsed = agent.stop(sig)
        if master is not None:
            wait_until(lambda: master.closes, 5.0)  # the master reads it after the exit
    finally:
        if master is not None:
            master.close()
    assert rc == 0, agent.log
    assert "stopped status=0" in agent.log
    assert f"stopping signal={signal.Signals(sig).name}" in agent.log
    assert "crash" not in agent.log
    if master is not None:
        assert master.closes == [CLOSE_SHUTDOWN]
