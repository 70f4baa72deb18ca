"""The scrape thread: read VPP, reduce, build the table, publish; keep the health.

`Pipeline.tick()` does one scrape. A `SourceError` is counted and reported in the
health scalars; the last good VIP rows stay in the published table while they
are at most ``max_stale_intervals * interval_s`` old, after that they are
withdrawn (an empty VIP table plus scalars saying why: unknown is never served
as 0). Every table carries the time of the scrape its rows came from
(`Snapshot.taken_at`): the agent applies the same limit when it answers, so no
row older than the limit is served even while a VPP call hangs this thread.
TimeStamps are events on the `EventClock`; the agent puts them on snmpd's clock.
The counter state is written by `agentx_lb.state.write_due` and by `close()`.
`Pipeline.run()` ticks on a monotonic deadline: the first tick at once; a tick
that overran its slot is followed at once by the next, the missed slots dropped
(never a burst). Any other exception is a bug: logged with its
traceback and re-raised, so the process exits and systemd restarts it.

With `notify`, each published scrape also goes to `agentx_lb.notify.Notifier`
(the table shape computed here anyway, no extra VPP call); the notifications it
calls for are encoded and handed to `notify` (the agent's queue to its
session). Between ticks `run()` wakes when a hold-down ends, so a change held
back is sent then, not at the next tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Protocol

from agentx_lb import reduce as reducing
from agentx_lb import state as statefile
from agentx_lb import table as tables
from agentx_lb.clock import EventClock
from agentx_lb.errors import SourceError
from agentx_lb.logs import FailureStreak, OnceLogger
from agentx_lb.memory import PROCESS_MEMORY, MemoryPolicy
from agentx_lb.model import (
    CounterState,
    Frame,
    Health,
    LbSettings,
    RawScrape,
    Snapshot,
    Vip,
    VipRow,
)
from agentx_lb.notify import (
    DEFAULT_HOLDDOWN_S,
    Notification,
    Notifier,
    ShapeRow,
    encode,
)
from agentx_lb.oids import Oid, format_oid
from agentx_lb.table import CellDrop, Table
from agentx_lb.values import CellError

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the pipeline needs from `agentx_lb.vpp.source.VppSource`."""

    def read(self) -> RawScrape: ...


