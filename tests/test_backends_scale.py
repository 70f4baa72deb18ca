"""1,000 VIPs x 8 backends: one snmpbulkwalk of vppLbBackendTable equals the emulator.

The emulator is static while the table is walked (one scrape, then the walk),
so all 8,000 rows x 5 columns come from one published table. No timing is
asserted here (speed lives in the benchmarks and the report).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentx_lb.emulator import EmulatedVpp
from test_backends_e2e import (
    BACKEND,
    NAME,
    STATE,
    WEIGHT,
    R,
    Served,
    expected_backend_cells,
    expected_vip_status,
    row_vip,
    serve,  # noqa: F401  (fixture)
    served_vip_status,
)

pytestmark = pytest.mark.integration

N_VIPS, PER_VIP = 1000, 8


def build(vpp: EmulatedVpp) -> list[int]:
    """Half IPv4, half IPv6 VIPs; backends of both families; some removed, some busy."""
    indices = []
    for i in range(N_VIPS):
        if i % 2:
            index = vpp.add_vip(f"2001:db8:{i:x}::1/128", protocol=6, port=443, encap="gre6")
        else:
            index = vpp.add_vip(f"198.18.{i // 256}.{i % 256}/32", protocol=17, port=53)
        for j in range(PER_VIP):
            if j % 3 == 2:
                addr = f"2001:db8:ffff:{i:x}::{j + 1:x}"
            else:
                addr = f"10.{i // 256}.{i % 256}.{j + 1}"
            vpp.add_backend(index, addr, weight=(i + j * 13) % 101)
            if (i + j) % 5 == 0:
                vpp.set_flows(index, addr, i * 100 + j)
        if i % 7 == 0:
            vpp.remove_backend(index, f"10.{i // 256}.{i % 256}.1")
        indices.append(index)
    return indices


def test_thousand_vips_by_eight_backends_one_walk(
    serve: Callable[..., Served],
) -> None:
    served = serve(workers=2, cli_style="master")
    indices = build(served.vpp)
    snap = served.scrape()
    assert len(snap.rows) == N_VIPS

    want = expected_backend_cells(served.vpp)
    assert len(want) == N_VIPS * PER_VIP * 5
    got = served.walk(f"{R}.1.3", reps=25)  # the emulator does not change during the walk
    assert len(got) == len(want)
    assert got == want
    assert {row_vip(oid) for oid in got} == set(indices)
    removed = [o for o, v in got.items() if o.startswith(f"{BACKEND}.{STATE}.") and v[1] == 2]
    assert len(removed) == len(range(0, N_VIPS, 7))
    assert sum(1 for o in got if o.startswith(f"{BACKEND}.{WEIGHT}.")) == N_VIPS * PER_VIP
    assert sum(1 for o in got if o.startswith(f"{BACKEND}.{NAME}.")) == N_VIPS * PER_VIP
    assert served_vip_status(served) == expected_vip_status(served.vpp)
