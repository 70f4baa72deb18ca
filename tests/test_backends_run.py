"""The backend table from `python -m agentx_lb run` (a process), and backends in `dump`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from agentharness import AgentProc, wait_until
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd, SnmpError
from test_backends_e2e import R, expected_backend_cells, mixed_setup, parse

pytestmark = pytest.mark.integration


def test_run_process_serves_every_backend_cell(
    make_vpp: Callable[..., EmulatedVpp], snmpd: PrivateSnmpd, short_tmpdir: str
) -> None:
    vpp = make_vpp(workers=2, cli_style="master")
    vips = mixed_setup(vpp)
    want = expected_backend_cells(vpp)
    state_dir = os.path.join(short_tmpdir, "state")
    os.mkdir(state_dir)
    agent = AgentProc.for_vpp(str(vpp.run_dir), snmpd.agentx_socket, state_dir, interval_s=0.5)
    try:
        agent.wait_for("agentx connected")

        def walked() -> dict | None:
            try:
                got = parse(snmpd.bulkwalk(f"{R}.1.3"))
            except SnmpError:
                return None
            return got if got == want else None

        wait_until(walked, 20)

        # The next scrapes follow VPP: a removed VIP's rows go, a new backend comes.
        vpp.del_vip(vips["dns6"], keep_removed=True)
        vpp.add_backend(vips["empty"], "10.9.9.9", weight=1)
        want = expected_backend_cells(vpp)
        assert any(k.endswith(".10.9.9.9") for k in want)
        wait_until(walked, 20)
    finally:
        rc, _ = agent.stop()
    assert rc == 0, agent.log


def run_dump(vpp: EmulatedVpp) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "agentx_lb", "dump", "--vpp-api-socket", vpp.api_socket,
         "--vpp-stats-socket", vpp.stats_socket],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("style", ["25.10", "master"])
def test_dump_lists_backends_per_vip(make_vpp: Callable[..., EmulatedVpp], style: str) -> None:
    vpp = make_vpp(workers=2, cli_style=style)
    vips = mixed_setup(vpp)
    vpp.del_vip(vips["mixed"], keep_removed=True)
    doc = run_dump(vpp)
    by_index = {v["index"]: v for v in doc["vips"]}
    assert set(by_index) == {vips["web"], vips["dns6"], vips["empty"]}  # removed VIP left out

    with vpp.lock:
        model = {i: v for i, v in vpp._vips.items() if not v.removed}
        for index, v in model.items():
            want = [
                {
                    "address": str(b.address),
                    "buckets": buckets,
                    "flows": b.flows,
                    "state": "removed" if b.removed else "used",
                    "weight": b.weight if style == "master" else None,
                }
                for b, buckets in zip(v.backends, v.buckets())
            ]
            assert by_index[index]["backends"] == want
            assert by_index[index]["backend_count"] == len(want)
            assert by_index[index]["active_backend_count"] == sum(
                1 for b in v.backends if not b.removed
            )
    assert by_index[vips["empty"]]["backends"] == []
    assert by_index[vips["web"]]["active_backend_count"] == 2
    assert doc["settings"]["flow_timeout_s"] == 40
