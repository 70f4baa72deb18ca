"""LB global settings scalars end to end (emulator -> ... -> snmpd) and in `agentx-lb dump`.

vppLbConfIp4SrcAddress (.10), vppLbConfIp6SrcAddress (.11),
vppLbConfStickyBucketsPerCore (.12) and vppLbConfFlowTimeout (.13) are served
exactly as `show lb` prints them, and are absent where it does not print them
(no per-core lines before a worker's sticky table exists): never invented.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from agentx_lb.emulator import EmulatedVpp
from test_backends_e2e import (  # noqa: F401  (serve is a fixture)
    R,
    Served,
    parse,
    serve,
)

pytestmark = pytest.mark.integration

SCALARS = f"{R}.1.1"
IP4_SRC, IP6_SRC, BUCKETS, TIMEOUT = (f"{SCALARS}.{n}.0" for n in (10, 11, 12, 13))
NO_INSTANCE = ("", "No Such Instance currently exists at this OID")


def hexes(text: str) -> tuple[str, str]:
    """The Hex-STRING an address is served as: `0A 00 00 01`."""
    return ("Hex-STRING", " ".join(f"{b:02X}" for b in ipaddress.ip_address(text).packed))


def settings(served: Served) -> dict[str, tuple[str, object]]:
    out = served.snmpd.get(IP4_SRC, IP6_SRC, BUCKETS, TIMEOUT, options=("-Ox",))
    cells: dict[str, tuple[str, object]] = {}
    for line in out.splitlines():
        oid, _, value = line.partition(" = ")
        if value.startswith("Hex-STRING: "):
            cells[oid[1:]] = ("Hex-STRING", value.removeprefix("Hex-STRING: ").strip())
        else:
            cells.update(parse(line))
    return cells


def test_defaults_as_show_lb_prints_them(serve: Callable[..., Served]) -> None:
    served = serve(workers=2)
    vip = served.vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    served.vpp.add_backend(vip, "10.0.0.2")
    text = served.vpp.show_lb()
    assert "ip4-src-address: 10.0.0.1 " in text and "ip6-src-address: 2001:db8:ff::1 " in text
    assert "timeout: 40s" in text and "/ 1027\n" in text
    served.scrape()
    assert settings(served) == {
        IP4_SRC: hexes("10.0.0.1"),
        IP6_SRC: hexes("2001:db8:ff::1"),
        BUCKETS: ("Gauge32", 1024),  # `usage: N / 1027`: lb_hash_size() = buckets + 3
        TIMEOUT: ("Gauge32", 40),
    }


def test_configured_values_are_served_exactly(serve: Callable[..., Served]) -> None:
    served = serve(workers=2)
    served.vpp.lb_conf(
        ip4_src="192.0.2.250", ip6_src="2001:db8:f00d::77", sticky_buckets_per_core=65536,
        flow_timeout_s=17,
    )  # fmt: skip
    text = served.vpp.show_lb()
    assert "timeout: 17s" in text and "/ 65539\n" in text
    served.scrape()
    assert settings(served) == {
        IP4_SRC: hexes("192.0.2.250"),
        IP6_SRC: hexes("2001:db8:f00d::77"),
        BUCKETS: ("Gauge32", 65536),
        TIMEOUT: ("Gauge32", 17),
    }
    # A later `lb conf` shows up at the next scrape.
    served.vpp.lb_conf(flow_timeout_s=300)
    served.scrape()
    assert settings(served)[TIMEOUT] == ("Gauge32", 300)


def test_absent_where_show_lb_prints_no_per_core_lines(serve: Callable[..., Served]) -> None:
    served = serve(workers=0)  # no worker, so no `core N / timeout / usage` lines
    served.vpp.add_vip("192.0.2.1/32")
    text = served.vpp.show_lb()
    assert "timeout:" not in text and "usage:" not in text
    served.scrape()
    assert settings(served) == {
        IP4_SRC: hexes("10.0.0.1"),
        IP6_SRC: hexes("2001:db8:ff::1"),
        BUCKETS: NO_INSTANCE,  # unknown: absent, never 0 and never VPP's default
        TIMEOUT: NO_INSTANCE,
    }
    # A walk of the scalars ends at vppLbConfIp6SrcAddress.
    walked = served.walk(SCALARS)
    assert max(int(oid.split(".")[-2]) for oid in walked) == 11


def test_absent_after_the_table_is_withdrawn(serve: Callable[..., Served]) -> None:
    served = serve(workers=2, max_stale_intervals=0)  # withdrawn at the first failure
    served.scrape()
    assert settings(served)[TIMEOUT] == ("Gauge32", 40)
    served.vpp.kill()  # VPP gone: after the staleness limit nothing about it is served
    snap = served.pipeline.tick()
    assert not snap.health.vpp_connected
    assert set(settings(served).values()) == {NO_INSTANCE}


def run_dump(vpp: EmulatedVpp) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "agentx_lb", "dump", "--vpp-api-socket", vpp.api_socket,
         "--vpp-stats-socket", vpp.stats_socket],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_dump_has_the_settings(make_vpp: Callable[..., EmulatedVpp]) -> None:
    vpp = make_vpp(workers=2)
    vpp.lb_conf(ip4_src="192.0.2.250", sticky_buckets_per_core=2048, flow_timeout_s=25)
    assert run_dump(vpp)["settings"] == {
        "ip4_src_address": "192.0.2.250",
        "ip6_src_address": "2001:db8:ff::1",
        "sticky_buckets_per_core": 2048,
        "flow_timeout_s": 25,
    }
    idle = make_vpp(workers=0)
    assert run_dump(idle)["settings"] == {
        "ip4_src_address": "10.0.0.1",
        "ip6_src_address": "2001:db8:ff::1",
        "sticky_buckets_per_core": None,
        "flow_timeout_s": None,
    }
