"""End to end for an NMS: Prometheus' snmp_exporter with contrib's snmp.yml scrapes
the agent through a private snmpd, and every metric carries the VIP's name.

The exporter listens on a free loopback port (never the packaged service's 9116).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from snmpfixtures import make_snapshot

from agentx_lb.agentx import LbAgent
from agentx_lb.oids import DEFAULT_ROOT
from agentx_lb.snmpd import PrivateSnmpd
from agentx_lb.table import build_table

pytestmark = pytest.mark.integration

CONTRIB = Path(__file__).resolve().parent.parent / "contrib" / "snmp_exporter"
EXPORTER = "prometheus-snmp-exporter"


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def agent_address(snmpd: PrivateSnmpd) -> Iterator[str]:
    agent = LbAgent(snmpd.agentx_socket, DEFAULT_ROOT)
    agent.publish(build_table(make_snapshot(), DEFAULT_ROOT))
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not agent.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent.connected
    try:
        yield snmpd.address
    finally:
        stop.set()
        thread.join(5)


@pytest.fixture
def exporter_url(short_tmpdir: str) -> Iterator[str]:
    binary = shutil.which(EXPORTER)
    if binary is None:
        pytest.fail(f"{EXPORTER} is not installed (apt-get install prometheus-snmp-exporter)")
    port = _free_tcp_port()
    with open(Path(short_tmpdir) / "exporter.log", "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={CONTRIB / 'snmp.yml'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (Path(short_tmpdir) / "exporter.log").read_text()
                assert time.monotonic() < deadline, "snmp_exporter did not start listening"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_exporter_scrapes_vips_and_backends_with_vip_names(
    agent_address: str, exporter_url: str
) -> None:
    url = f"{exporter_url}/snmp?module=ipng_vpp_lb&target={agent_address}"
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (loopback URL we built)
        text = resp.read().decode()
    lines = set(text.splitlines())
    name = 'vppLbVipIndex="2",vppLbVipName="192.0.2.2/32 tcp/80"'
    assert "# TYPE vppLbVipNextPackets counter" in lines
    assert f"vppLbVipNextPackets{{{name}}} 2000" in lines
    assert f"vppLbVipRouteOctets{{{name}}} 800" in lines
    assert f'vppLbVipOperStatus{{{name},vppLbVipOperStatus="up"}} 1' in lines
    assert (
        f'vppLbBackendBuckets{{vppLbBackendAddress="10.0.2.1",{name}}} 1024' in lines
    ), "backend rows must carry the backend address and the VIP's name"
    assert 'vppLbAgentVppConnected{vppLbAgentVppConnected="true"} 1' in lines
    assert 'vppLbConfIp4SrcAddress{vppLbConfIp4SrcAddress="192.0.2.250"} 1' in lines
    # Every VIP-table sample is labelled with a VIP name.
    vip_samples = [ln for ln in lines if ln.startswith("vppLbVip") and "{" in ln]
    assert vip_samples
    assert [ln for ln in vip_samples if "vppLbVipName=" not in ln] == []
