"""Fixtures of the real-VPP tier: a VPP from an install prefix, started per test.

The tier runs only when asked for (`./setup.sh test-realvpp PREFIX`, marker
`realvpp`); the default test run deselects it. Without a VPP it skips, saying
how to give one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from realvpp import RealVpp

# Not AGENTX_LB_*: the suite clears those so that no agent setting leaks in.
PREFIX_ENV = "AXLB_REALVPP_PREFIX"


@pytest.fixture(scope="session")
def vpp_prefix() -> str:
    prefix = os.environ.get(PREFIX_ENV, "")
    if not prefix:
        pytest.skip(
            f"no real VPP given: set {PREFIX_ENV} to a VPP install prefix (bin/vpp, bin/vppctl,"
            " the lb plugin), e.g. ./setup.sh test-realvpp /opt/vpp; see README 'Real-VPP tier'"
        )
    if os.geteuid() != 0:
        pytest.skip("the real-VPP tier runs VPP, which needs root")
    if not os.access(os.path.join(prefix, "bin", "vpp"), os.X_OK):
        pytest.fail(f"{PREFIX_ENV}={prefix}: no executable bin/vpp there")
    return prefix


@pytest.fixture
def make_real_vpp(vpp_prefix: str) -> Iterator[Callable[..., RealVpp]]:
    made: list[tuple[RealVpp, str]] = []

    def factory(workers: int | None = None) -> RealVpp:
        run_dir = tempfile.mkdtemp(prefix="axlb-vpp-", dir="/tmp")
        vpp = RealVpp(vpp_prefix, run_dir, workers=workers)
        made.append((vpp, run_dir))
        return vpp

    yield factory
    for vpp, run_dir in made:
        vpp.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
