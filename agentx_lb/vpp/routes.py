"""Which VIP prefixes need an `ip_route_lookup`: the FIB stats indexes of one VPP.

Pure bookkeeping, no I/O. A resolved prefix's `stats_index` (its `/net/route/to`
counter) holds as long as the VPP process does: a reconnect to the same VPP
keeps it, only a new VPP instance forgets everything. Each entry is re-checked
once per `refresh_s`, at a time spread over the second half of that period, so
10,000 prefixes are refreshed a few dozen per scrape, never all at once. A
prefix whose lookup got no answer stays unknown (not 0) and is asked again on
the next scrape.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Mapping

__all__ = ["RouteCache"]


class RouteCache:
    """VIP prefix -> FIB stats_index (None: no exact FIB entry) for one VPP instance."""

    def __init__(self, refresh_s: float, *, rng: random.Random | None = None) -> None:
        self.refresh_s = refresh_s
        self._rng = rng or random.Random()
        self._instance: str | None = None
        self._index: dict[str, int | None] = {}
        self._due_at: dict[str, float] = {}
        # (due time, prefix) in time order: the scrape takes what is due off the
        # top instead of scanning every entry. An entry whose prefix was
        # resolved again since (another due time) or dropped is skipped.
        self._heap: list[tuple[float, str]] = []
        self._asked: dict[str, None] = {}  # due, handed out, no answer yet (in order)
        self._view: dict[str, int | None] | None = {}

    def use_instance(self, instance: str) -> None:
        """Forget everything when VPP is another process than the entries came from."""
        if instance != self._instance:
            self._instance = instance
            self._index.clear()
            self._due_at.clear()
            self._heap.clear()
            self._asked.clear()
            self._view = None

    def due(self, prefixes: Iterable[str], now: float) -> list[str]:
        """Prefixes to look up now: unknown ones first, then those due a refresh
        (asked again each time until answered).

        Entries of prefixes no VIP uses any more are dropped.
        """
        wanted = prefixes if isinstance(prefixes, (set, frozenset)) else set(prefixes)
        gone = self._index.keys() - wanted
        for prefix in gone:
            del self._index[prefix]
            del self._due_at[prefix]
            self._asked.pop(prefix, None)
            self._view = None
        new = sorted(wanted - self._index.keys())
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, prefix = heapq.heappop(heap)
            if self._due_at.get(prefix) == at:
                self._asked[prefix] = None
        return new + list(self._asked)

    def resolved(self, answers: Mapping[str, int | None], now: float) -> None:
        """Record lookup answers; a prefix missing from `answers` is left as it was."""
        index = self._index
        for prefix, stats_index in answers.items():
            if prefix not in index or index[prefix] != stats_index:
                self._view = None
            index[prefix] = stats_index
            at = now + self.refresh_s * (0.5 + 0.5 * self._rng.random())
            self._due_at[prefix] = at
            heapq.heappush(self._heap, (at, prefix))
            self._asked.pop(prefix, None)
        if len(self._heap) > 2 * len(self._due_at) + 64:
            # Superseded entries pile up where answers come faster than refreshes.
            self._heap = [(at, p) for p, at in self._due_at.items()]
            heapq.heapify(self._heap)

    def view(self) -> dict[str, int | None]:
        """The resolved prefixes; a new dict after each change (scrapes keep theirs)."""
        if self._view is None:
            self._view = dict(self._index)
        return self._view
