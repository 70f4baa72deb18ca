"""The IETF/IANA base MIB modules of ../shared/mibs, which Debian does not ship.

A user's clone may lack ../shared: the tests that need the modules skip and
say why. Under CI (`CI=true`, set by .ci/run) ../shared is always beside the
clone, so its absence fails instead of passing with fewer tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_MIBS = REPO.parent / "shared" / "mibs"
NO_SHARED = (
    "base MIB modules from ../shared/mibs are not here (a clone without ../shared); "
    "net-snmp's tools cannot resolve the IETF names without them"
)


def require_shared_mibs() -> Path:
    """The directory of the base modules; skip (fail under CI) without it."""
    if not (SHARED_MIBS / "SNMPv2-SMI.txt").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {NO_SHARED}")
        pytest.skip(NO_SHARED)
    return SHARED_MIBS
