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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import add, itemgetter
from typing import Any, overload

from agentx_lb.model import RawScrape, VipCounters, VipRow

__all__ = [
    "LB_COUNTER_NAMES",
    "CombinedRow",
    "CounterState",
    "RowState",
    "reduce",
    "sum_counters",
]

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


class CombinedRow(Sequence[tuple[int, int]]):
    """One thread's row of a combined counter, stored as two `array('Q')` columns.

    A Sequence of `(packets, octets)` like vpp_papi's list of StatsTuple, but
    decoded in bulk; `reduce` reads the `packets` / `octets` columns directly.
    """

    __slots__ = ("octets", "packets")

    def __init__(self, packets: Sequence[int], octets: Sequence[int]) -> None:
        if len(packets) != len(octets):
            raise ValueError("packets and octets differ in length")
        self.packets = packets
        self.octets = octets

    def __len__(self) -> int:
        return len(self.packets)

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(index, slice):
            return list(zip(self.packets[index], self.octets[index], strict=True))
        return (self.packets[index], self.octets[index])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.packets, self.octets, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CombinedRow):
            return list(self.packets) == list(other.packets) and list(self.octets) == list(
                other.octets
            )
        if isinstance(other, Sequence):
            return list(self) == [tuple(pair) for pair in other]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CombinedRow({list(self)!r})"


def _pick(row: Sequence[int], indices: list[int]) -> list[int]:
    """`row[i]` for each index; an index beyond a (short) row is 0."""
    if not indices:
        return []
    if max(indices) < len(row):
        if len(indices) == 1:
            return [row[indices[0]]]
        # itemgetter gathers in C: the rows are long (all of VPP's routes).
        return list(itemgetter(*indices)(row))
    n = len(row)
    return [row[i] if i < n else 0 for i in indices]


def _thread_sum(rows: Sequence[Sequence[int]], indices: list[int]) -> list[int]:
    total = [0] * len(indices)
    for row in rows:
        total = list(map(add, total, _pick(row, indices)))
    return total


def _columns(
    rows: Sequence[Sequence[tuple[int, int]]],
) -> tuple[list[Sequence[int]], list[Sequence[int]]]:
    packets: list[Sequence[int]] = []
    octets: list[Sequence[int]] = []
    for row in rows:
        if isinstance(row, CombinedRow):
            packets.append(row.packets)
            octets.append(row.octets)
        else:
            packets.append([pair[0] for pair in row])
            octets.append([pair[1] for pair in row])
    return packets, octets


def _raw_values(raw: RawScrape) -> dict[int, tuple[int | None, ...]]:
    """Per VIP index: the six raw values (VipCounters order), summed over threads."""
    indices = [vip.index for vip in raw.vips]
    lb = [_thread_sum(raw.lb_counters.get(name, ()), indices) for name in LB_COUNTER_NAMES]
    route_indices = [raw.stats_index.get(vip.prefix) for vip in raw.vips]
    known = [i for i in route_indices if i is not None]
    packet_rows, octet_rows = _columns(raw.route_to) if known else ([], [])
    by_stats_index = dict(
        zip(known, zip(_thread_sum(packet_rows, known), _thread_sum(octet_rows, known)))
    )
    unknown: tuple[None, None] = (None, None)
    return {
        index: (a, b, c, d, *(unknown if si is None else by_stats_index[si]))
        for index, a, b, c, d, si in zip(indices, *lb, route_indices, strict=True)
    }


def sum_counters(raw: RawScrape) -> dict[int, VipCounters]:
    """Counters of every VIP in `raw`, keyed by VIP index, summed over threads."""
    return {index: VipCounters(*values) for index, values in _raw_values(raw).items()}


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
    raw_values = _raw_values(raw)
    previous: dict[int, RowState] = {}
    restarted = False
    if state is not None:
        previous = {r.identity[0]: r for r in state.rows}
        restarted = state.vpp_instance != raw.vpp_instance
    rows: list[VipRow] = []
    new_state: list[RowState] = []
    no_offsets = (0,) * _N_FIELDS
    stats_index_of = raw.stats_index.get
    for vip in sorted((v for v in raw.vips if not v.removed), key=lambda v: v.index):
        values = raw_values[vip.index]
        stats_index = stats_index_of(vip.prefix)
        old = previous.get(vip.index)
        identity = vip.identity
        if old is None or old.identity != identity:
            row = RowState(identity, no_offsets, values, stats_index, now_cs)
        elif not restarted and _steady(old, values, stats_index):
            # The common case: nothing reset, so offsets and time are unchanged.
            disc_cs = old.discontinuity_cs if old.discontinuity_cs <= now_cs else now_cs
            row = RowState(identity, old.offsets, values, stats_index, disc_cs)
        else:
            row = _advance(old, values, stats_index, restarted, now_cs)
        if row.offsets == no_offsets:
            served = values
        else:
            served = tuple(
                None if v is None else off + v
                for off, v in zip(row.offsets, values, strict=True)
            )
        counters = VipCounters(
            served[0] or 0, served[1] or 0, served[2] or 0, served[3] or 0, served[4], served[5]
        )
        rows.append(VipRow(vip, counters, row.discontinuity_cs))
        new_state.append(row)
    return tuple(rows), CounterState(raw.vpp_instance, tuple(new_state))


def _steady(old: RowState, values: tuple[int | None, ...], stats_index: int | None) -> bool:
    """True when no column reset and every raw value is known (no None to carry)."""
    if stats_index is None or stats_index != old.route_stats_index:
        return False
    for value, before in zip(values, old.last_raw, strict=True):
        if value is None or before is None or value < before:
            return False
    return True


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
