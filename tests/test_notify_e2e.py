"""Notifications end to end with real tools: emulated VPP -> the agent process ->
AgentX Notify -> a private snmpd (`trap2sink`) -> a private snmptrapd, whose
log is what the tests read (numeric OIDs; one test by MIB name).

Each test waits for what it expects with a bound; none asserts a duration.
The hold-down is checked on snmpd's own clock (the sysUpTime.0 it puts in
every notification).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from agentharness import AgentProc, wait_until
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.oids import DEFAULT_ROOT, NotificationType, format_oid
from agentx_lb.snmpd import PrivateSnmpd, PrivateSnmptrapd

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
SHARED_MIBS = REPO.parent / "shared" / "mibs"
ROOT = format_oid(DEFAULT_ROOT)
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
VIP_CHANGE = f"{ROOT}.0.{int(NotificationType.VIP_OPER_STATUS_CHANGE)}"
BACKEND_CHANGE = f"{ROOT}.0.{int(NotificationType.BACKEND_STATE_CHANGE)}"
CONN_CHANGE = f"{ROOT}.0.{int(NotificationType.VPP_CONNECTION_CHANGE)}"
VIP_COL = f"{ROOT}.1.2.1"
BACKEND_COL = f"{ROOT}.1.3.1"
WAIT_S = 30.0
_VB = re.compile(r"^\.([\d.]+) = (?:([\w-]+): )?(.*)$")


@dataclass(frozen=True)
class Trap:
    uptime_cs: int
    trap: str  # snmpTrapOID.0's value, dotted
    varbinds: list[tuple[str, str, str]]  # (oid, type, value) after snmpTrapOID.0

    def value(self, oid: str) -> str:
        return next(v for o, _t, v in self.varbinds if o == oid)


def parse(line: str) -> Trap:
    """One `NOTIFICATION <varbind>\\t<varbind>...` line of PrivateSnmptrapd's log."""
    vbs = []
    for part in line[len("NOTIFICATION ") :].split("\t"):
        m = _VB.match(part)
        assert m is not None, part
        oid, typ, value = m.groups()
        vbs.append((oid, typ or "", value.strip('"')))
    assert vbs[0][0] == SYS_UPTIME and vbs[1][0] == TRAP_OID, line  # the SNMPv2 order
    uptime = int(vbs[0][2].split("(")[1].split(")")[0])
    return Trap(uptime, vbs[1][2].lstrip("."), vbs[2:])


class Traps:
    def __init__(self, trapd: PrivateSnmptrapd) -> None:
        self.trapd = trapd

    def ours(self) -> list[Trap]:
        """Received notifications under our root (not snmpd's own coldStart)."""
        traps = [parse(line) for line in self.trapd.lines()]
        return [t for t in traps if t.trap.startswith(ROOT + ".0.")]

    def of(self, trap_oid: str) -> list[Trap]:
        return [t for t in self.ours() if t.trap == trap_oid]

    def wait(self, trap_oid: str, count: int = 1, timeout_s: float = WAIT_S) -> list[Trap]:
        return wait_until(
            lambda: got if (got := self.of(trap_oid)) and len(got) >= count else None, timeout_s
        )


@dataclass
class Stack:
    vpp: EmulatedVpp
    snmpd: PrivateSnmpd
    trapd: PrivateSnmptrapd
    agent: AgentProc
    traps: Traps
    vip: int  # one backend, 10.0.0.1
    vip2: int  # two backends, 10.0.1.1 and 10.0.1.2


