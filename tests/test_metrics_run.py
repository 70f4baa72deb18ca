"""`agentx-lb run --metrics-listen`: the shipped agent serves /metrics next to SNMP.

The agent runs as a process against the emulated VPP and a private snmpd, as
`cli.run` wires it (the metrics server reads `pipeline.snapshot`). /metrics
must show what snmpd shows; when VPP goes away for longer than the staleness
limit, the VIP rows are withdrawn on both sides: no VIP series in /metrics,
never zeros, and the health gauges say why. SIGTERM still ends it with 0.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest

from agentharness import COL_NEXT, AgentProc, Served, wait_until
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd
from test_metrics import Labels, by_name, parse

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def agent(
    vpp: EmulatedVpp, snmpd: PrivateSnmpd, short_tmpdir: str
) -> Iterator[tuple[AgentProc, str]]:
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_backend(a, "10.0.0.1")
    b = vpp.add_vip("198.51.100.0/24")
    vpp.traffic(a, thread=1, next_packets=1500, first_packets=15)
    vpp.traffic(b, thread=2, no_server_packets=42)
    url = f"http://127.0.0.1:{_free_port()}/metrics"
    proc = AgentProc(
        api_socket=vpp.api_socket,
        stats_socket=vpp.stats_socket,
        agentx_socket=snmpd.agentx_socket,
        state_dir=short_tmpdir,
        interval_s=0.5,
        vpp_timeout_s=0.5,
        log_level="info",
        extra=["--max-stale-intervals", "2", "--metrics-listen", url.split("/")[2]],
    )
    try:
        yield proc, url
    finally:
        proc.kill()


def _scrape(url: str) -> dict[tuple[str, Labels], float]:
    try:
        # A URL we built, on loopback.
        with urllib.request.urlopen(url, timeout=10) as resp:
            return parse(resp.read().decode())[0]
    except OSError:
        return {}


def test_metrics_next_to_snmp_and_withdrawn_together(
    agent: tuple[AgentProc, str], vpp: EmulatedVpp, snmpd: PrivateSnmpd
) -> None:
    proc, url = agent
    proc.wait_for(r"metrics listening address=127\.0\.0\.1")
    served = Served(snmpd)
    samples = wait_until(
        lambda: (
            s
            if (s := _scrape(url)) and len(by_name(s, "agentx_lb_vip_next_packets_total")) == 2
            else None
        ),
        30,
    )
    snmp_next = wait_until(lambda: served.column(COL_NEXT), 30)
    assert (
        sorted(by_name(samples, "agentx_lb_vip_next_packets_total").values())
        == sorted(float(v) for v in snmp_next.values())
        == [0.0, 1500.0]
    )
    assert by_name(samples, "agentx_lb_vip_no_server_packets_total")["198.51.100.0/24 any"] == 42
    plain = {m: v for (m, lb), v in samples.items() if not lb}
    assert plain["agentx_lb_vpp_connected"] == 1
    assert plain["process_cpu_seconds_total"] > 0

    # VPP gone for longer than 2 x 0.5 s: withdrawn on both sides, never zeros.
    vpp.api_socket_down()

    def withdrawn() -> dict | None:
        s = _scrape(url)
        vip_series = [m for m, _ in s if m.startswith(("agentx_lb_vip_", "agentx_lb_backend_"))]
        return s if s and not vip_series else None

    samples = wait_until(withdrawn, 30)
    plain = {m: v for (m, lb), v in samples.items() if not lb}
    assert plain["agentx_lb_vpp_connected"] == 0
    assert plain["agentx_lb_vips"] == 0
    assert plain["agentx_lb_consecutive_scrape_failures"] >= 1
    assert any(m == "agentx_lb_last_error_info" for m, _ in samples)
    wait_until(lambda: served.scalars().get(3) == 0, 30)  # vppLbAgentVipCount

    rc, _ = proc.stop()
    assert rc == 0, proc.log[-2000:]
