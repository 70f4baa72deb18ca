"""Notifications on their way from the scrape thread to the AgentX session.

The scrape thread `put()`s encoded VarBindLists; the session thread `take()`s
them and sends each as a Notify PDU while it is registered. The queue is
bounded: while snmpd is away the oldest are dropped (counted, and logged once
per overflow) and the rest go out after the next registration. `put()` also
wakes the session's idle wait through an eventfd, so a notification does not
wait for the next request or Ping.

deque appends and pops are atomic under the GIL; the lock only keeps the drop
count and the queue consistent with each other.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterable

__all__ = ["OUTBOX_MAX", "Outbox"]

log = logging.getLogger(__name__)

OUTBOX_MAX = 1000


class Outbox:
    """A bounded FIFO of encoded notifications plus the session's wake-up fd."""

    def __init__(self, maxlen: int = OUTBOX_MAX) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self.queue: deque[bytes] = deque()  # the session checks `if outbox.queue` per PDU
        self.dropped = 0  # since start
        self._unreported = 0  # dropped since the session last logged it
        self._lock = threading.Lock()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def put(self, varbinds: Iterable[bytes]) -> None:
        """Queue notifications (scrape thread); the oldest go when it is full."""
        with self._lock:
            for vb in varbinds:
                if len(self.queue) >= self.maxlen:
                    self.queue.popleft()
                    self.dropped += 1
                    self._unreported += 1
                    if self._unreported == 1:
                        log.warning("notification queue full: oldest dropped limit=%d", self.maxlen)
                self.queue.append(vb)
        self.wake()

    def requeue(self, varbinds: list[bytes]) -> None:
        """Put unanswered notifications back at the front (session lost), in order."""
        with self._lock:
            for vb in reversed(varbinds):
                if len(self.queue) >= self.maxlen:
                    self.dropped += 1
                    self._unreported += 1
                    continue  # the newer ones stay
                self.queue.appendleft(vb)

    def take(self) -> bytes | None:
        try:
            return self.queue.popleft()
        except IndexError:
            return None

    def unreported_drops(self) -> int:
        """Drops since the last call (the session logs them once it can send again)."""
        with self._lock:
            n, self._unreported = self._unreported, 0
        return n

    def wake(self) -> None:
        try:
            os.eventfd_write(self.wake_fd, 1)
        except OSError:  # closed, or the counter is saturated: a wake-up is pending anyway
            pass

    def drain_wake(self) -> None:
        try:
            os.eventfd_read(self.wake_fd)
        except OSError:  # BlockingIOError: nothing pending
            pass

    def close(self) -> None:
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            self.wake_fd = -1