@pytest.fixture
def stack_factory(
    make_vpp: Callable[..., EmulatedVpp], short_tmpdir: str, agents: list[AgentProc]
) -> Iterator[Callable[..., Stack]]:
    started: list[PrivateSnmpd | PrivateSnmptrapd] = []

    def make(
        *,
        holddown_s: float = 10.0,
        interval_s: float = 1.0,
        trapd_kw: dict | None = None,
        extra: tuple[str, ...] = (),
    ) -> Stack:
        vpp = make_vpp(workers=2)
        vip = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
        vpp.add_backend(vip, "10.0.0.1")
        vip2 = vpp.add_vip("192.0.2.2/32", protocol=6, port=443)
        vpp.add_backend(vip2, "10.0.1.1")
        vpp.add_backend(vip2, "10.0.1.2")
        for name in ("trapd", "snmpd", "state"):
            os.mkdir(os.path.join(short_tmpdir, name))
        trapd = PrivateSnmptrapd(os.path.join(short_tmpdir, "trapd"), **(trapd_kw or {}))
        started.append(trapd)
        trapd.start()
        snmpd = PrivateSnmpd(os.path.join(short_tmpdir, "snmpd"), trap2sink=trapd.address)
        started.append(snmpd)
        snmpd.start()
        agent = AgentProc.for_vpp(
            str(vpp.run_dir),
            snmpd.agentx_socket,
            os.path.join(short_tmpdir, "state"),
            interval_s=interval_s,
            extra=("--notify-holddown", f"{holddown_s:g}", *extra),
        )
        agents.append(agent)
        agent.wait_for("agentx connected")
        agent.wait_for("scrape ok")
        return Stack(vpp, snmpd, trapd, agent, Traps(trapd), vip, vip2)

    yield make
    for d in started:
        d.stop()


def test_vip_and_backend_changes_arrive_with_their_varbinds(
    stack_factory: Callable[..., Stack],
) -> None:
    s = stack_factory(holddown_s=2.0)
    s.vpp.remove_backend(s.vip, "10.0.0.1")  # the VIP's only backend
    (vip_trap,) = s.traps.wait(VIP_CHANGE)
    (be_trap,) = s.traps.wait(BACKEND_CHANGE)
    v = s.vip
    assert vip_trap.varbinds == [
        (f"{VIP_COL}.2.{v}", "STRING", "192.0.2.1/32 tcp/80"),
        (f"{VIP_COL}.13.{v}", "INTEGER", "2"),  # noActiveBackends
        (f"{VIP_COL}.12.{v}", "Gauge32", "0"),
    ]
    row = f"{v}.1.4.10.0.0.1"
    assert be_trap.varbinds == [
        (f"{BACKEND_COL}.7.{row}", "STRING", "10.0.0.1 via 192.0.2.1/32 tcp/80"),
        (f"{BACKEND_COL}.3.{row}", "INTEGER", "2"),  # removed
    ]
    # The instances are the served rows': a GET of each answers the same value.
    got = s.snmpd.get(f"{VIP_COL}.13.{v}", f"{BACKEND_COL}.3.{row}")
    assert "INTEGER: 2" in got and "No Such" not in got

    s.vpp.add_backend(s.vip, "10.0.0.1")  # back (after the 2 s hold-down)
    assert s.traps.wait(VIP_CHANGE, 2)[-1].value(f"{VIP_COL}.13.{v}") == "1"
    assert s.traps.wait(BACKEND_CHANGE, 2)[-1].value(f"{BACKEND_COL}.3.{row}") == "1"

    # A backend appearing on a kept VIP (used), then disappearing from VPP's list.
    s.vpp.add_backend(s.vip2, "10.0.1.3")
    row3 = f"{s.vip2}.1.4.10.0.1.3"
    t = s.traps.wait(BACKEND_CHANGE, 3)[-1]
    assert t.varbinds == [
        (f"{BACKEND_COL}.7.{row3}", "STRING", "10.0.1.3 via 192.0.2.2/32 tcp/443"),
        (f"{BACKEND_COL}.3.{row3}", "INTEGER", "1"),
    ]
    s.vpp.remove_backend(s.vip2, "10.0.1.3")
    s.vpp.gc()  # gone from the list at once (VPP's 'flush')
    t = s.traps.wait(BACKEND_CHANGE, 4)[-1]
    assert t.value(f"{BACKEND_COL}.3.{row3}") == "2"
    # VIP 2 kept two used backends throughout: no VIP notification for it.
    assert all(x.varbinds[0][0].endswith(f".{s.vip}") for x in s.traps.of(VIP_CHANGE))


