"""The clocks behind the TimeStamps the agent serves (RFC 2579: sysUpTime at the event).

Two clocks, one conversion:

* `EventClock` stamps events (a row's counter discontinuity, a change of the
  VIP table): centiseconds on the wall clock's scale (since the epoch), read
  once at start and advanced by the monotonic clock afterwards. A stamp
  survives an agent restart (the counter state file keeps it) and an NTP step
  while running does not move it.
* `MasterClock` is snmpd's sysUpTime, learned from every AgentX Response
  (RFC 2741 6.2.16: Open, Register, Ping all carry `res.sysUpTime`). Its offset
  is ``event clock now - sysUpTime`` at receipt; a served TimeStamp is
  ``event - offset``, clamped to 0 when the event predates snmpd's start (an
  event before the last re-initialisation is 0, RFC 2579) and to 2^32-1.

The offset is kept while a new reading agrees with it within `DRIFT_CS`, so
TimeStamps do not jitter by a centisecond between polls (an NMS would take a
changed discontinuity time for a discontinuity). snmpd restarting gives a new
session whose sysUpTime is back near 0: a different offset, adopted at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["DRIFT_CS", "TIMETICKS_MAX", "EventClock", "MasterClock"]

TIMETICKS_MAX = 2**32 - 1
# A reading further than this from the kept offset replaces it (1 s).
DRIFT_CS = 100


class EventClock:
    """Event times in centiseconds: wall-clock scale, monotonic pace."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.monotonic = monotonic
        self._base_s = wall() - monotonic()  # epoch seconds at monotonic 0

    def now_cs(self) -> int:
        return int((self.monotonic() + self._base_s) * 100)

    def at_cs(self, monotonic_s: float) -> int:
        """The event time of a `monotonic` reading (e.g. a scrape's `taken_at`)."""
        return int((monotonic_s + self._base_s) * 100)


class MasterClock:
    """snmpd's sysUpTime as an offset from the event clock; None until learned."""

    __slots__ = ("offset_cs",)

    def __init__(self) -> None:
        self.offset_cs: int | None = None

    def learn(self, sys_uptime_cs: int, event_now_cs: int) -> bool:
        """One Response's sysUpTime, received at `event_now_cs`; True when the
        offset changed (the served TimeStamps must be re-stamped)."""
        offset = event_now_cs - sys_uptime_cs
        if self.offset_cs is not None and abs(offset - self.offset_cs) <= DRIFT_CS:
            return False
        self.offset_cs = offset
        return True

    def stamp(self, event_cs: int) -> int:
        """The TimeStamp of an event: sysUpTime then (0 before snmpd started)."""
        if self.offset_cs is None:
            return 0
        return min(max(event_cs - self.offset_cs, 0), TIMETICKS_MAX)
