"""When the counter state is written, and what an unclean stop costs.

docs/architecture.md, "The counter state file".

The real reduce and write policy, a scripted source with live traffic (every
counter moving, flows changing), a fake clock and a recording save function.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from agentx_lb.cli import serve
from agentx_lb.clock import EventClock
from agentx_lb.memory import NoMemoryPolicy
from agentx_lb.model import Backend, CounterState, Encap, RawScrape, Vip
from agentx_lb.oids import DEFAULT_ROOT
from agentx_lb.pipeline import Pipeline
from agentx_lb.reduce import reduce
from agentx_lb.state import DRIFT_WRITE_S, load_state, save_state, write_due
from fakes import FakeClock


def live(tick: int, instance: str = "i1", n: int = 3) -> RawScrape:
    """A scrape of `n` VIPs whose counters and flows all move every tick."""
    vips = tuple(
        Vip(
            index=i,
            address=f"192.0.2.{i}",
            prefix_length=32,
            ip_version=4,
            encap=Encap.GRE4,
            protocol=6,
            port=80,
            backends=(Backend(address=f"10.0.0.{i}", buckets=1024, used=True, flows=tick * 7 + i),),
        )
        for i in range(1, n + 1)
    )
    row = [0] + [tick * 1000 + i for i in range(1, n + 1)]
    return RawScrape(
        vips=vips,
        problems=(),
        lb_counters={
            name: [row]
            for name in (
                "packet from existing sessions",
                "first session packet",
                "untracked packet",
                "no server configured",
            )
        },
        route_to=[[(tick * 10 + k, tick * 100 + k) for k in range(n + 1)]],
        stats_index={f"192.0.2.{i}/32": i for i in range(1, n + 1)},
        vpp_instance=instance,
    )


class Source:
    def __init__(self) -> None:
        self.tick = 0
        self.instance = "i1"

    def read(self) -> RawScrape:
        self.tick += 1
        return live(self.tick, self.instance)


def pipeline(
    clock: FakeClock, source: Any, saved: list[tuple[CounterState, bool]], **kw: Any
) -> Pipeline:
    kw.setdefault("memory", NoMemoryPolicy())  # leave the test process's GC alone
    return Pipeline(
        source,
        lambda table: None,
        root=DEFAULT_ROOT,
        interval_s=1.0,
        clock=clock,
        event_clock=EventClock(clock, wall=lambda: 0.0),
        state_path="/unused/counters.json",
        load_state=kw.pop("load_state", lambda path: None),
        save_state=lambda path, state, clean=False: saved.append((state, clean)),
        **kw,
    )


def test_live_traffic_writes_once_in_20_s_and_once_at_stop() -> None:
    clock = FakeClock()
    saved: list[tuple[CounterState, bool]] = []
    p = pipeline(clock, Source(), saved)
    for _ in range(20):  # 20 s of live traffic at a 1 s interval
        p.tick()
        clock.now += 1.0
    assert [clean for _, clean in saved] == [False]  # the first scrape: the file says "running"
    assert p.close()  # SIGTERM
    assert [clean for _, clean in saved] == [False, True]
    assert saved[-1][0] == p.state
    p.tick()
    assert len(saved) == 2  # nothing after the clean stop's write


def test_an_event_is_written_at_once_drift_once_a_minute() -> None:
    clock = FakeClock()
    saved: list[tuple[CounterState, bool]] = []
    source = Source()
    p = pipeline(clock, source, saved)
    p.tick()
    clock.now += 1.0
    source.instance = "i2"  # VPP restarted: offsets change
    p.tick()
    assert len(saved) == 2
    for _ in range(int(DRIFT_WRITE_S) + 1):
        clock.now += 1.0
        p.tick()
    assert len(saved) == 3  # the baselines drifted for a minute: one write


def test_write_due_compares_revisions_not_raw_values() -> None:
    _, s1 = reduce(live(1), None, 0)
    _, s2 = reduce(live(2), s1, 100)  # counters moved: no event
    assert s2.revision == s1.revision
    assert not write_due(s1, 0.0, s2, 10.0)
    assert write_due(s1, 0.0, s2, DRIFT_WRITE_S)
    _, s3 = reduce(live(3, instance="i2"), s2, 200)  # VPP restarted
    assert s3.revision != s2.revision
    assert write_due(s2, 0.0, s3, 1.0)
    _, s4 = reduce(live(4, instance="i2", n=2), s3, 300)  # a VIP gone: retained, stamped
    assert not write_due(s3, 0.0, s4, 1.0)  # no offset moved: the periodic write
    assert write_due(s3, 0.0, s4, DRIFT_WRITE_S)
    assert write_due(None, 0.0, s4, 0.0)
    _, s5 = reduce(live(5, instance="i2"), s4, 400)  # it came back, re-created by VPP
    assert s5.revision != s4.revision  # its last values became its offsets
    assert write_due(s4, 0.0, s5, 1.0)
    _, s6 = reduce(live(1, instance="i2"), s5, 500)  # every counter went down: reset
    assert s6.revision != s5.revision
    assert write_due(s5, 0.0, s6, 1.0)


def test_unclean_stop_moves_every_discontinuity_and_no_counter_goes_down(tmp_path) -> None:
    """kill -9 after a write a minute old, VPP restarted meanwhile: counters may be
    lower than what was served before the kill, but never with the same
    discontinuity time; with no VPP restart they never go down."""
    path = str(tmp_path / "counters.json")
    served_rows, state = reduce(live(5), None, 500)
    save_state(path, state)  # written while running: not a clean stop
    served_rows, _ = reduce(live(60), state, 6000)  # served later, never saved
    loaded = load_state(path)
    assert loaded is not None and loaded.unclean
    for instance in ("i2", "i1"):  # VPP restarted while we were down / VPP still up
        rows, after = reduce(live(2, instance=instance), loaded, 9000)
        for old, new in zip(served_rows, rows, strict=True):
            assert new.discontinuity_cs == 9000
            if instance == "i1":
                assert new.counters.next_packets >= old.counters.next_packets or (
                    new.discontinuity_cs != old.discontinuity_cs
                )
        assert not after.unclean
    save_state(path, after, clean=True)
    clean = load_state(path)
    assert clean is not None and not clean.unclean
    rows, _ = reduce(live(3), clean, 9100)
    assert {r.discontinuity_cs for r in rows} == {9000}  # a clean stop proves continuity


def test_state_file_events_survive_a_restart_on_the_event_clock(tmp_path) -> None:
    """Discontinuity times are saved on the event clock (wall scale): a restarted
    agent serves the same event time, not its own new uptime."""
    path = str(tmp_path / "counters.json")
    event_cs = 178_000_000_000  # 2026, in centiseconds since the epoch
    rows, state = reduce(live(1), None, event_cs)
    save_state(path, state, clean=True)
    loaded = load_state(path)
    assert loaded is not None
    rows, _ = reduce(live(2), loaded, event_cs + 360_000)  # an hour later
    assert {r.discontinuity_cs for r in rows} == {event_cs}


# ---------------------------------------------------------------- a bug in the scrape


class BuggySource:
    def read(self) -> RawScrape:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    def close(self) -> None:
        pass


class IdleAgent:
    """Stands in for LbAgent: serves until stopped."""

    def publish(self, table: object) -> None:
        pass

    def run(self, stop: threading.Event) -> None:
        stop.wait(10.0)


def test_a_typeerror_in_the_scrape_exits_nonzero_with_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = BuggySource()
    agent = IdleAgent()
    p = Pipeline(source, agent.publish, root=DEFAULT_ROOT, interval_s=1.0, memory=NoMemoryPolicy())
    stop = threading.Event()
    caplog.set_level(logging.INFO)
    status = serve(agent, p, source, stop)  # type: ignore[arg-type]  # duck-typed fakes
    assert status == 1
    crash = [r for r in caplog.records if r.getMessage() == "scrape thread crashed"]
    assert crash and crash[0].exc_info is not None
    assert crash[0].exc_info[0] is TypeError
    assert any("exiting after a crash" in r.getMessage() for r in caplog.records)
