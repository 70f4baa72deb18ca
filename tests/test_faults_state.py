"""Agent restarts and the counter-state file, end to end with the real agent process.

VPP restarted once (so the served counters carry an offset); the agent then
restarts while VPP does not: the state file (atomic, mode 0600) keeps the
offset and the counters stay monotonic. A corrupt state file costs one warning
and a fresh start; a missing one is a normal first start.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import pytest

from agentharness import COL_NEXT, AgentProc, Served, wait_until
from agentx_lb.config import STATE_FILE_NAME
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd

pytestmark = pytest.mark.integration

WAIT_S = 20.0


def test_counters_monotonic_across_agent_restart_and_bad_state_files(
    make_vpp: Callable[..., EmulatedVpp],
    snmpd: PrivateSnmpd,
    short_tmpdir: str,
    agents: list[AgentProc],
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    vpp.traffic(a, thread=1, next_packets=1000)
    state_dir = os.path.join(short_tmpdir, "state")
    os.mkdir(state_dir)
    path = os.path.join(state_dir, STATE_FILE_NAME)
    served = Served(snmpd)

    def run_agent() -> AgentProc:
        agent = AgentProc.for_vpp(str(vpp.run_dir), snmpd.agentx_socket, state_dir)
        agents.append(agent)
        agent.wait_for("agentx connected")
        return agent

    first = run_agent()
    wait_until(lambda: served.column(COL_NEXT) == {a: 1000}, WAIT_S)
    vpp.restart()  # VPP's counter back at 0: the agent serves 1000 + new traffic
    vpp.traffic(a, thread=1, next_packets=10)
    wait_until(lambda: served.column(COL_NEXT) == {a: 1010}, WAIT_S)
    wait_until(lambda: os.path.exists(path), WAIT_S)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [n for n in os.listdir(state_dir) if n != STATE_FILE_NAME]  # no temp file left
    rc, _ = first.stop()
    assert rc == 0

    # The agent restarts, VPP does not: the offset comes back from the state file.
    second = run_agent()
    second.wait_for("state loaded .* found=True")
    vpp.traffic(a, thread=2, next_packets=5)
    wait_until(lambda: served.column(COL_NEXT).get(a) == 1015, WAIT_S)
    assert served.column(COL_NEXT) == {a: 1015}  # never 15
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert second.count(" WARNING ") == 0
    rc, _ = second.stop()
    assert rc == 0

    # A corrupt state file: one warning, a fresh start (VPP's own value), no crash.
    with open(path, "wb") as f:
        f.write(b'{"version": 1, "rows": [[1, "not json')
    third = run_agent()
    wait_until(lambda: served.column(COL_NEXT) == {a: 15}, WAIT_S)
    wait_until(lambda: third.count("scrape ok") >= 3, WAIT_S)  # several intervals
    warnings = [line for line in third.since() if " WARNING " in line]
    assert len(warnings) == 1 and "state" in warnings[0] and path in warnings[0], warnings
    assert third.alive
    rc, _ = third.stop()
    assert rc == 0
    with open(path, encoding="utf-8") as text:
        assert "not json" not in text.read()  # replaced by a good one

    # A missing state file is a normal first start: a fresh start, no warning.
    os.unlink(path)
    fourth = run_agent()
    fourth.wait_for("state loaded .* found=False")
    wait_until(lambda: served.column(COL_NEXT) == {a: 15}, WAIT_S)
    wait_until(lambda: os.path.exists(path), WAIT_S)
    assert fourth.count(" WARNING ") == 0
    rc, _ = fourth.stop()
    assert rc == 0
