"""Pipeline with the real VppSource, reduce, table and state against the emulated VPP.

Only the pipeline's clock is fake (staleness is about the pipeline's time, not
the wall clock); everything else is the production code path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from agentx_lb.emulator import EmulatedVpp
from agentx_lb.memory import MemoryPolicy, NoMemoryPolicy
from agentx_lb.oids import DEFAULT_ROOT
from agentx_lb.pipeline import Pipeline
from agentx_lb.table import Table
from agentx_lb.vpp.source import VppSource
from fakes import FakeClock


def make(
    vpp: EmulatedVpp,
    state_path: str,
    published: list[Any],
    clock: FakeClock,
    memory: MemoryPolicy | None = None,
) -> tuple[Pipeline, VppSource]:
    source = VppSource(vpp.stats_socket, vpp.api_socket, vpp.api_dir, timeout_s=0.5)
    pipeline = Pipeline(
        source,
        published.append,
        root=DEFAULT_ROOT,
        interval_s=5.0,
        max_stale_intervals=2,
        state_path=state_path,
        clock=clock,
        memory=memory or NoMemoryPolicy(),  # only the GC test freezes pytest's collector
    )
    return pipeline, source


def next_packets(pipeline: Pipeline) -> dict[int, int]:
    return {r.vip.index: r.counters.next_packets for r in pipeline.snapshot.rows}


def test_scrape_withdraw_recover_and_state_across_agent_restart(
    make_vpp: Callable[..., EmulatedVpp], short_tmpdir: str
) -> None:
    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    b = vpp.add_vip("2001:db8::10/128", encap="gre6")
    vpp.add_backend(a, "10.0.0.1")
    vpp.add_backend(b, "2001:db8:1::1")
    vpp.traffic(a, thread=1, next_packets=100)
    vpp.traffic(a, thread=2, next_packets=50)
    vpp.traffic(b, thread=1, next_packets=7)
    state_path = os.path.join(short_tmpdir, "counters.json")
    published: list[Any] = []
    clock = FakeClock(50.0)
    pipeline, source = make(vpp, state_path, published, clock)
    try:
        snap = pipeline.tick()
        assert snap.health.vpp_connected
        assert next_packets(pipeline) == {a: 150, b: 7}
        assert isinstance(published[-1], Table)
        assert os.path.exists(state_path)

        vpp.kill()  # VPP crashed: sockets stale
        for _ in range(2):
            clock.now += 5.0
            pipeline.tick()
            # Within 2 intervals of the last good scrape: the last good rows.
            assert next_packets(pipeline) == {a: 150, b: 7}
            assert not pipeline.snapshot.health.vpp_connected
        clock.now += 5.0
        snap = pipeline.tick()
        assert snap.rows == ()
        assert not snap.health.vpp_connected
        assert snap.health.consecutive_failures >= 3
        assert (
            vpp.api_socket in snap.health.last_error or vpp.stats_socket in snap.health.last_error
        )
        assert len(published[-1]) > 0  # health scalars still served

        vpp.restart()  # a new VPP: counters at 0 inside VPP, VIPs re-created
        vpp.traffic(a, thread=1, next_packets=10)
        clock.now += 5.0
        pipeline.tick()
        # Monotonic across the VPP restart: the last served value became an offset.
        assert next_packets(pipeline)[a] == 160
    finally:
        source.close()

    # The agent restarts, VPP does not: counters continue from the state file.
    vpp.traffic(a, thread=2, next_packets=1)
    pipeline2, source2 = make(vpp, state_path, [], FakeClock(50.0))
    try:
        pipeline2.tick()
        assert next_packets(pipeline2)[a] == 161
    finally:
        source2.close()


def test_incremental_tables_equal_fresh_builds_and_survivors_are_frozen(
    make_vpp: Callable[..., EmulatedVpp], short_tmpdir: str
) -> None:
    import gc

    from agentx_lb.table import build_table

    vpp = make_vpp(workers=2)
    a = vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
    vpp.add_backend(a, "10.0.0.1")
    vpp.add_backend(a, "10.0.0.2")
    published: list[Any] = []
    pipeline, source = make(
        vpp, os.path.join(short_tmpdir, "c.json"), published, FakeClock(50.0), MemoryPolicy()
    )
    try:
        gc.unfreeze()
        for step in range(4):
            if step == 2:
                vpp.set_flows(a, "10.0.0.2", 7)
            vpp.traffic(a, thread=1, next_packets=step + 1)
            snapshot = pipeline.tick()
            fresh = build_table(snapshot, DEFAULT_ROOT)
            assert list(zip(published[-1].oids, published[-1].varbinds)) == list(
                zip(fresh.oids, fresh.varbinds)
            )
            assert gc.get_freeze_count() > 0  # the survivors left the collector's generations
    finally:
        gc.unfreeze()
        source.close()
