"""RawScrape -> served VIP rows: sum threads, absorb resets, track discontinuities.

Pure. A row's identity is `Vip.identity` (index, prefix, protocol, port).
While a row keeps its identity, each Counter64 column never goes backwards:

* Served value = offset + VPP's raw value (summed over every thread).
* A raw value that dropped (the VIP was re-created at the same index, the FIB
  entry was re-created) or a new `vpp_instance` (VPP restarted) is a reset: the
  last served value becomes that column's offset and the row's
  `discontinuity_cs` becomes now. Only the columns that reset are re-based, so
  a route counter shared with another, untouched VIP does not jump.
* A FIB `stats_index` that changed for the prefix is a reset of the two route
  columns (a different counter entry).
* A new identity at an index is a new row: offsets 0, discontinuity now.
* Route columns are None when the prefix has no exact FIB entry (unknown, never
  0); their offset and baseline are kept until the route is back.

A reset that grows past the old raw value between two scrapes cannot be seen
in the numbers; a VPP restart is still caught by `vpp_instance`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agentx_lb.model import RawScrape, VipCounters, VipRow

__all__ = ["LB_COUNTER_NAMES", "CounterState", "RowState", "reduce", "sum_counters"]

# VPP's lb simple counters (lb.h `lb_foreach_vip_counter`), in VipCounters order.
LB_COUNTER_NAMES: tuple[str, str, str, str] = (
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
)
_N_FIELDS = 6  # the four LB counters, route packets, route octets
_ROUTE = (4, 5)
_STATE_VERSION = 1


def _column_sum(rows: list[list[int]], index: int) -> int:
    # A thread's vector may still be shorter than the new VIP index: that is 0.
    return sum(row[index] for row in rows if index < len(row))


def sum_counters(raw: RawScrape) -> dict[int, VipCounters]:
    """Counters of every VIP in `raw`, keyed by VIP index, summed over threads."""
    result: dict[int, VipCounters] = {}
    for vip in raw.vips:
        lb = [_column_sum(raw.lb_counters.get(name, []), vip.index) for name in LB_COUNTER_NAMES]
        stats_index = raw.stats_index.get(vip.prefix)
        packets: int | None = None
        octets: int | None = None
        if stats_index is not None:
            packets = sum(r[stats_index][0] for r in raw.route_to if stats_index < len(r))
            octets = sum(r[stats_index][1] for r in raw.route_to if stats_index < len(r))
        result[vip.index] = VipCounters(lb[0], lb[1], lb[2], lb[3], packets, octets)
    return result


def _fields(c: VipCounters) -> tuple[int | None, ...]:
    return (
        c.next_packets,
        c.first_packets,
        c.untracked_packets,
        c.no_server_packets,
        c.route_packets,
        c.route_octets,
    )


@dataclass(frozen=True, slots=True)
class RowState:
    """What reduce remembers about one row between scrapes."""

    identity: tuple[int, str, int, int]
    offsets: tuple[int, ...]  # per column, added to VPP's raw value
    last_raw: tuple[int | None, ...]  # per column; None: never known since the last reset
    route_stats_index: int | None
    discontinuity_cs: int


@dataclass(frozen=True, slots=True)
class CounterState:
    """Offsets per row identity plus the VPP instance they belong to."""

    vpp_instance: str
    rows: tuple[RowState, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": _STATE_VERSION,
                "vpp_instance": self.vpp_instance,
                "rows": [
                    {
                        "identity": list(r.identity),
                        "offsets": list(r.offsets),
                        "last_raw": list(r.last_raw),
                        "route_stats_index": r.route_stats_index,
                        "discontinuity_cs": r.discontinuity_cs,
                    }
                    for r in self.rows
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> CounterState:
        """Inverse of `to_json`; ValueError on anything else."""
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"counter state is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("version") != _STATE_VERSION:
            raise ValueError("counter state has an unknown version")
        instance = doc.get("vpp_instance")
        rows = doc.get("rows")
        if not isinstance(instance, str) or not isinstance(rows, list):
            raise ValueError("counter state lacks vpp_instance or rows")
        return cls(instance, tuple(_row_from_json(r) for r in rows))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _row_from_json(doc: Any) -> RowState:
    if not isinstance(doc, dict):
        raise ValueError("counter state row is not an object")
    identity = doc.get("identity")
    offsets = doc.get("offsets")
    last_raw = doc.get("last_raw")
    stats_index = doc.get("route_stats_index")
    disc = doc.get("discontinuity_cs")
    ok = (
        isinstance(identity, list)
        and len(identity) == 4
        and _is_int(identity[0])
        and isinstance(identity[1], str)
        and _is_int(identity[2])
        and _is_int(identity[3])
        and isinstance(offsets, list)
        and len(offsets) == _N_FIELDS
        and all(_is_int(v) and v >= 0 for v in offsets)
        and isinstance(last_raw, list)
        and len(last_raw) == _N_FIELDS
        and all(v is None or (_is_int(v) and v >= 0) for v in last_raw)
        and (stats_index is None or (_is_int(stats_index) and stats_index >= 0))
        and _is_int(disc)
        and disc >= 0
    )
    if not ok:
        raise ValueError(f"malformed counter state row: {doc!r:.200}")
    assert isinstance(identity, list) and isinstance(offsets, list)
    assert isinstance(last_raw, list) and isinstance(disc, int)
    return RowState(
        identity=(identity[0], identity[1], identity[2], identity[3]),
        offsets=tuple(offsets),
        last_raw=tuple(last_raw),
        route_stats_index=stats_index,
        discontinuity_cs=disc,
    )


def reduce(
    raw: RawScrape, state: CounterState | None, now_cs: int
) -> tuple[tuple[VipRow, ...], CounterState]:
    """Served rows (removed VIPs dropped, sorted by index) and the next state."""
    raw_counters = sum_counters(raw)
    previous: dict[int, RowState] = {}
    restarted = False
    if state is not None:
        previous = {r.identity[0]: r for r in state.rows}
        restarted = state.vpp_instance != raw.vpp_instance
    rows: list[VipRow] = []
    new_state: list[RowState] = []
    for vip in sorted((v for v in raw.vips if not v.removed), key=lambda v: v.index):
        values = _fields(raw_counters[vip.index])
        stats_index = raw.stats_index.get(vip.prefix)
        old = previous.get(vip.index)
        if old is None or old.identity != vip.identity:
            row = RowState(vip.identity, (0,) * _N_FIELDS, values, stats_index, now_cs)
        else:
            row = _advance(old, values, stats_index, restarted, now_cs)
        served = tuple(
            None if v is None else off + v for off, v in zip(row.offsets, values, strict=True)
        )
        counters = VipCounters(
            served[0] or 0, served[1] or 0, served[2] or 0, served[3] or 0, served[4], served[5]
        )
        rows.append(VipRow(vip, counters, row.discontinuity_cs))
        new_state.append(row)
    return tuple(rows), CounterState(raw.vpp_instance, tuple(new_state))


def _advance(
    old: RowState,
    values: tuple[int | None, ...],
    stats_index: int | None,
    restarted: bool,
    now_cs: int,
) -> RowState:
    offsets = list(old.offsets)
    last_raw = list(old.last_raw)
    discontinuity = False
    for i, value in enumerate(values):
        before = last_raw[i]
        reset = restarted or (value is not None and before is not None and value < before)
        if i in _ROUTE and stats_index is not None and stats_index != old.route_stats_index:
            reset = reset or old.route_stats_index is not None
        if reset:
            # The last served value becomes the offset; the baseline restarts at 0.
            offsets[i] += before or 0
            last_raw[i] = 0
            discontinuity = True
        if value is not None:
            last_raw[i] = value
    route_index = stats_index if stats_index is not None else old.route_stats_index
    # A state loaded from a previous agent process may carry a later uptime.
    disc_cs = now_cs if discontinuity else min(old.discontinuity_cs, now_cs)
    return RowState(old.identity, tuple(offsets), tuple(last_raw), route_index, disc_cs)
