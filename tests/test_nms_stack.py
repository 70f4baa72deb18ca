"""The NMS tests' system under test: emulated VPP -> real agent -> private snmpd.

`running_stack()` starts the production path the NMS tests scrape: an
`EmulatedVpp` with a fixed scenario, the real `VppSource`, `Pipeline` (its
clock is fake, so table age, durations and TimeStamps are exact), `LbAgent`
over AgentX, and a `PrivateSnmpd` on loopback. `SCALARS`, `VIPS` and
`BACKENDS` are the values an NMS must read, written out by hand from the
scenario (not computed by the code under test), keyed by MIB object name.

The scenario covers: an index gap (a deleted VIP; indices are VPP's pool
indices), two VIPs sharing one prefix (and so one '/net/route/to' counter),
IPv4 and IPv6, an all-port VIP without backends (noActiveBackends), a removed
backend that still drains, weights and a bucket split by weight, and one
failed scrape before the good one (so the failure counter is not 0).

The test below checks the stack itself (the published snapshot), so that a
failure in the exporter or pysnmp tests points at the NMS side.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest

from agentx_lb.agentx import LbAgent
from agentx_lb.clock import EventClock
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.memory import NoMemoryPolicy
from agentx_lb.oids import DEFAULT_ROOT
from agentx_lb.pipeline import Pipeline
from agentx_lb.snmpd import PrivateSnmpd
from agentx_lb.vpp.source import VppSource
from fakes import FakeClock

pytestmark = pytest.mark.integration

START_S = 50.0
INTERVAL_S = 5.0

# vppLbAgent scalars after one failed then one good scrape, 5 s apart.
SCALARS: dict[str, object] = {
    "vppLbAgentVppConnected": "true",
    "vppLbAgentVppVersion": "25.10-release",
    "vppLbAgentVipCount": 4,
    # The rows appeared at t=5 s of a 1970 event clock (see running_stack):
    # before snmpd started, so as a TimeStamp (snmpd's sysUpTime then) 0.
    "vppLbAgentVipTableLastChange": 0,
    "vppLbAgentTableAge": 0,
    "vppLbAgentLastScrapeDuration": 0,  # the fake clock does not move during a read
    "vppLbAgentScrapeFailures": 1,
    "vppLbAgentConsecutiveFailures": 0,
    "vppLbConfIp4SrcAddress": "10.0.0.1",
    "vppLbConfIp6SrcAddress": "2001:db8:ff::1",
    "vppLbConfStickyBucketsPerCore": 1024,  # 'usage: N / 1027' is 1024 + 3
    "vppLbConfFlowTimeout": 40,
}

# 192.0.2.1/32 is the prefix of VIPs 1 and 3: both serve its one FIB counter.
# Packets: VIP 1 1010 + 502 (100 octets each), VIP 3 303 (200 octets each).
_SHARED_ROUTE = (1010 + 502 + 303, (1010 + 502) * 100 + 303 * 200)


def _vip(
    name: str,
    family: str,
    address: str,
    plen: int,
    proto: int,
    port: int,
    encap: str,
    sticky: str,
    n_backends: int,
    n_active: int,
    counters: tuple[int, int, int, int],
    route: tuple[int, int],
) -> dict[str, object]:
    return {
        "vppLbVipName": name,
        "vppLbVipAddressType": family,
        "vppLbVipAddress": address,
        "vppLbVipPrefixLength": plen,
        "vppLbVipProtocol": proto,
        "vppLbVipPort": port,
        "vppLbVipEncap": encap,
        "vppLbVipSrcIpSticky": sticky,
        "vppLbVipFlowTableLength": 1024,
        "vppLbVipBackendCount": n_backends,
        "vppLbVipActiveBackendCount": n_active,
        "vppLbVipOperStatus": "up" if n_active else "noActiveBackends",
        "vppLbVipNextPackets": counters[0],
        "vppLbVipFirstPackets": counters[1],
        "vppLbVipUntrackedPackets": counters[2],
        "vppLbVipNoServerPackets": counters[3],
        "vppLbVipRoutePackets": route[0],
        "vppLbVipRouteOctets": route[1],
        "vppLbVipDiscontinuityTime": 0,  # created at t=5 s, 1970: before snmpd started
    }


# VIP index -> column values. Index 2 was deleted: a gap, as in VPP's pool.
VIPS: dict[int, dict[str, object]] = {
    1: _vip(
        "192.0.2.1/32 tcp/80",
        "ipv4",
        "192.0.2.1",
        32,
        6,
        80,
        "gre4",
        "false",
        2,
        2,
        (1500, 10, 2, 0),
        _SHARED_ROUTE,
    ),
    3: _vip(
        "192.0.2.1/32 tcp/443",
        "ipv4",
        "192.0.2.1",
        32,
        6,
        443,
        "gre4",
        "false",
        1,
        1,
        (300, 3, 0, 0),
        _SHARED_ROUTE,
    ),
    4: _vip(
        "2001:db8::80/128 tcp/443",
        "ipv6",
        "2001:db8::80",
        128,
        6,
        443,
        "gre6",
        "true",
        2,
        1,
        (40, 4, 0, 0),
        (44, 4400),
    ),
    5: _vip(
        "198.51.100.0/24 any",
        "ipv4",
        "198.51.100.0",
        24,
        255,
        0,
        "gre4",
        "false",
        0,
        0,
        (0, 0, 0, 42),
        (42, 4200),
    ),
}


def _backend(
    vip: int, address: str, state: str, weight: int, buckets: int, flows: int
) -> dict[str, object]:
    return {
        "vppLbBackendState": state,
        "vppLbBackendWeight": weight,
        "vppLbBackendBuckets": buckets,
        "vppLbBackendFlows": flows,
        "vppLbBackendName": f"{address} via {VIPS[vip]['vppLbVipName']}",
    }


# (VIP index, backend address) -> column values. Buckets: 1024 split by weight
# 100:50 is 682:341 plus the one left over to the first, 683:341.
BACKENDS: dict[tuple[int, str], dict[str, object]] = {
    (1, "10.0.0.1"): _backend(1, "10.0.0.1", "used", 100, 683, 7),
    (1, "10.0.0.2"): _backend(1, "10.0.0.2", "used", 50, 341, 3),
    (3, "10.0.0.3"): _backend(3, "10.0.0.3", "used", 100, 1024, 0),
    (4, "2001:db8:1::1"): _backend(4, "2001:db8:1::1", "used", 100, 1024, 5),
    (4, "2001:db8:1::2"): _backend(4, "2001:db8:1::2", "removed", 100, 0, 0),
}


def build_scenario(vpp: EmulatedVpp) -> None:
    """Configure and count traffic so that the tables above are what VPP shows."""
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    gone = vpp.add_vip("203.0.113.9/32", protocol=17, port=53)
    c = vpp.add_vip("192.0.2.1/32", protocol=6, port=443)
    d = vpp.add_vip("2001:db8::80/128", protocol=6, port=443, encap="gre6", src_ip_sticky=True)
    e = vpp.add_vip("198.51.100.0/24")
    vpp.del_vip(gone)
    assert (a, gone, c, d, e) == (1, 2, 3, 4, 5)
    vpp.add_backend(a, "10.0.0.1")
    vpp.add_backend(a, "10.0.0.2", weight=50)
    vpp.add_backend(c, "10.0.0.3")
    vpp.add_backend(d, "2001:db8:1::1")
    vpp.add_backend(d, "2001:db8:1::2")
    vpp.remove_backend(d, "2001:db8:1::2")
    vpp.set_flows(a, "10.0.0.1", 7)
    vpp.set_flows(a, "10.0.0.2", 3)
    vpp.set_flows(d, "2001:db8:1::1", 5)
    vpp.traffic(a, thread=1, next_packets=1000, first_packets=10)
    vpp.traffic(a, thread=2, next_packets=500, untracked_packets=2)
    vpp.traffic(c, thread=2, next_packets=300, first_packets=3, octets_per_packet=200)
    vpp.traffic(d, thread=1, next_packets=40, first_packets=4)
    vpp.traffic(e, thread=2, no_server_packets=42)


@dataclass(frozen=True)
class Stack:
    vpp: EmulatedVpp
    snmpd: PrivateSnmpd
    agent: LbAgent
    pipeline: Pipeline
    workdir: str

    @property
    def address(self) -> str:
        return self.snmpd.address


@contextmanager
def running_stack() -> Iterator[Stack]:
    """The scenario served through a private snmpd; everything is removed afterwards."""
    workdir = tempfile.mkdtemp(prefix="axlb-nms-", dir="/tmp")
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        vpp = EmulatedVpp(os.path.join(workdir, "vpp"), workers=2, cli_style="master")
        vpp.start()
        cleanup.callback(vpp.stop)
        build_scenario(vpp)

        snmpd_dir = os.path.join(workdir, "snmpd")
        os.mkdir(snmpd_dir, 0o700)
        snmpd = PrivateSnmpd(snmpd_dir)
        snmpd.start()
        cleanup.callback(snmpd.stop)

        source = VppSource(vpp.stats_socket, vpp.api_socket, vpp.api_dir, timeout_s=1.0)
        cleanup.callback(source.close)
        clock = FakeClock(START_S)
        # One fake monotonic clock for both: table age and durations are exact.
        # The pipeline's events are stamped on a 1970 event clock (t=0 at the
        # epoch), so they predate snmpd and every TimeStamp reads 0; real
        # stamps against snmpd's sysUpTime are checked in test_faults_time.py.
        agent = LbAgent(snmpd.agentx_socket, DEFAULT_ROOT, max_age_s=math.inf, clock=clock)
        pipeline = Pipeline(
            source,
            agent.publish,
            root=DEFAULT_ROOT,
            interval_s=INTERVAL_S,
            clock=clock,
            event_clock=EventClock(clock, wall=lambda: 0.0),
            memory=NoMemoryPolicy(),  # leave pytest's GC alone
        )
        vpp.api_socket_down()
        pipeline.tick()  # fails: VPP's API is not there yet
        vpp.api_socket_up()
        clock.now += INTERVAL_S
        pipeline.tick()

        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        cleanup.callback(thread.join, 5)
        cleanup.callback(stop.set)
        deadline = time.monotonic() + 10
        while not agent.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.connected, snmpd.log_tail()
        yield Stack(vpp=vpp, snmpd=snmpd, agent=agent, pipeline=pipeline, workdir=workdir)


def test_the_stack_publishes_the_scenario() -> None:
    with running_stack() as stack:
        snap = stack.pipeline.snapshot
    health = snap.health
    assert (health.vpp_connected, health.vip_count, health.scrape_failures) == (True, 4, 1)
    assert (health.vip_table_last_change_cs, health.table_age_s) == (500, 0)
    assert "api socket" in health.last_error  # why the first scrape failed is kept
    settings = snap.settings
    assert settings is not None
    assert (settings.ip4_src_address, settings.ip6_src_address) == (
        SCALARS["vppLbConfIp4SrcAddress"],
        SCALARS["vppLbConfIp6SrcAddress"],
    )
    assert (settings.sticky_buckets_per_core, settings.flow_timeout_s) == (
        SCALARS["vppLbConfStickyBucketsPerCore"],
        SCALARS["vppLbConfFlowTimeout"],
    )
    assert [r.vip.index for r in snap.rows] == sorted(VIPS)
    for row in snap.rows:
        want = VIPS[row.vip.index]
        assert row.vip.name == want["vppLbVipName"]
        counters = row.counters
        got = (
            counters.next_packets,
            counters.first_packets,
            counters.untracked_packets,
            counters.no_server_packets,
            counters.route_packets,
            counters.route_octets,
        )
        assert got == tuple(
            want[k]
            for k in (
                "vppLbVipNextPackets",
                "vppLbVipFirstPackets",
                "vppLbVipUntrackedPackets",
                "vppLbVipNoServerPackets",
                "vppLbVipRoutePackets",
                "vppLbVipRouteOctets",
            )
        ), row.vip.name
        for b in row.vip.backends:
            want_b = BACKENDS[(row.vip.index, b.address)]
            assert (b.buckets, b.flows, b.weight, "used" if b.used else "removed") == (
                want_b["vppLbBackendBuckets"],
                want_b["vppLbBackendFlows"],
                want_b["vppLbBackendWeight"],
                want_b["vppLbBackendState"],
            )
    assert sorted((r.vip.index, b.address) for r in snap.rows for b in r.vip.backends) == sorted(
        BACKENDS
    )
