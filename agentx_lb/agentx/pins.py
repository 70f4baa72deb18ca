"""Walk pins: a walk in progress keeps the table it started on.

snmpd's next GetNext for a walk starts at the OID we answered last for it
(snmptable, a row per request: at the first column's). That OID is the walk's
key; a `Pin` remembers it with the walk's table, so a walk that spans
refreshes sees one scrape from its first OID to its last (every column of a
row too). The latest answer's pin is the `cursor` (the GetNext fast path
moves it in place); the pins of walks interleaved with it are parked by key.

The age policy, in one place (`Pins.usable`): a walk goes on in its table
only while that table's rows are at most `max_age_s` old, judged by the time
of the scrape they came from (`Table.taken_at`), never by when the table was
published; past that the walk goes on from the newest table. Besides:

* at most `max_pins` parked pins (the oldest parked goes first);
* a pin no walk has used for `idle_s` (one scrape interval, at least 3 s) is dropped when
  a newer table is published (`on_publish`), so pins never keep old tables
  alive after walks stop, whether or not requests come;
* two walks that meet at one OID go on from the newer of their tables, so no
  walk ever steps back to an older scrape.

Threads: the protocol loop uses the pins; `on_publish` runs on the scrape
thread. Every change of the parked dict is one GIL-atomic operation (`pop`,
a store, `list(items())`), so no lock is needed; the cursor is one reference,
and the fast path only moves the pin it holds (a cursor dropped meanwhile was
idle for an interval: its walk goes on from the newest table).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentx_lb.table import Table

__all__ = ["MAX_PINS", "Pin", "Pins"]

MAX_PINS = 64  # walks interleaved through one snmpd, besides the cursor
MIN_IDLE_S = 3.0  # seconds a pin may sit unused before a publish lets it go


@dataclass(slots=True, eq=False)
class Pin:
    """One walk: its table, where it goes on from, until when it may."""

    table: Table
    key: bytes  # AgentX wire OID of the last answer (as the next request echoes it)
    index: int  # that answer's position in `table`
    deadline: float  # monotonic: the table's rows are too old after this
    seq: int  # publish number of `table` (higher: newer)
    used: float  # monotonic: its last use


class Pins:
    """The cursor and the parked pins, with the age policy."""

    def __init__(self, max_age_s: float, idle_s: float, max_pins: int = MAX_PINS) -> None:
        self.max_age_s = max_age_s
        # At a 1 s interval a walker pausing a little longer (a slow manager, a
        # busy host) would lose its table mid-walk: never less than this.
        self.idle_s = max(idle_s, MIN_IDLE_S)
        self.max_pins = max_pins
        self.cursor: Pin | None = None
        self.parked: dict[bytes, Pin] = {}

    def deadline(self, table: Table) -> float:
        """When the rows of `table` become too old to serve or walk on."""
        return table.taken_at + self.max_age_s

    def usable(self, pin: Pin, now: float) -> bool:
        return now <= pin.deadline

    def take(self, key: bytes | None, now: float) -> Pin | None:
        """The pin of the walk whose next request starts at `key` (None: not a
        walk's continuation), if it may go on; the cursor is parked unless it
        is that walk."""
        cursor = self.cursor
        self.cursor = None
        pin = None
        if cursor is not None:
            if cursor.key == key:
                pin = cursor
            else:
                self._park(cursor)
        if pin is None and key is not None:
            pin = self.parked.pop(key, None)
        if pin is not None and self.usable(pin, now):
            return pin
        return None

    def point(self, table: Table, key: bytes, index: int, seq: int, now: float) -> Pin:
        """The latest answer (cell `index` of `table`, wire OID `key`) is a walk's
        new head: it becomes the cursor."""
        pin = Pin(table, key, index, self.deadline(table), seq, now)
        self.cursor = pin
        if self.parked:
            self.merge(pin)
        return pin

    def merge(self, cursor: Pin) -> None:
        """When the cursor's key names a parked pin, two walks meet there: both
        go on from the newer of their tables (one pin)."""
        other = self.parked.pop(cursor.key, None)
        if other is not None and other.seq > cursor.seq:
            cursor.table, cursor.index = other.table, other.index
            cursor.deadline, cursor.seq = other.deadline, other.seq

    def _park(self, pin: Pin) -> None:
        parked = self.parked
        parked.pop(pin.key, None)
        parked[pin.key] = pin  # the newest last: dicts keep insertion order
        while len(parked) > self.max_pins:
            parked.pop(next(iter(list(parked))), None)

    def on_publish(self, now: float) -> None:
        """A newer table is served: drop the pins no walk used for `idle_s`."""
        stale = now - self.idle_s
        cursor = self.cursor
        if cursor is not None and cursor.used < stale:
            self.cursor = None
        for key, pin in list(self.parked.items()):
            if pin.used < stale:
                self.parked.pop(key, None)

    def clear(self) -> None:
        """Walks do not survive a new session (or a new clock)."""
        self.cursor = None
        self.parked.clear()

    def __len__(self) -> int:
        return len(self.parked) + (self.cursor is not None)
