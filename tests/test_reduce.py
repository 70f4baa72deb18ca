"""Tests for agentx_lb.reduce: thread sums, monotonic Counter64, discontinuities, state JSON."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentx_lb.model import (
    LB_COUNTER_NAMES,
    CounterState,
    Encap,
    RawScrape,
    Vip,
    VipCounters,
    VipRow,
)
from agentx_lb.reduce import _is_dense, _thread_sum, reduce, sum_counters
from agentx_lb.state import from_json, to_json

V1 = Vip(1, "192.0.2.1", 32, 4, Encap.GRE4, protocol=6, port=80)
V2 = Vip(2, "192.0.2.1", 32, 4, Encap.GRE4, protocol=17, port=53)  # same prefix as V1
V3 = Vip(3, "2001:db8::1", 128, 6, Encap.GRE6, protocol=6, port=443)


def _raw(
    vips: tuple[Vip, ...],
    lb: dict[str, list[list[int]]] | None = None,
    route: list[list[tuple[int, int]]] | None = None,
    stats_index: Mapping[str, int | None] | None = None,
    instance: str = "i1",
) -> RawScrape:
    return RawScrape(
        vips=vips,
        problems=(),
        lb_counters=lb or {},
        route_to=route or [],
        stats_index=stats_index or {},
        vpp_instance=instance,
    )


def _lb(n: int, value_at: dict[int, int], threads: int = 3) -> dict[str, list[list[int]]]:
    """Every LB counter: `value_at[index]` split over the threads (thread 0 gets the rest)."""
    rows = []
    for t in range(threads):
        row = [0] * n
        for idx, value in value_at.items():
            row[idx] = value // threads + (value % threads if t == 0 else 0)
        rows.append(row)
    return {name: [list(r) for r in rows] for name in LB_COUNTER_NAMES}


def test_sum_counters_sums_every_thread_and_tolerates_short_rows() -> None:
    lb = {
        LB_COUNTER_NAMES[0]: [[0, 1], [0, 10, 5], [0, 100, 7, 9]],
        LB_COUNTER_NAMES[1]: [[0, 2, 0, 3]],
        # the other two absent: treated as zero
    }
    route = [[(0, 0), (1, 100)], [(0, 0), (2, 200), (5, 500)], [(0, 0)]]
    raw = _raw((V1, V3), lb, route, {"192.0.2.1/32": 1, "2001:db8::1/128": 2})
    assert sum_counters(raw) == {
        1: VipCounters(111, 2, 0, 0, 3, 300),
        3: VipCounters(9, 3, 0, 0, 5, 500),
    }


def test_sum_counters_absent_counters_are_zero_and_missing_route_is_none() -> None:
    raw = _raw((V1, V3), stats_index={"192.0.2.1/32": 4, "2001:db8::1/128": None})
    assert sum_counters(raw) == {
        1: VipCounters(0, 0, 0, 0, 0, 0),  # route resolved, vector shorter: 0
        3: VipCounters(0, 0, 0, 0, None, None),  # no exact FIB entry: unknown
    }


def test_two_vips_on_one_prefix_share_route_counters() -> None:
    raw = _raw((V1, V2), route=[[(0, 0), (7, 700)]], stats_index={"192.0.2.1/32": 1})
    sums = sum_counters(raw)
    assert (sums[1].route_packets, sums[1].route_octets) == (7, 700)
    assert (sums[2].route_packets, sums[2].route_octets) == (7, 700)


def _served(rows: tuple[VipRow, ...], index: int) -> VipCounters:
    return next(r.counters for r in rows if r.vip.index == index)


def test_first_scrape_serves_raw_values_with_discontinuity_now() -> None:
    raw = _raw((V3, V1), _lb(4, {1: 30, 3: 9}), [[(0, 0), (5, 50)]], {"192.0.2.1/32": 1})
    rows, state = reduce(raw, None, now_cs=1234)
    assert [r.vip.index for r in rows] == [1, 3]  # sorted by index
    assert rows[0].counters == VipCounters(30, 30, 30, 30, 5, 50)
    assert rows[1].counters == VipCounters(9, 9, 9, 9, None, None)
    assert [r.discontinuity_cs for r in rows] == [1234, 1234]
    assert state.vpp_instance == "i1"


def test_removed_vips_are_dropped() -> None:
    removed = Vip(5, "192.0.2.5", 32, 4, Encap.GRE4, removed=True)
    rows, state = reduce(_raw((V1, removed), _lb(6, {})), None, 0)
    assert [r.vip.index for r in rows] == [1]
    assert [r.identity[0] for r in state.rows] == [1]


def test_growth_keeps_discontinuity() -> None:
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 10})), None, 100)
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 25})), s1, 200)
    assert rows[0].counters.next_packets == 25
    assert rows[0].discontinuity_cs == 100


def test_reset_is_absorbed_and_moves_discontinuity() -> None:
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 100})), None, 100)
    rows2, s2 = reduce(_raw((V1,), _lb(2, {1: 4})), s1, 200)
    assert rows2[0].counters.next_packets == 104
    assert rows2[0].discontinuity_cs == 200
    rows3, _ = reduce(_raw((V1,), _lb(2, {1: 10})), s2, 300)
    assert rows3[0].counters.next_packets == 110
    assert rows3[0].discontinuity_cs == 200


def test_only_the_columns_that_reset_are_rebased() -> None:
    si = {"192.0.2.1/32": 1}
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 100}), [[(0, 0), (50, 5000)]], si), None, 1)
    # VIP re-created with the same identity: LB counters restart, the shared route does not
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 3}), [[(0, 0), (60, 6000)]], si), s1, 2)
    assert rows[0].counters == VipCounters(103, 103, 103, 103, 60, 6000)
    assert rows[0].discontinuity_cs == 2


def test_new_vpp_instance_rebases_everything_even_if_values_grew() -> None:
    si = {"192.0.2.1/32": 1}
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 10}), [[(0, 0), (1, 100)]], si), None, 1)
    raw2 = _raw((V1,), _lb(2, {1: 20}), [[(0, 0), (2, 200)]], si, instance="i2")
    rows, s2 = reduce(raw2, s1, 5)
    assert rows[0].counters == VipCounters(30, 30, 30, 30, 3, 300)
    assert rows[0].discontinuity_cs == 5
    assert s2.vpp_instance == "i2"


def test_new_identity_at_an_index_is_a_new_row() -> None:
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 100})), None, 1)
    other = Vip(1, "192.0.2.9", 32, 4, Encap.GRE4, protocol=6, port=80)
    rows, _ = reduce(_raw((other,), _lb(2, {1: 3})), s1, 9)
    assert rows[0].counters.next_packets == 3  # nothing carried across identities
    assert rows[0].discontinuity_cs == 9


def test_route_unknown_then_back_keeps_offsets() -> None:
    si = {"192.0.2.1/32": 1}
    lb = _lb(2, {})
    _, s1 = reduce(_raw((V1,), lb, [[(0, 0), (10, 1000)]], si), None, 1)
    rows2, s2 = reduce(_raw((V1,), lb, [[(0, 0), (12, 1200)]], {"192.0.2.1/32": None}), s1, 2)
    assert (rows2[0].counters.route_packets, rows2[0].counters.route_octets) == (None, None)
    rows3, _ = reduce(_raw((V1,), lb, [[(0, 0), (15, 1500)]], si), s2, 3)
    assert rows3[0].counters.route_packets == 15
    assert rows3[0].discontinuity_cs == 1


def test_route_stats_index_change_rebases_route_columns_only() -> None:
    route = [[(0, 0), (40, 4000), (2, 200)]]
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 5}), route, {"192.0.2.1/32": 1}), None, 1)
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 6}), route, {"192.0.2.1/32": 2}), s1, 7)
    assert rows[0].counters == VipCounters(6, 6, 6, 6, 42, 4200)
    assert rows[0].discontinuity_cs == 7


def test_vpp_restart_with_an_empty_lb_window_keeps_every_counter() -> None:
    # VPP's API answers before its startup-config has re-created the VIPs.
    si = {"192.0.2.1/32": 1}
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 159}), [[(0, 0), (7, 700)]], si), None, 100)
    rows, s2 = reduce(_raw((), instance="i2"), s1, 200)
    assert rows == ()
    assert [r.identity for r in s2.rows] == [V1.identity]  # kept while absent
    rows, s3 = reduce(_raw((V1,), _lb(2, {1: 0}), [[(0, 0), (0, 0)]], si, "i2"), s2, 300)
    assert rows[0].counters == VipCounters(159, 159, 159, 159, 7, 700)
    assert rows[0].discontinuity_cs == 300
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 5}), [[(0, 0), (2, 200)]], si, "i2"), s3, 400)
    assert rows[0].counters == VipCounters(164, 164, 164, 164, 9, 900)
    assert rows[0].discontinuity_cs == 300


def test_vip_back_after_an_absence_is_rebased_even_if_its_counters_grew() -> None:
    # Deleted and re-added between two scrapes of one VPP: VPP zeroed its LB
    # counters, and they may be past the old value by the next scrape.
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 10})), None, 1)
    _, s2 = reduce(_raw(()), s1, 2)
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 50})), s2, 3)
    assert rows[0].counters.next_packets == 60
    assert rows[0].discontinuity_cs == 3


def test_absent_vip_is_forgotten_after_the_retention_time() -> None:
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 10})), None, 0)
    _, s2 = reduce(_raw(()), s1, 100, retain_absent_cs=500)
    _, s3 = reduce(_raw(()), s2, 599, retain_absent_cs=500)
    assert [r.absent_since_cs for r in s3.rows] == [100]
    _, s4 = reduce(_raw(()), s3, 600, retain_absent_cs=500)
    assert s4.rows == ()
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 3})), s4, 700, retain_absent_cs=500)
    assert rows[0].counters.next_packets == 3


def test_absent_vip_is_forgotten_once_another_identity_takes_its_index() -> None:
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 100})), None, 1)
    other = Vip(1, "192.0.2.9", 32, 4, Encap.GRE4, protocol=6, port=80)
    _, s2 = reduce(_raw((other,), _lb(2, {1: 3})), s1, 2)
    _, s3 = reduce(_raw(()), s2, 3)
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 4})), s3, 4)
    assert rows[0].counters.next_packets == 4  # V1's old offsets went with its index


def test_absence_stamped_by_an_earlier_process_is_clamped() -> None:
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 10})), None, 0)
    _, s2 = reduce(_raw(()), s1, 90_000)
    _, s3 = reduce(_raw(()), s2, 50)  # a new agent process: its clock starts again
    assert [r.absent_since_cs for r in s3.rows] == [50]


def test_loaded_state_from_a_later_uptime_is_clamped() -> None:
    _, s1 = reduce(_raw((V1,), _lb(2, {1: 5})), None, 10_000)
    rows, _ = reduce(_raw((V1,), _lb(2, {1: 6})), s1, 50)
    assert rows[0].discontinuity_cs == 50


def test_state_json_round_trip() -> None:
    si = {"192.0.2.1/32": 1, "2001:db8::1/128": None}
    raw = _raw((V1, V3), _lb(4, {1: 9, 3: 4}), [[(0, 0), (1, 2)]], si)
    _, s1 = reduce(raw, None, 1)
    _, s2 = reduce(_raw((V1, V3), _lb(4, {1: 1}), [[(0, 0), (1, 2)]], si), s1, 2)
    assert from_json(to_json(s2)) == s2
    assert s2.rows[0].offsets[0] == 9
    _, s3 = reduce(_raw((V3,), _lb(4, {3: 5}), [[(0, 0), (1, 2)]], si), s2, 3)
    assert [r.absent_since_cs for r in s3.rows] == [None, 3]
    assert from_json(to_json(s3)) == s3


def test_state_of_an_earlier_version_without_absence_loads() -> None:
    text = (
        '{"version": 1, "vpp_instance": "x", "rows": [{"identity": [1, "a", 6, 80],'
        ' "offsets": [0,0,0,0,0,0], "last_raw": [1,2,3,4,null,null],'
        ' "route_stats_index": null, "discontinuity_cs": 5}]}'
    )
    (row,) = from_json(text).rows
    assert row.absent_since_cs is None
    assert row.last_raw == (1, 2, 3, 4, None, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "[]",
        '{"version": 99, "vpp_instance": "x", "rows": []}',
        '{"version": 1, "vpp_instance": 3, "rows": []}',
        '{"version": 1, "vpp_instance": "x", "rows": [1]}',
        '{"version": 1, "vpp_instance": "x", "rows": [{"identity": [1, "a", 6]}]}',
        '{"version": 1, "vpp_instance": "x", "rows": [{"identity": [1, "a", 6, 80],'
        ' "offsets": [0,0,0,0,0,-1], "last_raw": [0,0,0,0,null,null],'
        ' "route_stats_index": null, "discontinuity_cs": 0}]}',
        '{"version": 1, "vpp_instance": "x", "rows": [{"identity": [1, "a", 6, 80],'
        ' "offsets": [0,0,0,0,0,0], "last_raw": [0,0,0,0,null,true],'
        ' "route_stats_index": null, "discontinuity_cs": 0}]}',
        '{"version": 1, "vpp_instance": "x", "rows": [{"identity": [1, "a", 6, 80],'
        ' "offsets": [0,0,0,0,0,0], "last_raw": [0,0,0,0,null,null],'
        ' "route_stats_index": null, "discontinuity_cs": 0, "absent_since_cs": -1}]}',
        "[" * 100_000,
    ],
)
def test_state_from_garbage_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        from_json(text)


# --- property: served counters never decrease while identity holds -------------
# (absences within the retention time included: a restart's empty window)

_step = st.tuples(
    st.lists(st.integers(0, 10**6), min_size=4, max_size=4),  # LB raw values
    st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(0, 10**6))),  # route
    st.sampled_from(["i1", "i1", "i1", "i2"]),
    st.booleans(),  # present this scrape
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, min_size=1, max_size=12))
def test_served_counters_never_decrease(
    steps: list[tuple[list[int], tuple[int, int] | None, str, bool]],
) -> None:
    state: CounterState | None = None
    last: tuple[int | None, ...] | None = None
    last_disc = -1
    for now, (lb_values, route, instance, present) in enumerate(steps):
        lb = {name: [[0, v]] for name, v in zip(LB_COUNTER_NAMES, lb_values, strict=True)}
        if route is None:
            si: dict[str, int | None] = {"192.0.2.1/32": None}
            route_to: list[list[tuple[int, int]]] = []
        else:
            si = {"192.0.2.1/32": route[0]}
            route_to = [[(route[1], route[1] * 10)] * 4]
        vips = (V1,) if present else ()
        rows, state = reduce(_raw(vips, lb, route_to, si, instance), state, now)
        if not present:
            continue  # the row is kept while absent: its counters carry on
        (row,) = rows
        c = row.counters
        served = (
            c.next_packets,
            c.first_packets,
            c.untracked_packets,
            c.no_server_packets,
            c.route_packets,
            c.route_octets,
        )
        if last is not None:
            for before, after in zip(last, served, strict=True):
                if before is not None and after is not None:
                    assert after >= before
            assert row.discontinuity_cs >= last_disc
        last = tuple(
            s if s is not None else (last[i] if last is not None else None)
            for i, s in enumerate(served)
        )
        last_disc = row.discontinuity_cs


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=12), max_size=3),
    st.lists(st.integers(0, 14), max_size=10),
    st.booleans(),
)
def test_thread_sums_by_slice_equal_sums_by_index(
    rows: list[list[int]], picks: list[int], sort: bool
) -> None:
    # Dense, sorted VIP indexes are summed by slicing each thread's row; any
    # other index list (a route's stats indexes: any order, repeats) one by one.
    indices = sorted(set(picks)) if sort else picks
    expected = [sum(row[i] if i < len(row) else 0 for row in rows) for i in indices]
    assert _thread_sum(rows, indices, _is_dense(indices)) == expected
    assert _thread_sum(rows, indices) == expected
    assert _is_dense(indices) == (
        indices == list(range(indices[0], indices[0] + len(indices))) if indices else False
    )


# --- property: the column-at-a-time path equals the row-by-row one -------------

_V2 = Vip(
    index=2, address="192.0.2.2", prefix_length=32, ip_version=4, encap=Encap.GRE4, protocol=6,
    port=443,
)  # fmt: skip
_col_step = st.tuples(
    # How each of the 8 LB raw values (both VIPs) moves: mostly up, a drop now and then.
    st.lists(st.sampled_from([0, 1, 5, 20, 20, 20, 20, 20, -3]), min_size=8, max_size=8),
    # Stats index per VIP: mostly the same FIB entries, sometimes unknown or swapped.
    st.sampled_from([(0, 1)] * 6 + [(None, 1), (1, 0)]),
    st.sampled_from(["i1"] * 8 + ["i2"]),  # VPP instance: a restart now and then
    st.sampled_from(["both"] * 6 + ["first", "none"]),  # the VIPs VPP lists
    st.sampled_from([1] * 6 + [0, 3, -1]),  # clock step (-1: a state from a later clock)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_col_step, min_size=1, max_size=10))
def test_the_column_path_serves_what_the_row_path_serves(
    steps: list[tuple[list[int], tuple[int | None, int | None], str, str, int]],
) -> None:
    from agentx_lb import reduce as reducing
    from agentx_lb.model import RowStates

    fast_state: CounterState | None = None
    slow_state: CounterState | None = None
    columns_used = 0
    now = 100
    values = [0] * 8
    for deltas, indices, instance, listed, step in steps:
        now += step
        values = [max(0, v + d) for v, d in zip(values, deltas, strict=True)]
        vips = {"both": (V1, _V2), "first": (V1,), "none": ()}[listed]
        lb = {name: [[0, values[k], values[k + 4]]] for k, name in enumerate(LB_COUNTER_NAMES)}
        si = {"192.0.2.1/32": indices[0], "192.0.2.2/32": indices[1]}
        route_to = [[(values[0] + values[1], values[2]), (values[3], values[5])]]
        raw = _raw(vips, lb, route_to, si, instance)
        fast_rows, fast_state = reduce(raw, fast_state, now)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(reducing, "_unchanged_rows", lambda *_a: None)
            slow_rows, slow_state = reduce(raw, slow_state, now)
        assert tuple(fast_rows) == tuple(slow_rows)
        assert tuple(fast_state.rows) == tuple(slow_state.rows)
        assert fast_state.revision == slow_state.revision
        columns_used += isinstance(fast_state.rows, RowStates)
    _COLUMN_PATH_USED.append(columns_used)


_COLUMN_PATH_USED: list[int] = []


def test_the_column_path_was_taken_by_the_property_above() -> None:
    # (Runs after it: pytest keeps the file's order.) The generator is worth
    # something only if the column path ran, and from a RowStates too.
    assert sum(1 for n in _COLUMN_PATH_USED if n >= 2) >= 10
