"""Scrapes for the views: `VppSource.read()` + `reduce()`, as `agentx-lb dump` does.

`Scraper.scrape()` reads VPP once and reduces it with the counter state of the
previous scrape, so a reset inside VPP between two scrapes is absorbed (the
counters stay monotonic) and shows as a moved discontinuity time. Each result
carries the monotonic time at which the counters were read, for rates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentx_lb.model import RawScrape, VipRow

__all__ = ["Scrape", "Scraper"]


class Source(Protocol):
    def read(self) -> RawScrape: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Scrape:
    """One read of VPP, reduced."""

    raw: RawScrape
    rows: tuple[VipRow, ...]
    at_s: float  # monotonic time, just after the counters were read


class Scraper:
    """Successive scrapes of one source; raises what `source.read()` raises (SourceError)."""

    def __init__(
        self,
        source: Source,
        *,
        clock: Callable[[], float] = time.monotonic,
        reduce: Callable[[RawScrape, Any, int], tuple[Sequence[VipRow], Any]] | None = None,
    ) -> None:
        if reduce is None:
            from agentx_lb.reduce import reduce as reduce_

            reduce = reduce_
        self._source = source
        self._clock = clock
        self._reduce = reduce
        self._state: Any = None
        self._start = clock()

    def scrape(self) -> Scrape:
        raw = self._source.read()
        at_s = self._clock()
        now_cs = int((at_s - self._start) * 100)
        rows, self._state = self._reduce(raw, self._state, now_cs)
        # The views read every row, more than once: made once here.
        return Scrape(raw=raw, rows=tuple(rows), at_s=at_s)

    def close(self) -> None:
        self._source.close()
