"""BulkStats.dump against the emulator: the same values as vpp_papi's own dump()."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest
from vpp_papi.vpp_stats import VPPStats

from agentx_lb.emulator import EmulatedVpp
from agentx_lb.errors import SourceDataError, SourceUnavailableError
from agentx_lb.model import LB_COUNTER_NAMES, CombinedRow, Encap, RawScrape, Vip
from agentx_lb.reduce import sum_counters
from agentx_lb.vpp.source import ROUTE_TO, VppSource
from agentx_lb.vpp.stats import BulkStats, StatsLockedError
from vppfixtures import stats_client

MakeVpp = Callable[..., EmulatedVpp]
NAMES = [*LB_COUNTER_NAMES, ROUTE_TO]


@pytest.fixture
def bulk() -> Iterator[Callable[[EmulatedVpp], BulkStats]]:
    made: list[BulkStats] = []

    def make(emu: EmulatedVpp) -> BulkStats:
        stats = BulkStats(emu.stats_socket, 0.5)
        stats.connect()
        made.append(stats)
        return stats

    yield make
    for stats in made:
        stats.close()


def _papi_dump(emu: EmulatedVpp, names: list[str]) -> dict[str, object]:
    with stats_client(emu) as papi:
        return papi.dump(names)


def _plain(value: object) -> object:
    """Both libraries' values as plain lists of ints / (packets, octets) tuples."""
    assert isinstance(value, list)
    return [[x if isinstance(x, int) else tuple(x) for x in row] for row in value]


def _traffic(emu: EmulatedVpp, n_vips: int, workers: int) -> list[int]:
    vips = []
    for i in range(n_vips):
        v = emu.add_vip(f"192.0.2.{i + 1}/32", protocol=6, port=80)
        for t in range(workers + 1):
            emu.traffic(
                v,
                thread=t,
                next_packets=i * 7 + t + 1,
                first_packets=t,
                untracked_packets=i,
                no_server_packets=t * i,
                octets_per_packet=60 + i,
            )
        vips.append(v)
    return vips


@pytest.mark.parametrize("workers", [1, 4])
def test_dump_equals_vpp_papi(
    make_vpp: MakeVpp, bulk: Callable[..., BulkStats], workers: int
) -> None:
    emu = make_vpp(workers=workers)
    _traffic(emu, 20, workers)
    names = [*NAMES, "/sys/boottime", "/sys/heartbeat"]
    emu.heartbeat(42)
    ours = bulk(emu).dump(names)
    theirs = _papi_dump(emu, names)
    assert set(ours) == set(theirs) == set(names)
    for name in LB_COUNTER_NAMES:
        assert len(ours[name]) == workers + 1
        assert _plain(ours[name]) == _plain(theirs[name])
        assert any(any(row) for row in ours[name])  # not all zero: a real comparison
    assert all(isinstance(row, CombinedRow) for row in ours[ROUTE_TO])
    assert _plain(ours[ROUTE_TO]) == _plain(theirs[ROUTE_TO])
    assert any(p for row in ours[ROUTE_TO] for p, _ in row)
    assert ours["/sys/heartbeat"] == theirs["/sys/heartbeat"] == 42


def test_short_rows_equal_vpp_papi_and_sum_as_zero(
    vpp: EmulatedVpp, bulk: Callable[..., BulkStats]
) -> None:
    vips = _traffic(vpp, 5, 2)
    seg = vpp.segment
    # A worker row still shorter than the newest VIP index (VPP grows rows per
    # thread): shrink one row's vec len in place, as a reader may see it.
    entry = seg._entries[seg._by_name[LB_COUNTER_NAMES[0]]]
    row = entry.rows[2]
    struct.pack_into("=I", seg.mm, row.off - 8, vips[-1])  # last VIP index now beyond
    ours = bulk(vpp).dump(NAMES)
    theirs = _papi_dump(vpp, NAMES)
    assert [len(r) for r in ours[LB_COUNTER_NAMES[0]]] == [row.length, row.length, vips[-1]]
    assert _plain(ours[LB_COUNTER_NAMES[0]]) == _plain(theirs[LB_COUNTER_NAMES[0]])
    raw = RawScrape(
        vips=tuple(Vip(v, f"192.0.2.{i + 1}", 32, 4, Encap.GRE4) for i, v in enumerate(vips)),
        problems=(),
        lb_counters={n: ours[n] for n in LB_COUNTER_NAMES},
        route_to=ours[ROUTE_TO],
        stats_index={},
        vpp_instance="x",
    )
    full = vpp.counter_sum(LB_COUNTER_NAMES[0], vips[-1])
    short_part = seg.get_simple(LB_COUNTER_NAMES[0], 2, vips[-1])
    assert short_part > 0  # the shrunk row really hid a value
    assert sum_counters(raw)[vips[-1]].next_packets == full - short_part


