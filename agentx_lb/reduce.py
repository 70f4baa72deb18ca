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
* A row whose VIP is absent (deleted, or the whole LB empty while a restarted
  VPP's startup-config is still adding VIPs) keeps its offsets for
  `retain_absent_cs`, or until another identity takes its index. When it comes
  back, VPP has re-created the VIP (its LB counters start again at 0): the last
  served values become the offsets, so no column ever goes down.

A reset that grows past the old raw value between two scrapes cannot be seen
in the numbers; a VPP restart is still caught by `vpp_instance`.

Times (`now_cs`, `discontinuity_cs`, `absent_since_cs`) are the caller's event
clock (`agentx_lb.clock.EventClock`: centiseconds on the wall clock's scale),
so a state saved by one agent process keeps its meaning in the next.

`CounterState.revision` counts the changes other than `last_raw` (rows added,
dropped, re-based, stamped): the state file is written when it moves
(`agentx_lb.state.write_due`). A state loaded after an unclean stop
(`unclean`) was saved up to a minute before it: every row's discontinuity
time moves at the first scrape, since continuity can no longer be proven.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from operator import add, attrgetter, itemgetter, le

from agentx_lb.model import (
    COUNTER_COLUMNS,
    LB_COUNTER_NAMES,
    CombinedRow,
    CounterState,
    RawScrape,
    RowState,
    Vip,
    VipCounters,
    VipRow,
)

__all__ = ["DEFAULT_RETAIN_ABSENT_CS", "reduce", "sum_counters"]

_ROUTE = (4, 5)
_INDEX = attrgetter("index")
# How long an absent VIP's offsets are kept (centiseconds): long enough for a
# slow VPP restart (startup-config adding thousands of VIPs).
DEFAULT_RETAIN_ABSENT_CS = 600 * 100


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
    if not rows:
        return [0] * len(indices)
    total = _pick(rows[0], indices)
    for row in rows[1:]:
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


def _raw_values(
    raw: RawScrape, vips: Sequence[Vip]
) -> tuple[list[str], list[int | None], list[tuple[int | None, ...]]]:
    """Per VIP of `vips` (aligned): its prefix, its route's FIB stats_index and
    its six raw values (VipCounters order) summed over threads."""
    indices = [vip.index for vip in vips]
    prefixes = [vip.prefix for vip in vips]
    lb = [_thread_sum(raw.lb_counters.get(name, ()), indices) for name in LB_COUNTER_NAMES]
    stats_index_of = raw.stats_index.get
    route_indices = [stats_index_of(prefix) for prefix in prefixes]
    known = [i for i in route_indices if i is not None]
    packet_rows, octet_rows = _columns(raw.route_to) if known else ([], [])
    packets = dict(zip(known, _thread_sum(packet_rows, known)))
    octets = dict(zip(known, _thread_sum(octet_rows, known)))
    route_packets = [None if si is None else packets[si] for si in route_indices]
    route_octets = [None if si is None else octets[si] for si in route_indices]
    return prefixes, route_indices, list(zip(*lb, route_packets, route_octets, strict=True))


def sum_counters(raw: RawScrape) -> dict[int, VipCounters]:
    """Counters of every VIP in `raw`, keyed by VIP index, summed over threads."""
    _, _, values = _raw_values(raw, raw.vips)
    # The four LB sums are never None (only the route pair may be).
    return {
        vip.index: VipCounters(*v)  # type: ignore[arg-type]  # see above
        for vip, v in zip(raw.vips, values, strict=True)
    }


def reduce(
    raw: RawScrape,
    state: CounterState | None,
    now_cs: int,
    *,
    retain_absent_cs: int = DEFAULT_RETAIN_ABSENT_CS,
) -> tuple[tuple[VipRow, ...], CounterState]:
    """Served rows (removed VIPs dropped, sorted by index) and the next state."""
    vips = sorted((v for v in raw.vips if not v.removed), key=_INDEX)
    prefixes, route_indices, raw_values = _raw_values(raw, vips)
    previous: dict[int, RowState] = {}
    changed = state is None
    if state is not None:
        kept = state.rows
        if state.vpp_instance != raw.vpp_instance:
            # VPP restarted: every counter, seen now or not, starts again at 0.
            kept = tuple(_rebased(r, now_cs) for r in kept)
            changed = True
        elif state.unclean:
            # Saved up to a minute before an unclean stop: what happened since
            # cannot be proven continuous. Offsets stay; the times move.
            kept = tuple(replace(r, discontinuity_cs=now_cs) for r in kept)
            changed = True
        previous = {r.identity[0]: r for r in kept}
    rows: list[VipRow] = []
    new_state: list[RowState] = []
    no_offsets = (0,) * COUNTER_COLUMNS
    for vip, prefix, stats_index, values in zip(vips, prefixes, route_indices, raw_values):
        old = previous.pop(vip.index, None)
        identity = (vip.index, prefix, vip.protocol, vip.port)  # Vip.identity, prefix made once
        if old is None or old.identity != identity:
            row = RowState(identity, no_offsets, values, stats_index, now_cs)
            changed = True
        elif (
            old.absent_since_cs is None
            and stats_index is not None  # then no value is None
            and stats_index == old.route_stats_index
            and None not in old.last_raw
            and all(map(le, old.last_raw, values))  # type: ignore[arg-type]  # no None: see above
        ):
            # The common case: nothing reset, so offsets and time are unchanged.
            disc_cs = old.discontinuity_cs if old.discontinuity_cs <= now_cs else now_cs
            row = RowState(old.identity, old.offsets, values, stats_index, disc_cs)
            changed = changed or disc_cs != old.discontinuity_cs
        else:
            row = _advance(old, values, stats_index, now_cs)
            changed = changed or (
                row.offsets != old.offsets
                or row.discontinuity_cs != old.discontinuity_cs
                or row.route_stats_index != old.route_stats_index
                or old.absent_since_cs is not None
            )
        if row.offsets == no_offsets:
            served = values
        else:
            served = tuple(
                None if v is None else off + v for off, v in zip(row.offsets, values, strict=True)
            )
        # The four LB counters are sums, never None; the route pair may be.
        rows.append(VipRow(vip, VipCounters(*served), row.discontinuity_cs))  # type: ignore[arg-type]  # LB sums: never None
        new_state.append(row)
    # What is left was not listed by VPP this time: keep it a while.
    absent = list(previous.values())
    retained = _still_retained(absent, now_cs, retain_absent_cs)
    if not changed and absent:
        changed = len(retained) != len(absent) or any(
            a is not r for a, r in zip(absent, retained, strict=False)
        )
    new_state.extend(retained)
    revision = 0 if state is None else state.revision + changed
    return tuple(rows), CounterState(raw.vpp_instance, tuple(new_state), revision)


def _rebased(row: RowState, now_cs: int) -> RowState:
    """`row` after a VPP restart: its last values folded into the offsets."""
    offsets = tuple(off + (raw or 0) for off, raw in zip(row.offsets, row.last_raw, strict=True))
    # A new VPP's FIB entries have new stats indexes: no baseline to compare with.
    return RowState(
        row.identity, offsets, (0,) * COUNTER_COLUMNS, None, now_cs, row.absent_since_cs
    )


def _still_retained(absent: Iterable[RowState], now_cs: int, retain_cs: int) -> list[RowState]:
    kept = []
    for row in absent:
        since = row.absent_since_cs
        if since is None or since > now_cs:  # new, or stamped by an earlier process
            since = now_cs
        if now_cs - since < retain_cs:
            kept.append(
                row if since == row.absent_since_cs else replace(row, absent_since_cs=since)
            )
    return kept


def _advance(
    old: RowState,
    values: tuple[int | None, ...],
    stats_index: int | None,
    now_cs: int,
) -> RowState:
    offsets = list(old.offsets)
    last_raw = list(old.last_raw)
    # Back after an absence: VPP re-created the VIP and zeroed its LB counters,
    # whatever they count by now (the FIB entry may have lived on).
    recreated = old.absent_since_cs is not None
    discontinuity = False
    for i, value in enumerate(values):
        before = last_raw[i]
        reset = value is not None and before is not None and value < before
        if i in _ROUTE:
            if stats_index is not None and stats_index != old.route_stats_index:
                reset = reset or old.route_stats_index is not None
        elif recreated:
            reset = True
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
