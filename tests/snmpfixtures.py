"""Private snmpd fixtures (owned by the AgentX work)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from agentx_lb.snmpd import SNMPD, PrivateSnmpd

__all__ = ["snmpd", "short_tmpdir"]


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
        pytest.fail(f"{SNMPD} is missing: the set-up installs Debian's snmpd (apt-get install snmpd)")
    daemon = PrivateSnmpd(short_tmpdir)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
