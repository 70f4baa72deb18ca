"""Pipeline: staleness, health, failure counting, recovery, state, the tick loop.

The source, clock, reduce, build_table and state functions are small fakes
injected through the constructor.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from agentx_lb import memory
from agentx_lb.clock import EventClock
from agentx_lb.errors import SourceDataError, SourceUnavailableError
from agentx_lb.memory import MemoryPolicy, NoMemoryPolicy
from agentx_lb.model import (
    Backend,
    Encap,
    LbSettings,
    ParseProblem,
    RawScrape,
    Snapshot,
    Vip,
    VipCounters,
    VipRow,
)
from agentx_lb.oids import DEFAULT_ROOT, Oid
from agentx_lb.pipeline import Pipeline, run_in_thread
from fakes import FakeClock


def vip(index: int, port: int = 80) -> Vip:
    return Vip(
        index=index,
        address=f"192.0.2.{index}",
        prefix_length=32,
        ip_version=4,
        encap=Encap.GRE4,
        protocol=6,
        port=port,
    )


def raw(*vips: Vip, problems: tuple[ParseProblem, ...] = (), version: str = "25.10") -> RawScrape:
    return RawScrape(
        vips=vips,
        problems=problems,
        lb_counters={},
        route_to=[],
        stats_index={},
        vpp_instance="i1",
        vpp_version=version,
        settings=LbSettings(flow_timeout_s=40),
    )


class FakeSource:
    """Replays a script: a RawScrape is returned, an exception raised."""

    def __init__(self, clock: FakeClock, script: list[Any], cost_s: float = 0.0) -> None:
        self.clock = clock
        self.script = list(script)
        self.cost_s = cost_s
        self.reads = 0

    def read(self) -> RawScrape:
        self.reads += 1
        self.clock.now += self.cost_s
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return item


def same_reduce(r: RawScrape, state: Any, now_cs: int) -> tuple[tuple[VipRow, ...], Any]:
    """No rows, and always the same state: nothing to write after the first."""
    return (), {"same": 1}


def fake_reduce(r: RawScrape, state: Any, now_cs: int) -> tuple[tuple[VipRow, ...], Any]:
    """Counts scrapes in the state, so a test can see it threaded through."""
    count = (state or {}).get("scrapes", 0) + 1
    rows = tuple(VipRow(v, VipCounters(next_packets=count), now_cs) for v in r.vips)
    return rows, {"scrapes": count}


class FakeTable(tuple[object, ...]):
    """("table", snapshot, root), with no dropped cells."""

    drops = ()


def fake_build(snapshot: Snapshot, root: Oid, previous: Any = None) -> Any:
    """A FakeTable where the pipeline expects a Table: it only passes it on."""
    return FakeTable(("table", snapshot, root))


@dataclass
class Harness:
    clock: FakeClock
    source: FakeSource
    published: list[Any] = field(default_factory=list)
    saved: list[tuple[str, Any]] = field(default_factory=list)

    def pipeline(self, **kw: Any) -> Pipeline:
        kw.setdefault("interval_s", 5.0)
        kw.setdefault("memory", NoMemoryPolicy())  # leave the test process's GC alone
        return Pipeline(
            self.source,
            self.published.append,
            root=DEFAULT_ROOT,
            clock=self.clock,
            build_table=fake_build,
            reduce=fake_reduce,
            save_state=lambda path, state, **_: self.saved.append((path, state)),
            write_due=lambda saved, _at, new, _now: new != saved,
            # Event times: centiseconds since the pipeline started (t=1000 s).
            event_clock=EventClock(self.clock, wall=lambda: 0.0),
            **kw,
        )


def harness(script: list[Any], cost_s: float = 0.0) -> Harness:
    clock = FakeClock()
    return Harness(clock, FakeSource(clock, script, cost_s))


DOWN = SourceUnavailableError("api socket /run/vpp/api.sock: connection refused")


def test_good_tick_publishes_rows_and_health() -> None:
    h = harness([raw(vip(1), vip(2))], cost_s=0.25)
    p = h.pipeline()
    h.clock.now += 3.0
    snap = p.tick()
    assert [r.vip.index for r in snap.rows] == [1, 2]
    assert snap.settings == LbSettings(flow_timeout_s=40)
    hl = snap.health
    assert hl.vpp_connected is True
    assert hl.vpp_version == "25.10"
    assert hl.vip_count == 2
    assert hl.vip_table_last_change_cs == 300  # the tick started 3 s after the pipeline
    assert hl.last_scrape_duration_ms == 250
    assert hl.table_age_s == 0
    assert (hl.scrape_failures, hl.consecutive_failures, hl.last_error) == (0, 0, "")
    assert h.published == [("table", snap, DEFAULT_ROOT)]
    assert p.snapshot is snap


def test_staleness_withdrawal_exactly_after_the_limit() -> None:
    h = harness([raw(vip(1)), DOWN])
    p = h.pipeline(interval_s=5.0, max_stale_intervals=3)
    assert p.tick().health.vip_count == 1  # good at t=0
    for k in (1, 2, 3):  # failures at 5, 10, 15 s: within 3 intervals, still served
        h.clock.now += 5.0
        snap = p.tick()
        assert [r.vip.index for r in snap.rows] == [1]
        assert snap.health.vpp_connected is False
        assert snap.health.consecutive_failures == k
        assert snap.health.table_age_s == 5 * k
        assert snap.health.vpp_version == "25.10"
        assert snap.settings is not None
    h.clock.now += 0.5  # 15.5 s: past the limit
    snap = p.tick()
    assert snap.rows == ()
    assert snap.settings is None
    assert snap.health.vip_count == 0
    assert snap.health.vpp_version == ""
    # The rows left when they grew too old (15 s), not when this tick noticed.
    assert snap.health.vip_table_last_change_cs == 1500
    assert snap.health.last_error == str(DOWN)
    assert snap.health.scrape_failures == 4
    assert snap.health.table_age_s == 15
    assert h.published[-1] == ("table", snap, DEFAULT_ROOT)


def test_never_connected_serves_no_rows_and_says_why() -> None:
    h = harness([SourceDataError("vpp answered retval=-1")])
    p = h.pipeline()
    snap = p.tick()
    assert snap.rows == ()
    assert snap.health.vpp_connected is False
    assert snap.health.last_error == "vpp answered retval=-1"
    assert (snap.health.scrape_failures, snap.health.consecutive_failures) == (1, 1)
    assert snap.health.vip_table_last_change_cs == 0
    h.clock.now += 12.7
    assert p.tick().health.table_age_s == 12  # since the agent started


def test_recovery_resets_streak_keeps_totals(caplog: pytest.LogCaptureFixture) -> None:
    h = harness([raw(vip(1)), DOWN, DOWN, DOWN, DOWN, DOWN, raw(vip(1))])
    p = h.pipeline(interval_s=1.0, max_stale_intervals=2)
    caplog.set_level(logging.DEBUG, logger="agentx_lb.pipeline")
    p.tick()
    for _ in range(5):
        h.clock.now += 1.0
        p.tick()
    assert p.snapshot.rows == ()
    h.clock.now += 1.0
    snap = p.tick()
    assert [r.vip.index for r in snap.rows] == [1]
    assert snap.health.vpp_connected is True
    assert snap.health.consecutive_failures == 0
    assert snap.health.scrape_failures == 5
    assert snap.health.last_error == str(DOWN)  # the last error stays visible
    assert snap.health.vip_table_last_change_cs == 600  # rows came back
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(" ")[0:2] for r in warnings] == [
        ["scrape", "failed"],
        ["vip", "table"],
    ]
    assert warnings[0].exc_info is None  # one line for the operator
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1 and tracebacks[0].levelno == logging.DEBUG  # one per streak
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "scrape recovered failures=5" in infos
    debug_repeats = [r for r in caplog.records if "failed again" in r.getMessage()]
    assert len(debug_repeats) == 4
    assert all(r.levelno == logging.DEBUG for r in debug_repeats)


def test_last_change_moves_only_when_identities_change() -> None:
    h = harness([raw(vip(1)), raw(vip(1)), raw(vip(1), vip(2)), raw(vip(1, port=443))])
    p = h.pipeline()
    changes = []
    for _ in range(4):
        changes.append(p.tick().health.vip_table_last_change_cs)
        h.clock.now += 1.0
    assert changes == [0, 0, 200, 300]


def test_last_change_follows_backend_rows_and_state_not_flows() -> None:
    def with_backends(*backends: Backend) -> RawScrape:
        return raw(replace(vip(1), backends=backends))

    b2 = Backend("10.0.0.2", buckets=512, flows=0, used=True)
    b3 = Backend("10.0.0.3", buckets=512, flows=0, used=True)
    script = [
        with_backends(b2),
        with_backends(replace(b2, flows=77, buckets=511)),  # traffic: no change
        with_backends(b2, b3),  # backend row added
        with_backends(b2, replace(b3, used=False)),  # backend removed (state)
        with_backends(b2, replace(b3, used=False)),
    ]
    h = harness(script)
    p = h.pipeline()
    changes = []
    for _ in script:
        changes.append(p.tick().health.vip_table_last_change_cs)
        h.clock.now += 1.0
    assert changes == [0, 0, 200, 300, 300]


def test_parser_problems_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    bad = ParseProblem(3, "  weird line", "unknown line")
    other = ParseProblem(9, "other", "unknown line")
    h = harness([raw(vip(1), problems=(bad,)), raw(vip(1), problems=(bad, other))])
    p = h.pipeline()
    caplog.set_level(logging.WARNING, logger="agentx_lb.pipeline")
    for _ in range(3):
        p.tick()
    logged = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert logged == [
        "vpp cli output skipped problem=unknown line: 'weird line'",
        "vpp cli output skipped problem=unknown line: 'other'",
    ]


def test_state_loaded_at_start_and_saved_when_changed() -> None:
    h = harness([raw(vip(1)), DOWN, raw(vip(1))])
    loaded: list[str] = []

    def load_state(path: str) -> Any:
        loaded.append(path)
        return {"scrapes": 41}

    p = h.pipeline(state_path="/s/counters.json", load_state=load_state)
    assert loaded == ["/s/counters.json"]
    snap = p.tick()
    assert snap.rows[0].counters.next_packets == 42  # reduce got the loaded state
    p.tick()  # failure: nothing saved
    p.tick()
    assert h.saved == [("/s/counters.json", {"scrapes": 42}), ("/s/counters.json", {"scrapes": 43})]


def test_state_not_saved_when_unchanged() -> None:
    h = harness([raw(vip(1))])
    p = Pipeline(
        h.source,
        h.published.append,
        root=DEFAULT_ROOT,
        interval_s=1.0,
        clock=h.clock,
        build_table=fake_build,
        reduce=same_reduce,
        state_path="/s/c.json",
        load_state=lambda path: None,
        save_state=lambda path, state, **_: h.saved.append((path, state)),
        write_due=lambda saved, _at, new, _now: new != saved,
        memory=NoMemoryPolicy(),
    )
    p.tick()
    p.tick()
    assert h.saved == [("/s/c.json", {"same": 1})]


def test_state_save_failure_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    h = harness([raw(vip(1))])
    attempts: list[Any] = []

    def save(path: str, state: Any, **_: Any) -> None:
        attempts.append(state)
        if len(attempts) == 1:
            raise PermissionError(13, "Permission denied", path)

    p = Pipeline(
        h.source,
        h.published.append,
        root=DEFAULT_ROOT,
        interval_s=1.0,
        clock=h.clock,
        build_table=fake_build,
        reduce=same_reduce,
        state_path="/s/c.json",
        load_state=lambda path: None,
        save_state=save,
        write_due=lambda saved, _at, new, _now: new != saved,
        memory=NoMemoryPolicy(),
    )
    p.tick()
    p.tick()  # state unchanged but not yet saved: tried again
    p.tick()
    assert attempts == [{"same": 1}, {"same": 1}]
    assert any("state save failed" in r.getMessage() for r in caplog.records)


def test_unreadable_state_starts_fresh(caplog: pytest.LogCaptureFixture) -> None:
    h = harness([raw(vip(1))])

    def load_state(path: str) -> Any:
        raise ValueError("corrupt json")

    p = h.pipeline(state_path="/s/c.json", load_state=load_state)
    assert p.tick().rows[0].counters.next_packets == 1
    assert any("state not loaded" in r.getMessage() for r in caplog.records)


class FakeStop:
    """A stop flag whose wait() advances the fake clock; stops after n waits."""

    def __init__(self, clock: FakeClock, waits: int) -> None:
        self.clock = clock
        self.left = waits
        self.timeouts: list[float] = []

    def is_set(self) -> bool:
        return self.left <= 0

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.timeouts.append(round(timeout, 6))
        self.clock.now += timeout
        self.left -= 1
        return self.is_set()


def test_run_is_deadline_based_and_starts_again_at_once_after_an_overrun() -> None:
    # Scrape costs: 1 s, then 12 s (overruns two 5 s slots), then 1 s. Waiting
    # for the next slot would leave the table 2 intervals + a tick old.
    h = harness([raw(vip(1))])
    costs = iter([1.0, 12.0, 1.0, 1.0])
    start_times: list[float] = []
    real_read = h.source.read

    def read() -> RawScrape:
        start_times.append(h.clock.now)
        h.clock.now += next(costs)
        return real_read()

    h.source.read = read  # type: ignore[method-assign]  # a timed read for this test
    p = h.pipeline(interval_s=5.0)
    stop = FakeStop(h.clock, waits=4)
    p.run(stop)
    # After the 12 s tick (ended at 17 s): one tick at once, no burst, then every 5 s.
    assert [t - 1000.0 for t in start_times] == [0.0, 5.0, 17.0, 22.0]
    assert stop.timeouts == [4.0, 0.0, 4.0, 4.0]


def test_run_reraises_bugs_and_thread_sets_crashed() -> None:
    h = harness([raw(vip(1))])

    def broken_reduce(r: RawScrape, s: Any, now: int) -> Any:
        raise KeyError("bug")

    p = Pipeline(
        h.source,
        h.published.append,
        root=DEFAULT_ROOT,
        interval_s=1.0,
        clock=h.clock,
        build_table=fake_build,
        reduce=broken_reduce,
        memory=NoMemoryPolicy(),
    )
    with pytest.raises(KeyError):
        p.run(FakeStop(h.clock, waits=5))

    import threading

    stop, crashed = threading.Event(), threading.Event()
    thread = run_in_thread(p, stop, crashed)
    thread.join(10)
    assert not thread.is_alive()
    assert crashed.is_set() and stop.is_set()


def test_run_stops_when_event_set() -> None:
    import threading

    h = harness([DOWN])
    first = threading.Event()
    p = Pipeline(
        h.source,
        lambda table: first.set(),
        root=DEFAULT_ROOT,
        interval_s=3600.0,
        clock=h.clock,
        build_table=fake_build,
        reduce=fake_reduce,
        memory=NoMemoryPolicy(),
    )
    stop, crashed = threading.Event(), threading.Event()
    thread = run_in_thread(p, stop, crashed)
    assert first.wait(10)  # the first tick runs at once, not after an interval
    stop.set()  # interrupts the hour-long wait
    thread.join(10)
    assert not thread.is_alive()
    assert not crashed.is_set()
    assert p.ticks == 1


def test_each_publish_releases_free_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def release_free_heap() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(memory, "release_free_heap", release_free_heap)
    monkeypatch.setattr(memory, "freeze_survivors", lambda tick: None)  # the test process's GC
    h = harness([raw(vip(1)), SourceUnavailableError("api socket /x: refused")])
    p = h.pipeline(memory=MemoryPolicy())
    p.tick()
    p.tick()
    assert calls == [1, 1]  # after a good scrape and after a failed one


def test_tick_pauses_automatic_gc_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    class GcWatchingSource(FakeSource):
        def read(self) -> RawScrape:
            seen.append(gc.isenabled())
            return super().read()

    h = harness([raw(vip(1)), SourceUnavailableError("api socket /x: refused")])
    h.source = GcWatchingSource(h.clock, h.source.script)
    monkeypatch.setattr(memory, "freeze_survivors", lambda tick: None)  # the test process's GC
    p = h.pipeline(memory=MemoryPolicy())
    assert gc.isenabled()
    p.tick()  # success path
    p.tick()  # failure path
    assert seen == [False, False]  # no automatic collection while a tick runs
    assert gc.isenabled()
    gc.disable()
    try:
        p.tick()
        assert not gc.isenabled()  # a caller's own choice is left alone
    finally:
        gc.enable()
