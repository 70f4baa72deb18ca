"""Per-VIP counter rates between two scrapes: pure.

A rate is (counter now - counter before) / the real time between the two
reads (monotonic). The counters are reduce's: a reset inside VPP is already
absorbed, and it moves the row's discontinuity time. So a row whose identity
or discontinuity time changed between the two scrapes (VPP restarted, the VIP
was re-created) has no rate for that interval: it is shown as a reset, never
as a negative or huge number. A row that was not there before is new (no
rate yet); an unknown route counter has no rate.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from agentx_lb.model import VipRow

__all__ = ["COUNTERS", "RowState", "VipRate", "rates"]

# VipCounters fields, in the order the rates are kept.
COUNTERS: tuple[str, ...] = (
    "first_packets",
    "no_server_packets",
    "next_packets",
    "untracked_packets",
    "route_packets",
    "route_octets",
)


class RowState(enum.Enum):
    OK = "ok"
    NEW = "new"  # no previous scrape of this row
    RESET = "reset"  # a discontinuity between the two scrapes


@dataclass(frozen=True, slots=True)
class VipRate:
    """One VIP of the newer scrape with its per-second rates (None: no rate)."""

    row: VipRow
    state: RowState
    per_s: tuple[float | None, ...]  # in COUNTERS order; all None unless state is OK

    def rate(self, counter: str) -> float | None:
        return self.per_s[COUNTERS.index(counter)]


_NONE = (None,) * len(COUNTERS)


def rates(
    before: Sequence[VipRow] | None, before_s: float, now: Sequence[VipRow], now_s: float
) -> list[VipRate]:
    """Rates of each row of `now` against `before` (read at `before_s`; seconds)."""
    elapsed = now_s - before_s
    old = {} if before is None or elapsed <= 0 else {r.vip.index: r for r in before}
    out = []
    for row in now:
        prev = old.get(row.vip.index)
        if prev is None:
            out.append(VipRate(row, RowState.NEW, _NONE))
            continue
        if prev.vip.identity != row.vip.identity or prev.discontinuity_cs != row.discontinuity_cs:
            out.append(VipRate(row, RowState.RESET, _NONE))
            continue
        per_s: list[float | None] = []
        went_back = False
        for name in COUNTERS:
            a, b = getattr(prev.counters, name), getattr(row.counters, name)
            if a is None or b is None:
                per_s.append(None)
            elif b < a:  # cannot happen with reduce's counters; never show it as a rate
                went_back = True
                break
            else:
                per_s.append((b - a) / elapsed)
        if went_back:
            out.append(VipRate(row, RowState.RESET, _NONE))
        else:
            out.append(VipRate(row, RowState.OK, tuple(per_s)))
    return out
