"""Private snmpd fixtures (owned by the AgentX work)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from agentx_lb.snmpd import SNMPD, PrivateSnmpd

__all__ = ["short_tmpdir", "snmpd"]  # fixtures only; helpers are imported by name


@pytest.fixture
def short_tmpdir() -> Iterator[str]:
    """A short /tmp directory (AF_UNIX paths are limited to 108 bytes)."""
    path = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def snmpd(short_tmpdir: str) -> Iterator[PrivateSnmpd]:
    """A started private snmpd (AgentX master on a socket in a short temp dir)."""
    if not os.path.exists(SNMPD):
        pytest.fail(
            f"{SNMPD} is missing: the set-up installs Debian's snmpd (apt-get install snmpd)"
        )
    daemon = PrivateSnmpd(short_tmpdir)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


# ---- synthetic snapshots (no VPP needed) shared by the table/agentx tests

FIXTURE_INDICES = (*range(1, 13), 99, 100, 101)


def make_snapshot(
    indices=FIXTURE_INDICES, backends_per_vip: int = 2, taken_at: float | None = None
):
    """VIPs at `indices`: IPv4 and IPv6, with/without weights, one without active backend.

    `taken_at`: when its scrape ran (monotonic; default now)."""
    from agentx_lb.model import (
        Backend,
        Encap,
        Health,
        LbSettings,
        Snapshot,
        Vip,
        VipCounters,
        VipRow,
    )

    rows = []
    for i in indices:
        v6 = i % 5 == 0
        backends = []
        for j in range(backends_per_vip):
            addr = f"2001:db8:{i:x}::{j + 1:x}" if v6 else f"10.{i // 256}.{i % 256}.{j + 1}"
            backends.append(
                Backend(
                    address=addr,
                    buckets=1024 * (j + 1),
                    flows=i * 10 + j,
                    used=not (i == 3 or (j == 1 and i == 4)),
                    weight=(j * 50) % 101 if i % 2 else None,
                )
            )
        v4 = f"192.0.2.{i}" if i < 256 else f"198.18.{i // 256 % 256}.{i % 256}"
        vip = Vip(
            index=i,
            address=f"2001:db8::{i:x}" if v6 else v4,
            prefix_length=128 if v6 else 32,
            ip_version=6 if v6 else 4,
            encap=Encap.GRE6 if v6 else Encap.GRE4,
            protocol=6 if i % 3 else 255,
            port=80 if i % 3 else 0,
            src_ip_sticky=i % 2 == 0,
            flow_table_length=1024,
            backends=tuple(backends),
        )
        counters = VipCounters(
            next_packets=2**64 - 1 if i == 1 else i * 1000,
            first_packets=0 if i == 1 else i,
            untracked_packets=i * 2,
            no_server_packets=i * 3,
            route_packets=None if i == 12 else i * 4,
            route_octets=None if i == 12 else i * 400,
        )
        rows.append(VipRow(vip=vip, counters=counters, discontinuity_cs=i * 100))
    health = Health(
        vpp_connected=True,
        vpp_version="24.10-release",
        vip_count=len(rows),
        vip_table_last_change_cs=4242,
        table_age_s=3,
        last_scrape_duration_ms=17,
        scrape_failures=5,
        consecutive_failures=0,
        last_error="",
    )
    settings = LbSettings(ip4_src_address="192.0.2.250", sticky_buckets_per_core=1024)
    import time

    taken = time.monotonic() if taken_at is None else taken_at
    return Snapshot(rows=tuple(rows), settings=settings, health=health, taken_at=taken)
