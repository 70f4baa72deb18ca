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
        self._view: dict[str, int | None] | None = {}

    def use_instance(self, instance: str) -> None:
        """Forget everything when VPP is another process than the entries came from."""
        if instance != self._instance:
            self._instance = instance
            self._index.clear()
            self._due_at.clear()
            self._view = None

    def due(self, prefixes: Iterable[str], now: float) -> list[str]:
        """Prefixes to look up now: unknown ones first, then those due a refresh.

        Entries of prefixes no VIP uses any more are dropped.
        """
        wanted = set(prefixes)
        for gone in self._index.keys() - wanted:
            del self._index[gone]
            del self._due_at[gone]
            self._view = None
        new = sorted(wanted - self._index.keys())
        stale = [p for p, at in self._due_at.items() if at <= now]
        return new + stale

    def resolved(self, answers: Mapping[str, int | None], now: float) -> None:
        """Record lookup answers; a prefix missing from `answers` is left as it was."""
        index = self._index
        for prefix, stats_index in answers.items():
            if prefix not in index or index[prefix] != stats_index:
                self._view = None
            index[prefix] = stats_index
            self._due_at[prefix] = now + self.refresh_s * (0.5 + 0.5 * self._rng.random())

    def view(self) -> dict[str, int | None]:
        """The resolved prefixes; a new dict after each change (scrapes keep theirs)."""
        if self._view is None:
            self._view = dict(self._index)
        return self._view