def test_absent_name_raises_or_is_skipped(vpp: EmulatedVpp, bulk: Callable[..., BulkStats]) -> None:
    stats = bulk(vpp)  # no VIP yet: the LB counters do not exist
    with pytest.raises(KeyError):
        stats.dump(NAMES)
    assert set(stats.dump(NAMES, missing_ok=True)) == {ROUTE_TO}


def test_new_entries_after_epoch_change_are_seen(
    vpp: EmulatedVpp, bulk: Callable[..., BulkStats]
) -> None:
    stats = bulk(vpp)
    epoch = stats.epoch
    vips = _traffic(vpp, 100, 2)  # creates the LB counters and reallocates rows
    assert stats.epoch != epoch
    ours = stats.dump(NAMES)
    assert _plain(ours[LB_COUNTER_NAMES[0]]) == _plain(_papi_dump(vpp, NAMES)[LB_COUNTER_NAMES[0]])
    assert sum(r[vips[-1]] for r in ours[LB_COUNTER_NAMES[0]]) == vpp.counter_sum(
        LB_COUNTER_NAMES[0], vips[-1]
    )


def test_corrupt_vector_is_detected(vpp: EmulatedVpp, bulk: Callable[..., BulkStats]) -> None:
    _traffic(vpp, 3, 2)
    stats = bulk(vpp)
    vpp.corrupt_vector("untracked packet", thread=1)
    with pytest.raises(OSError, match="Vector overruns stats segment"):
        stats.dump(NAMES)
    papi = VPPStats(socketname=vpp.stats_socket)
    papi.connect()
    try:  # vpp_papi itself agrees it is corrupt
        with pytest.raises(OSError, match="Vector overruns stats segment"):
            papi.dump(["untracked packet"], blocking=False)
    finally:
        papi.disconnect()


def test_corrupt_vector_through_the_source_is_a_data_error(vpp: EmulatedVpp) -> None:
    _traffic(vpp, 3, 2)
    src = VppSource(vpp.stats_socket, vpp.api_socket, vpp.api_dir, timeout_s=0.5)
    try:
        src.read()
        vpp.corrupt_vector(ROUTE_TO, thread=2)
        with pytest.raises(SourceDataError, match="Vector overruns stats segment"):
            src.read()
        vpp.segment.repair(ROUTE_TO)
        assert len(src.read().vips) == 3  # remapped and fine again
    finally:
        src.close()


def test_stuck_lock_is_bounded(vpp: EmulatedVpp, bulk: Callable[..., BulkStats]) -> None:
    _traffic(vpp, 1, 2)
    stats = bulk(vpp)
    vpp.set_in_progress(1)
    with pytest.raises(StatsLockedError):
        stats.dump(NAMES)
    vpp.set_in_progress(0)
    assert set(stats.dump(NAMES)) == set(NAMES)


def test_restart_values_match_vpp_papi_on_the_new_segment(vpp: EmulatedVpp) -> None:
    vips = _traffic(vpp, 4, 2)
    src = VppSource(vpp.stats_socket, vpp.api_socket, vpp.api_dir, timeout_s=0.5)
    try:
        before = sum_counters(src.read())
        assert before[vips[3]].next_packets > 0
        vpp.restart()
        vpp.traffic(vips[3], thread=2, next_packets=5, first_packets=2)
        raw = src.read()
        theirs = _papi_dump(vpp, NAMES)
        for name in LB_COUNTER_NAMES:
            assert _plain(list(raw.lb_counters[name])) == _plain(theirs[name])
        assert _plain(list(raw.route_to)) == _plain(theirs[ROUTE_TO])
        assert sum_counters(raw)[vips[3]].next_packets == 5
    finally:
        src.close()


def test_unavailable_when_locked_via_source(vpp: EmulatedVpp) -> None:
    src = VppSource(vpp.stats_socket, vpp.api_socket, vpp.api_dir, timeout_s=0.2)
    try:
        src.read()
        vpp.set_in_progress(1)
        with pytest.raises(SourceUnavailableError, match="in_progress stuck"):
            src.read()
    finally:
        vpp.set_in_progress(0)
        src.close()


def test_combined_row_is_a_sequence_of_pairs() -> None:
    row = CombinedRow([1, 2, 3], [10, 20, 30])
    assert len(row) == 3
    assert row[1] == (2, 20)
    assert row[-1] == (3, 30)
    assert row[0:2] == [(1, 10), (2, 20)]
    assert list(row) == [(1, 10), (2, 20), (3, 30)]
    assert row == [(1, 10), (2, 20), (3, 30)]
    assert row != [(1, 10)]
    with pytest.raises(ValueError):
        CombinedRow([1], [])