def test_vpp_lost_and_back(stack_factory: Callable[..., Stack]) -> None:
    s = stack_factory(holddown_s=1.0)
    mark = s.agent.mark()
    s.vpp.api_socket_down()
    (lost,) = s.traps.wait(CONN_CHANGE)
    assert lost.varbinds[0] == (f"{ROOT}.1.1.1.0", "INTEGER", "2")  # false
    assert lost.varbinds[1][0] == f"{ROOT}.1.1.9.0"
    assert lost.varbinds[1][2]  # why, in words
    s.agent.wait_for("vip table withdrawn", mark=mark)  # the rows emptied: no per-VIP news
    s.vpp.api_socket_up()
    back = s.traps.wait(CONN_CHANGE, 2)[-1]
    assert back.varbinds[0] == (f"{ROOT}.1.1.1.0", "INTEGER", "1")
    s.agent.wait_for("vip table served again", mark=mark)
    assert s.traps.of(VIP_CHANGE) == [] and s.traps.of(BACKEND_CHANGE) == []


def test_vpp_restart_yields_connection_notifications_only(
    stack_factory: Callable[..., Stack],
) -> None:
    s = stack_factory(holddown_s=1.0)
    mark = s.agent.mark()
    s.vpp.kill()  # crashed: scrapes fail
    s.traps.wait(CONN_CHANGE)
    s.agent.wait_for("vip table withdrawn", mark=mark)
    # Back as VPP with its LB in startup-config comes back: API up with an
    # empty LB first, then every VIP at once.
    s.vpp.restart(lb_after_s=2.0)
    s.vpp.wait_restored()
    s.agent.wait_for("scrape ok vips=2", mark=mark)
    s.agent.wait_for("scrape ok vips=2", mark=s.agent.mark())  # one more scrape after it
    conn = s.traps.wait(CONN_CHANGE, 2)
    assert conn[-1].varbinds[0][2] == "1"  # the last one says: connected
    assert s.traps.of(VIP_CHANGE) == [] and s.traps.of(BACKEND_CHANGE) == []


def test_silence_while_nothing_changes(stack_factory: Callable[..., Stack]) -> None:
    s = stack_factory(holddown_s=0.0)  # no hold-down: any notification would show
    # Counters, flows and buckets move; no state does.
    for n in range(1, 6):
        mark = s.agent.mark()
        s.vpp.traffic(s.vip, thread=1, next_packets=1000 * n, first_packets=n)
        s.vpp.set_flows(s.vip2, "10.0.1.1", 10 * n)
        s.agent.wait_for("scrape ok", mark=mark)
        s.agent.wait_for("scrape ok", mark=s.agent.mark())
    assert s.traps.ours() == []
    assert "notification " not in s.agent.log
    # ...and the pipe works: one change arrives.
    s.vpp.remove_backend(s.vip2, "10.0.1.1")
    s.traps.wait(BACKEND_CHANGE)


def test_holddown_under_flapping_and_the_final_state(stack_factory: Callable[..., Stack]) -> None:
    s = stack_factory(holddown_s=10.0)
    # 21 flips of the VIP's only backend in 10 s, each seen or not by a scrape.
    for n in range(21):
        if n % 2 == 0:
            s.vpp.remove_backend(s.vip, "10.0.0.1")
        else:
            s.vpp.add_backend(s.vip, "10.0.0.1")
        time.sleep(10.0 / 21)
    # Ends removed. Wait for the hold-down's end (and a scrape) to pass.
    last_flip = s.agent.mark()
    s.agent.wait_for("scrape ok", mark=last_flip)
    first = s.traps.wait(VIP_CHANGE)[0]
    wait_until(lambda: s.traps.ours() and _snmpd_now(s) > first.uptime_cs + 1200, WAIT_S)
    vip_traps = s.traps.of(VIP_CHANGE)
    be_traps = s.traps.of(BACKEND_CHANGE)
    for traps in (vip_traps, be_traps):
        assert 1 <= len(traps) <= 2, traps
        gaps = [b.uptime_cs - a.uptime_cs for a, b in pairwise(traps)]
        assert all(g >= 1000 - 10 for g in gaps), gaps  # one per 10 s (snmpd's clock, cs)
    # The last notification states the current status.
    assert vip_traps[-1].value(f"{VIP_COL}.13.{s.vip}") == "2"
    assert be_traps[-1].value(f"{BACKEND_COL}.3.{s.vip}.1.4.10.0.0.1") == "2"


