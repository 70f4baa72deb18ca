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

`CounterState.revision` counts the scrapes that moved an offset (a reset
absorbed, a VPP restart, a VIP back after an absence): the state file is
written at once when it moves (`agentx_lb.state.write_due`); anything else
(rows added or dropped, times stamped, the raw baselines) waits for the
periodic write, since losing it cannot make a served counter go down. A
state loaded after an unclean stop (`unclean`) was saved up to a minute
before it: every row's discontinuity time moves at the first scrape, since
continuity can no longer be proven.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import accumulate, islice
from operator import add, attrgetter, itemgetter, le, lt

from agentx_lb.model import (
    COUNTER_COLUMNS,
    LB_COUNTER_NAMES,
    CombinedRow,
    CounterState,
    Frame,
    RawScrape,
    RowState,
    RowStates,
    Vip,
    VipCounters,
)

__all__ = ["DEFAULT_RETAIN_ABSENT_CS", "reduce", "sum_counters"]

_ROUTE = (4, 5)
_INDEX = attrgetter("index")
_REMOVED = attrgetter("removed")
# How long an absent VIP's offsets are kept (centiseconds): long enough for a
# slow VPP restart (startup-config adding thousands of VIPs).
DEFAULT_RETAIN_ABSENT_CS = 600 * 100


def _pick(row: Sequence[int], indices: list[int], dense: bool = False) -> Sequence[int]:
    """`row[i]` for each index; an index beyond a (short) row is 0. `dense`:
    the indices are `range(indices[0], indices[-1] + 1)`."""
    if not indices:
        return []
    if dense and indices[-1] < len(row):
        # VPP's pool indexes, usually dense (and sorted by reduce): one slice.
        return row[indices[0] : indices[-1] + 1]
    if max(indices) < len(row):
        if len(indices) == 1:
            return [row[indices[0]]]
        # itemgetter gathers in C: the rows are long (all of VPP's routes).
        return list(itemgetter(*indices)(row))
    n = len(row)
    return [row[i] if i < n else 0 for i in indices]


def _thread_sum(
    rows: Sequence[Sequence[int]], indices: list[int], dense: bool = False
) -> list[int]:
    total: list[int] | None = None
    for row in rows:
        picked = _pick(row, indices, dense)
        if not any(picked):
            continue  # no traffic on this thread (VPP's main thread, usually): nothing to add
        total = list(picked) if total is None else list(map(add, total, picked))
    return [0] * len(indices) if total is None else total


def _is_dense(indices: list[int]) -> bool:
    """Are `indices` exactly `range(indices[0], indices[-1] + 1)`?"""
    return bool(indices) and (
        indices[0] >= 0
        and indices[-1] - indices[0] == len(indices) - 1
        and all(map(lt, indices, islice(indices, 1, None)))
    )


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


def _raw_columns(
    raw: RawScrape, vips: Sequence[Vip]
) -> tuple[list[int | None], list[list[int | None]]]:
    """Per VIP of `vips` (aligned): its route's FIB stats_index, and its six raw
    values (VipCounters order) summed over threads, as six columns."""
    indices = [vip.index for vip in vips]
    dense = _is_dense(indices)
    columns: list[list[int | None]] = [
        _thread_sum(raw.lb_counters.get(name, ()), indices, dense)  # type: ignore[misc]  # int is int | None
        for name in LB_COUNTER_NAMES
    ]
    route_indices = list(map(raw.stats_index.get, map(_PREFIX, vips)))
    known = [i for i in route_indices if i is not None]
    packet_rows, octet_rows = _columns(raw.route_to) if known else ([], [])
    packets = _thread_sum(packet_rows, known)
    octets = _thread_sum(octet_rows, known)
    if len(known) == len(route_indices):
        columns += [packets, octets]  # type: ignore[list-item]  # int is int | None
    else:
        by_index = dict(zip(known, zip(packets, octets)))
        pairs = [by_index.get(si) if si is not None else None for si in route_indices]
        columns.append([None if p is None else p[0] for p in pairs])
        columns.append([None if p is None else p[1] for p in pairs])
    return route_indices, columns


def sum_counters(raw: RawScrape) -> dict[int, VipCounters]:
    """Counters of every VIP in `raw`, keyed by VIP index, summed over threads."""
    _, columns = _raw_columns(raw, raw.vips)
    values = zip(*columns)
    # The four LB sums are never None (only the route pair may be).
    return {vip.index: VipCounters(*v) for vip, v in zip(raw.vips, values, strict=True)}


def _served_vips(raw: RawScrape) -> tuple[tuple[Vip, ...], Sequence[int]]:
    """The VIPs served (removed ones dropped, sorted by index) and their backends'
    flow counts, back to back."""
    vips = raw.vips
    indices = [v.index for v in vips]
    if all(map(lt, indices, indices[1:])) and not any(map(_REMOVED, vips)):
        # VPP's order: by pool index; nothing to drop.
        if raw.flows is None:
            return vips, [b.flows for v in vips for b in v.backends]
        return vips, raw.flows
    served = tuple(sorted((v for v in vips if not v.removed), key=_INDEX))
    if raw.flows is None:
        return served, [b.flows for v in served for b in v.backends]
    starts = dict(zip(indices, accumulate((len(v.backends) for v in vips), initial=0)))
    flows: list[int] = []
    for v in served:
        at = starts[v.index]
        flows.extend(raw.flows[at : at + len(v.backends)])
    return served, flows


