"""Emulated-VPP fixtures (owned by the emulator work).

``vpp``: a started ``EmulatedVpp`` (2 workers, 25.10 CLI style) in a short
/tmp directory, stopped after the test.  ``make_vpp(**kwargs)``: a factory
taking ``EmulatedVpp``'s keyword arguments; every instance is stopped at
teardown.  ``api_client(vpp)`` / ``stats_client(vpp)``: context managers
giving connected, unmodified vpp_papi clients.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from vpp_papi import VPPApiClient
from vpp_papi.vpp_stats import VPPStats

from agentx_lb.emulator import EmulatedVpp

__all__ = ["api_client", "make_vpp", "stats_client", "vpp"]


@contextmanager
def api_client(
    vpp: EmulatedVpp, *, read_timeout: float = 2, **kwargs: Any
) -> Iterator[VPPApiClient]:
    """A connected unmodified ``VPPApiClient``; always disconnected afterwards."""
    if not kwargs.get("bootstrapapi"):
        kwargs.setdefault("apifiles", vpp.api_files)
    client = VPPApiClient(server_address=vpp.api_socket, read_timeout=read_timeout, **kwargs)
    client.connect("test")
    try:
        yield client
    finally:
        client.disconnect()


@contextmanager
def stats_client(vpp: EmulatedVpp) -> Iterator[VPPStats]:
    """A connected unmodified ``VPPStats``; its mapping is closed afterwards."""
    stats = VPPStats(socketname=vpp.stats_socket)
    stats.connect()
    try:
        yield stats
    finally:
        stats.disconnect()


@pytest.fixture
def make_vpp() -> Iterator[Callable[..., EmulatedVpp]]:
    made: list[tuple[EmulatedVpp, str]] = []

    def factory(**kwargs: Any) -> EmulatedVpp:
        run_dir = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
        emu = EmulatedVpp(run_dir, **kwargs)
        made.append((emu, run_dir))
        emu.start()
        return emu

    yield factory
    for emu, run_dir in made:
        emu.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def vpp(make_vpp: Callable[..., EmulatedVpp]) -> EmulatedVpp:
    return make_vpp(workers=2, cli_style="25.10")