class Waiter(Protocol):
    """A stop flag that can be waited on (`threading.Event`)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


# (raw, state, now_cs) -> (rows, state); agentx_lb.reduce.reduce (rows: a Frame)
ReduceFn = Callable[[RawScrape, CounterState | None, int], tuple[Sequence[VipRow], CounterState]]
# (snapshot, root, previous table) -> table; agentx_lb.table.build_table reuses
# the previous table's unchanged columns.
BuildTable = Callable[[Snapshot, Oid, Table | None], Table]
# (saved, saved_at, new, now) -> write now?; agentx_lb.state.write_due
WriteDue = Callable[[CounterState | None, float, CounterState, float], bool]


class SaveState(Protocol):
    """`agentx_lb.state.save_state`."""

    def __call__(self, path: str, state: CounterState, *, clean: bool = False) -> None: ...


class Pipeline:
    """One scrape per `tick()`; `run()` ticks every `interval_s` until stopped."""

    def __init__(
        self,
        source: Source,
        publish: Callable[[Table], None],
        *,
        root: Oid,
        interval_s: float,
        max_stale_intervals: int = 3,
        state_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        event_clock: EventClock | None = None,
        build_table: BuildTable = tables.build_table,
        reduce: ReduceFn = reducing.reduce,
        load_state: Callable[[str], CounterState | None] = statefile.load_state,
        save_state: SaveState = statefile.save_state,
        write_due: WriteDue = statefile.write_due,
        notify: Callable[[Sequence[bytes]], None] | None = None,
        notify_holddown_s: float = DEFAULT_HOLDDOWN_S,
        memory: MemoryPolicy = PROCESS_MEMORY,
    ) -> None:
        self._source = source
        self._notify = notify
        self._notifier = Notifier(notify_holddown_s) if notify is not None else None
        self.notifications = 0  # handed to `notify` since start (tests, benchmarks)
        self._publish = publish
        self._root = root
        self._interval_s = interval_s
        self._stale_limit_s = max_stale_intervals * interval_s
        self._state_path = state_path
        self._clock = clock
        self._events = event_clock or EventClock(clock)
        self._build_table = build_table
        self._table: Table | None = None  # the last one published
        self._reduce = reduce
        self._save_state = save_state
        self._write_due = write_due
        self._memory = memory
        self._start = clock()
        self._save_lock = threading.Lock()
        self._closed = False
        self._saved_at = self._start

        self._failures = FailureStreak(log, "scrape")
        self._save_failures = FailureStreak(log, "state save")
        self._problems = OnceLogger(log)
        self._drops = OnceLogger(log)  # keyed by column and problem
        self._state: CounterState | None = None
        self._saved_state: CounterState | None = None
        if state_path is not None:
            self._state = self._load(state_path, load_state)
            # _saved_state stays None: the first good scrape writes the file,
            # which from then on says "running" (not a clean stop) until close().

        self._rows: Sequence[VipRow] = ()
        self._settings: LbSettings | None = None
        self._vpp_version = ""
        self._last_good: float | None = None
        self._withdrawn = False
        self._table_shape: tuple[ShapeRow, ...] = ()
        self._shape_vips: tuple[Vip, ...] = ()  # what _table_shape was made from
        self._shape_rows: dict[int, ShapeRow] = {}  # id(vip) -> its row, for _shape_vips
        self._last_change_cs = 0  # event time (EventClock); 0: no change yet
        self._total_failures = 0
        self._last_error = ""
        self._duration_ms = 0
        self.snapshot = Snapshot()  # the last one published
        self.ticks = 0
        self.state_writes = 0

    @staticmethod
    def _load(path: str, load_state: Callable[[str], CounterState | None]) -> CounterState | None:
        try:
            state = load_state(path)
        except (OSError, ValueError) as exc:
            # A lost state file costs one discontinuity, not the agent.
            log.warning("state not loaded path=%s err=%s", path, exc)
            return None
        log.info("state loaded path=%s found=%s", path, state is not None)
        return state

    def now_cs(self) -> int:
        """Now on the event clock (centiseconds, see `agentx_lb.clock`)."""
        return self._events.now_cs()

    @property
    def state(self) -> CounterState | None:
        """The counter state after the last good scrape (None before one)."""
        return self._state

    def tick(self) -> Snapshot:
        """One scrape; publishes and returns the snapshot served from now on."""
        with self._memory.paused():
            return self._tick()

    def _tick(self) -> Snapshot:
        self.ticks += 1
        started = self._clock()
        try:
            raw = self._source.read()
        except SourceError as exc:
            self._duration_ms = int((self._clock() - started) * 1000)
            self._on_failure(exc, started)
        else:
            rows, state = self._reduce(raw, self._state, self.now_cs())
            self._duration_ms = int((self._clock() - started) * 1000)
            self._on_success(raw, rows, state, started)
        return self._serve(started)

    def _on_success(
        self, raw: RawScrape, rows: Sequence[VipRow], state: CounterState, started: float
    ) -> None:
        self._failures.success()
        for problem in raw.problems:
            self._problems.log("vpp cli output skipped", problem.problem)
        self._rows = rows
        self._settings = raw.settings
        self._vpp_version = raw.vpp_version
        self._last_good = started
        if self._withdrawn:
            log.info("vip table served again vips=%d", len(rows))
        self._withdrawn = False
        self._state = state
        log.debug("scrape ok vips=%d duration_ms=%d", len(rows), self._duration_ms)
        if self._state_path is not None and self._write_due(
            self._saved_state, self._saved_at, state, started
        ):
            self._store(self._state_path, state, started)

    def _store(self, path: str, state: CounterState, now: float, *, clean: bool = False) -> bool:
        with self._save_lock:
            if self._closed:
                return False  # the clean stop's write is the last one
            try:
                self._save_state(path, state, clean=clean)
            except OSError as exc:
                self._save_failures.failure(exc, path=path)
                return False
            self._save_failures.success()
            self._saved_state = state
            self._saved_at = now
            self.state_writes += 1
            return True

    def close(self) -> bool:
        """At a clean stop: write the counter state once more, marked clean, and
        no more after it. Safe from another thread while a tick hangs in VPP
        (the state is one immutable reference). True when it was written."""
        if self._state_path is None or self._state is None:
            return False
        written = self._store(self._state_path, self._state, self._clock(), clean=True)
        with self._save_lock:
            self._closed = True
        return written

    def _on_failure(self, exc: SourceError, started: float) -> None:
        self._total_failures += 1
        self._last_error = str(exc) or type(exc).__name__
        self._failures.failure(exc)
        age = None if self._last_good is None else started - self._last_good
        if not self._withdrawn and (age is None or age > self._stale_limit_s):
            if self._rows:
                log.warning(
                    "vip table withdrawn age_s=%.0f limit_s=%.0f", age or 0, self._stale_limit_s
                )
                # The rows left when they grew too old (the agent's rule too),
                # not when this tick noticed.
                assert self._last_good is not None
                self._table_shape = ()
                self._shape_vips = ()
                self._shape_rows = {}  # its ids were of the VIPs just let go
                self._last_change_cs = self._events.at_cs(self._last_good + self._stale_limit_s)
            self._rows = ()
            self._settings = None
            self._vpp_version = ""
            self._withdrawn = True

    def _serve(self, now: float) -> Snapshot:
        vips = (
            self._rows.vips if isinstance(self._rows, Frame) else tuple(r.vip for r in self._rows)
        )
        if vips == self._shape_vips:  # the parser's same Vip objects: one identity check each
            shape = self._table_shape
        else:
            # Each VIP's row of the shape is made once per Vip object.
            known = self._shape_rows
            shape = tuple(known.get(id(v)) or _shape_row(v) for v in vips)
            self._shape_rows = dict(zip(map(id, vips), shape))
            self._shape_vips = vips  # (keeps the objects of _shape_rows' ids alive)
        if shape != self._table_shape:
            self._table_shape = shape
            self._last_change_cs = self._events.at_cs(now)
        else:
            shape = self._table_shape  # the same object: the notifier's compare is free
        since = self._start if self._last_good is None else self._last_good
        health = Health(
            vpp_connected=self._failures.count == 0 and self._last_good is not None,
            vpp_version=self._vpp_version,
            vip_count=len(self._rows),
            vip_table_last_change_cs=self._last_change_cs,
            table_age_s=max(0, int(now - since)),
            last_scrape_duration_ms=self._duration_ms,
            scrape_failures=self._total_failures,
            consecutive_failures=self._failures.count,
            last_error=self._last_error,
        )
        snapshot = Snapshot(rows=self._rows, settings=self._settings, health=health, taken_at=since)
        table = self._build_table(snapshot, self._root, self._table)
        log_drops(self._drops, table.drops)
        self._table = None  # let the old table go as soon as the agent drops it
        self._publish(table)
        self._table = table
        self.snapshot = snapshot
        if self._notifier is not None:
            self._send(
                self._notifier.observe(
                    self._rows,
                    shape,
                    connected=health.vpp_connected,
                    last_error=self._last_error,
                    now=self._clock(),
                )
            )
        self._memory.after_publish(self.ticks)
        return snapshot

    def _send(self, notes: list[Notification]) -> None:
        if not notes:
            return
        assert self._notify is not None
        out = []
        for note in notes:
            try:
                out.append(encode(note, self._root))
            except CellError as exc:  # a value that does not fit: not sent, said once
                self._problems.log("notification not sent", f"{note.type.mib_name}: {exc}")
                continue
            log.info("notification %s", note.describe())
        self.notifications += len(out)
        self._notify(out)

    def notify_due(self) -> None:
        """Send the changes whose hold-down has ended (the scrape thread, between ticks)."""
        if self._notifier is not None:
            self._send(self._notifier.due(self._clock()))

    def _wait(self, stop: Waiter, deadline: float) -> None:
        """Until `deadline`, waking for each hold-down that ends before it."""
        while True:
            now = self._clock()
            due = self._notifier.next_due() if self._notifier is not None else None
            if due is None or due >= deadline:
                stop.wait(deadline - now)
                return
            if stop.wait(max(0.0, due - now)):
                return
            self.notify_due()

    def run(self, stop: Waiter) -> None:
        """Tick every `interval_s` until `stop` is set; re-raise anything but SourceError."""
        try:
            deadline = self._clock()
            while not stop.is_set():
                self.tick()
                deadline += self._interval_s
                now = self._clock()
                if now >= deadline:
                    # Overran: the next tick starts at once and the slots start
                    # again from it. Waiting for the next slot instead would
                    # leave the table up to two intervals plus a tick old, past
                    # the staleness limit on a large LB, and the rows would be
                    # withdrawn although every scrape succeeded. Never a burst:
                    # the missed slots are dropped.
                    missed = int((now - deadline) // self._interval_s) + 1
                    log.debug("scrape overran slots_dropped=%d", missed)
                    deadline = now
                self._wait(stop, deadline)
        except Exception:
            log.exception("scrape thread crashed")
            raise


def run_in_thread(
    pipeline: Pipeline, stop: threading.Event, crashed: threading.Event
) -> threading.Thread:
    """Start `pipeline.run(stop)` in a daemon thread; `crashed` is set if it dies of a bug."""

    def target() -> None:
        try:
            pipeline.run(stop)
        except Exception:
            crashed.set()
            stop.set()

    thread = threading.Thread(target=target, name="scrape", daemon=True)
    thread.start()
    return thread


def log_drops(once: OnceLogger, drops: Iterable[CellDrop]) -> None:
    """Each cell a table build dropped: WARNING once per column and problem, DEBUG after."""
    for d in drops:
        if once.first(f"{d.column}\0{d.kind}"):
            log.warning(
                "cell dropped column=%s oid=.%s err=%s (logged once per column and problem)",
                d.column,
                format_oid(d.oid),
                d.error,
            )
        else:
            log.debug("cell dropped column=%s oid=.%s err=%s", d.column, format_oid(d.oid), d.error)


def _table_shape(vips: Sequence[Vip]) -> tuple[ShapeRow, ...]:
    """What vppLbAgentVipTableLastChange tracks: the rows of both tables and each
    backend's state and weight; not flows or buckets, which move all the time."""
    return tuple(map(_shape_row, vips))


def _shape_row(vip: Vip) -> ShapeRow:
    """One VIP's row of the shape; its backends flat (`agentx_lb.notify.BackendShape`)."""
    backends = tuple(chain.from_iterable((b.address, b.used, b.weight) for b in vip.backends))
    return (vip.identity, backends)