def test_change_inside_the_holddown_is_sent_when_it_ends(
    stack_factory: Callable[..., Stack],
) -> None:
    s = stack_factory(holddown_s=4.0)
    s.vpp.remove_backend(s.vip, "10.0.0.1")
    (down,) = s.traps.wait(VIP_CHANGE)
    s.vpp.add_backend(s.vip, "10.0.0.1")  # within the hold-down: held back
    up = s.traps.wait(VIP_CHANGE, 2)[-1]
    assert up.value(f"{VIP_COL}.13.{s.vip}") == "1"
    assert up.uptime_cs - down.uptime_cs >= 400 - 10
    assert s.traps.wait(BACKEND_CHANGE, 2)[-1].value(f"{BACKEND_COL}.3.{s.vip}.1.4.10.0.0.1") == "1"


def test_queued_across_an_snmpd_restart(stack_factory: Callable[..., Stack]) -> None:
    s = stack_factory(holddown_s=1.0)
    mark = s.agent.mark()
    s.snmpd.stop()
    s.agent.wait_for("agentx session lost", mark=mark)
    s.vpp.remove_backend(s.vip, "10.0.0.1")
    s.agent.wait_for("notification vppLbVipOperStatusChange", mark=mark)
    assert s.traps.ours() == []  # nobody to send it to
    s.snmpd.start()
    (vip_trap,) = s.traps.wait(VIP_CHANGE)
    assert vip_trap.value(f"{VIP_COL}.13.{s.vip}") == "2"
    s.traps.wait(BACKEND_CHANGE)
    # After the restart: sent once, by the new snmpd (its uptime is fresh).
    assert vip_trap.uptime_cs < 60 * 100


def test_notifications_false_sends_nothing(stack_factory: Callable[..., Stack]) -> None:
    s = stack_factory(extra=("--notifications", "false"))
    mark = s.agent.mark()
    s.vpp.remove_backend(s.vip, "10.0.0.1")
    s.agent.wait_for("scrape ok", mark=mark)
    s.agent.wait_for("scrape ok", mark=s.agent.mark())
    assert s.traps.ours() == []
    assert "notifications=off" in s.agent.log


def test_received_by_name_with_the_mib_loaded(stack_factory: Callable[..., Stack]) -> None:
    if not (SHARED_MIBS / "SNMPv2-SMI.txt").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"base MIBs missing in {SHARED_MIBS} (CI must have them)")
        pytest.skip(f"base MIB modules from {SHARED_MIBS} are not here; names cannot resolve")
    s = stack_factory(
        holddown_s=2.0,
        trapd_kw={
            "mibdirs": f"{REPO / 'mibs'}:{SHARED_MIBS}",
            "mibs": "ALL",
            "fmt": "NAMED %v\n",
        },
    )
    s.vpp.remove_backend(s.vip, "10.0.0.1")
    want = [
        "SNMPv2-MIB::snmpTrapOID.0 = OID: IPNG-VPP-LB-MIB::vppLbVipOperStatusChange",
        f"IPNG-VPP-LB-MIB::vppLbVipName.{s.vip} = STRING: 192.0.2.1/32 tcp/80",
        f"IPNG-VPP-LB-MIB::vppLbVipOperStatus.{s.vip} = INTEGER: noActiveBackends(2)",
        f"IPNG-VPP-LB-MIB::vppLbVipActiveBackendCount.{s.vip} = Gauge32: 0 backends",
    ]

    def named() -> str | None:
        for line in s.trapd.lines("NAMED "):
            if "vppLbVipOperStatusChange" in line:
                return line
        return None

    line = wait_until(named, WAIT_S)
    assert line.split("\t")[1:] == want
    be = wait_until(
        lambda: next((x for x in s.trapd.lines("NAMED ") if "vppLbBackendStateChange" in x), None),
        WAIT_S,
    )
    assert "IPNG-VPP-LB-MIB::vppLbBackendState." in be and "= INTEGER: removed(2)" in be


def _snmpd_now(s: Stack) -> int:
    out = s.snmpd.get("1.3.6.1.2.1.1.3.0", options=("-Ot",))  # `.OID = 1234`
    return int(out.rsplit("=", 1)[1].split(":")[-1].strip())
