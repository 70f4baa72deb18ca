"""Shared fixtures. Each fixture family lives in its own module, imported here."""

from __future__ import annotations

import os

import pytest

from agentharness import agents  # noqa: F401  (agents started as processes, killed after)
from snmpfixtures import *  # noqa: F403  (private snmpd + net-snmp client fixtures)
from vppfixtures import *  # noqa: F403  (emulated VPP fixtures)


@pytest.fixture(autouse=True)
def _clean_agentx_lb_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests are hermetic: no AGENTX_LB_* setting leaks in from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("AGENTX_LB_"):
            monkeypatch.delenv(name)
