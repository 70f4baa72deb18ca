"""`agentx-lb demo --duration N` end to end: the printed commands work, counters grow,
the process exits 0 and leaves no process, socket or file behind."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from agentx_lb import demo

pytestmark = pytest.mark.integration

DURATION_S = 10


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENTX_LB_")}


@pytest.fixture
def demo_proc(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    duration = getattr(request, "param", DURATION_S)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentx_lb", "demo", "--duration", str(duration)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _read_until(proc: subprocess.Popen[str], marker: str) -> list[str]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(marker):
            return lines
    raise AssertionError(f"demo ended before {marker!r}: {lines}")


def _snmp(cmd: str) -> str:
    proc = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, (cmd, proc.stderr)
    return proc.stdout


def _counters(walk_output: str) -> dict[str, int]:
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\S+) = Counter64: (\d+)$", walk_output, re.M)
    }


def test_demo_serves_growing_counters_and_cleans_up(demo_proc: subprocess.Popen[str]) -> None:
    header = _read_until(demo_proc, "demo: Ctrl-C")
    first = header[0]
    m = re.match(r"demo: workdir=(\S+) snmpd=(\S+) snmpd_pid=(\d+) vips=(\d+)$", first)
    assert m, header
    workdir, snmpd_pid, vips = m.group(1), int(m.group(3)), int(m.group(4))
    assert vips == len(demo.DEMO_VIPS)
    commands = [line.strip() for line in header if line.startswith("  snmp")]
    walk, walk_packets, table_by_name, walk_by_name = commands

    # Wait for the first status line: the agent has scraped and registered.
    status = _read_until(demo_proc, "demo: t=")[-1]
    assert "agentx=registered" in status or "vpp=up" in status

    before = _counters(_snmp(walk_packets))
    assert len(before) == vips  # one vppLbVipNextPackets per VIP, numeric OIDs, no MIB
    # Traffic is added every second and scraped every second: poll (bounded by the
    # demo's own duration) until a later walk shows every counter grown.
    after = before
    while demo_proc.poll() is None and not all(after[k] > before[k] for k in before):
        time.sleep(1.0)
        after = _counters(_snmp(walk_packets))
        assert after.keys() == before.keys()
    assert all(after[oid] > before[oid] for oid in before), (before, after)

    whole = _snmp(walk)
    assert ".1.1.1.0 = INTEGER: 1" in whole  # vppLbAgentVppConnected = true
    if demo.has_base_mibs(demo.base_mib_dirs()):
        table = _snmp(table_by_name)
        assert "IPNG-VPP-LB-MIB::vppLbVipTable" in table
        assert "192.0.2.1/32 tcp/80" in table and "2001:db8:100::/64 any" in table
        assert "vppLbAgentVppConnected.0 = INTEGER: true(1)" in _snmp(walk_by_name)

    out, err = demo_proc.communicate(timeout=DURATION_S + 30)
    assert demo_proc.returncode == 0, err
    assert "demo: stopped, cleaned up" in out
    assert "Traceback" not in err
    assert not os.path.exists(workdir)  # sockets, MIB and state file gone
    with pytest.raises(ProcessLookupError):
        os.kill(snmpd_pid, 0)  # snmpd was reaped


@pytest.mark.parametrize("demo_proc", [600], indirect=True)
def test_demo_stops_on_sigterm(demo_proc: subprocess.Popen[str]) -> None:
    header = _read_until(demo_proc, "demo: Ctrl-C")
    workdir = header[0].split()[1].removeprefix("workdir=")
    _read_until(demo_proc, "demo: t=")
    demo_proc.terminate()
    out, err = demo_proc.communicate(timeout=30)
    assert demo_proc.returncode == 0, err
    assert "demo: stopped, cleaned up" in out
    assert not os.path.exists(workdir)