def reduce(
    raw: RawScrape,
    state: CounterState | None,
    now_cs: int,
    *,
    retain_absent_cs: int = DEFAULT_RETAIN_ABSENT_CS,
) -> tuple[Frame, CounterState]:
    """Served rows (removed VIPs dropped, sorted by index) and the next state."""
    vips, flows = _served_vips(raw)
    route_indices, columns = _raw_columns(raw, vips)
    if (
        state is not None
        and state.vpp_instance == raw.vpp_instance
        and not state.unclean
        and (fast := _unchanged_rows(state.rows, vips, route_indices, columns, now_cs))
    ):
        fast_served, states = fast
        frame = Frame(vips, fast_served, states.discontinuity_cs, flows)
        return frame, CounterState(raw.vpp_instance, states, state.revision)
    raw_values = list(zip(*columns))
    previous: dict[int, RowState] = {}
    rebased = False  # an offset moved: the state file must follow at once
    if state is not None:
        kept = state.rows
        if state.vpp_instance != raw.vpp_instance:
            # VPP restarted: every counter, seen now or not, starts again at 0.
            kept = tuple(_rebased(r, now_cs) for r in kept)
            rebased = bool(kept)
        elif state.unclean:
            # Saved up to a minute before an unclean stop: what happened since
            # cannot be proven continuous. Offsets stay; the times move.
            kept = tuple(r._replace(discontinuity_cs=now_cs) for r in kept)
        previous = {r.identity[0]: r for r in kept}
    served_rows: list[tuple[int | None, ...]] = []
    discontinuities: list[int] = []
    new_state: list[RowState] = []
    no_offsets = (0,) * COUNTER_COLUMNS
    for vip, stats_index, values in zip(vips, route_indices, raw_values):
        old = previous.pop(vip.index, None)
        identity = vip.identity
        if old is None or old.identity != identity:
            row = RowState(identity, no_offsets, values, stats_index, now_cs)
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
        else:
            row = _advance(old, values, stats_index, now_cs)
            rebased = rebased or row.offsets != old.offsets
        if row.offsets == no_offsets:
            served = values
        else:
            served = tuple(
                None if v is None else off + v for off, v in zip(row.offsets, values, strict=True)
            )
        served_rows.append(served)
        discontinuities.append(row.discontinuity_cs)
        new_state.append(row)
    # What is left was not listed by VPP this time: keep it a while.
    retained = _still_retained(previous.values(), now_cs, retain_absent_cs)
    revision = 0 if state is None else state.revision + rebased
    served_columns = list(zip(*served_rows)) if served_rows else [()] * COUNTER_COLUMNS
    frame = Frame(vips, served_columns, discontinuities, flows)
    rows: Sequence[RowState]
    if retained or not new_state:
        rows = (*new_state, *retained)
    else:
        # Every row listed: by column, so the next scrape can go a column at a time.
        rows = RowStates(
            vips,
            list(map(_OFFSETS, new_state)),
            list(zip(*map(_LAST_RAW, new_state))),
            list(map(_ROUTE_INDEX, new_state)),
            discontinuities,
        )
    return frame, CounterState(raw.vpp_instance, rows, revision)


def _unchanged_rows(
    rows: Sequence[RowState],
    vips: Sequence[Vip],
    route_indices: list[int | None],
    columns: list[list[int | None]],
    now_cs: int,
) -> tuple[list[Sequence[int | None]], RowStates] | None:
    """The common scrape, done a column at a time: the same rows as last time,
    every VIP listed, every route known at the same FIB entry, no value gone
    down, no time from a later clock. Then nothing resets: the offsets and
    times stay and only the raw values move. (served columns, next row
    states), or None when any of that does not hold (then `reduce` goes row
    by row). After the first such scrape the rows are a `RowStates` and the
    next ones make no object per row."""
    if not rows or len(rows) != len(vips) or None in route_indices:
        return None
    if isinstance(rows, RowStates):
        same = rows.vips == vips or list(map(_IDENTITY, rows.vips)) == list(map(_IDENTITY, vips))
        if not same or rows.route_indices != route_indices or rows.latest_cs > now_cs:
            return None
        lasts: Sequence[Sequence[int | None]] = rows.last_raw
        states = rows.moved(columns)
    else:
        if list(map(_IDENTITY, rows)) != list(map(_IDENTITY, vips)):
            return None
        if list(map(_ROUTE_INDEX, rows)) != route_indices:
            return None
        if list(map(_ABSENT_SINCE, rows)).count(None) != len(rows):
            return None
        discontinuities = list(map(_DISCONTINUITY, rows))
        if max(discontinuities) > now_cs:
            return None
        lasts = list(zip(*map(_LAST_RAW, rows)))
        states = RowStates(vips, list(map(_OFFSETS, rows)), columns, route_indices, discontinuities)
    for last, now in zip(lasts, columns, strict=True):
        # A None in last: unknown since a reset; an int in now (no None: routes known).
        if None in last or not all(map(le, last, now)):  # type: ignore[arg-type]  # no None (checked)
            return None
    if states.zero_offsets:
        return list(columns), states
    served: list[Sequence[int | None]] = [
        list(map(add, off, now)) for off, now in zip(states.offset_columns, columns, strict=True)
    ]
    return served, states


_NO_OFFSETS = (0,) * COUNTER_COLUMNS
_IDENTITY = attrgetter("identity")
_ROUTE_INDEX = attrgetter("route_stats_index")
_ABSENT_SINCE = attrgetter("absent_since_cs")
_LAST_RAW = attrgetter("last_raw")
_DISCONTINUITY = attrgetter("discontinuity_cs")
_OFFSETS = attrgetter("offsets")
_PREFIX = attrgetter("prefix")


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
                row if since == row.absent_since_cs else row._replace(absent_since_cs=since)
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
