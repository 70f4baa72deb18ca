"""VppSource against the emulated VPP: the real, unmodified vpp_papi client path."""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from vpp_papi.vpp_serializer import String

from agentx_lb.emulator import EmulatedVpp
from agentx_lb.errors import SourceDataError, SourceUnavailableError
from agentx_lb.model import LB_COUNTER_NAMES, Encap, LbSettings, VipCounters
from agentx_lb.reduce import reduce, sum_counters
from agentx_lb.vpp.papi import _OneCopyString, _ThreadQueue
from agentx_lb.vpp.source import VppSource
from fakes import FakeClock

MakeVpp = Callable[..., EmulatedVpp]


@pytest.fixture
def sources() -> Iterator[Callable[..., VppSource]]:
    made: list[VppSource] = []

    def make(emu: EmulatedVpp, **kwargs: Any) -> VppSource:
        kwargs.setdefault("api_dir", emu.api_dir)
        kwargs.setdefault("timeout_s", 0.5)
        src = VppSource(emu.stats_socket, emu.api_socket, **kwargs)
        made.append(src)
        return src

    yield make
    for src in made:
        src.close()


def _counters(emu_src: VppSource) -> dict[int, VipCounters]:
    return sum_counters(emu_src.read())


def test_three_vips_and_an_all_port_vip_on_two_workers(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    web = vpp.add_vip("192.0.2.1/32", protocol=6, port=80, encap="gre4")
    dns = vpp.add_vip("192.0.2.2/32", protocol=17, port=53, encap="gre4")
    tls = vpp.add_vip("2001:db8::1/128", protocol=6, port=443, encap="gre6")
    every = vpp.add_vip("203.0.113.0/24", encap="gre4")
    for i, vip in enumerate((web, dns, tls, every)):
        vpp.add_backend(vip, f"10.0.0.{i + 2}")
    vpp.traffic(web, thread=1, next_packets=10, first_packets=100)
    vpp.traffic(web, thread=2, next_packets=5, untracked_packets=2, octets_per_packet=50)
    vpp.traffic(dns, thread=2, first_packets=7)
    vpp.traffic(tls, thread=1, no_server_packets=3, octets_per_packet=1500)
    vpp.traffic(every, thread=1, next_packets=1)
    vpp.traffic(every, thread=2, next_packets=1)

    src = sources(vpp)
    raw = src.read()
    assert src.connected
    assert [(v.index, v.prefix, v.protocol, v.port, v.encap) for v in raw.vips] == [
        (web, "192.0.2.1/32", 6, 80, Encap.GRE4),
        (dns, "192.0.2.2/32", 17, 53, Encap.GRE4),
        (tls, "2001:db8::1/128", 6, 443, Encap.GRE6),
        (every, "203.0.113.0/24", 255, 0, Encap.GRE4),
    ]
    assert raw.problems == ()
    assert all(len(rows) == 3 for rows in raw.lb_counters.values())  # main + 2 workers
    assert sorted(raw.lb_counters) == sorted(LB_COUNTER_NAMES)
    assert raw.vpp_version == "25.10-release"
    assert raw.settings == LbSettings("10.0.0.1", "2001:db8:ff::1", 1024, 40)
    assert set(raw.timings_ms) == {"cli", "parse", "route_lookup", "stats"}
    assert all(raw.stats_index[v.prefix] is not None for v in raw.vips)
    rows, _ = reduce(raw, None, 0)
    assert {r.vip.index: r.counters for r in rows} == {
        web: VipCounters(15, 100, 2, 0, 117, 11_000 + 350),
        dns: VipCounters(0, 7, 0, 0, 7, 700),
        tls: VipCounters(0, 0, 0, 3, 3, 4500),
        every: VipCounters(2, 0, 0, 0, 2, 200),
    }


def test_deleted_vip_index_is_reused_with_zeroed_counters(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.traffic(a, next_packets=50)
    src = sources(vpp)
    rows1, state = reduce(src.read(), None, 100)
    assert rows1[0].counters.next_packets == 50
    vpp.del_vip(a)
    b = vpp.add_vip("192.0.2.9/32", protocol=6, port=8080)
    assert b == a
    vpp.traffic(b, next_packets=4)
    rows2, _ = reduce(src.read(), state, 200)
    (row,) = rows2
    assert (row.vip.prefix, row.vip.port) == ("192.0.2.9/32", 8080)
    assert row.counters.next_packets == 4  # a new row: nothing carried over
    assert row.discontinuity_cs == 200


def test_removed_vip_is_listed_but_not_served(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_vip("192.0.2.2/32", protocol=6, port=80)
    vpp.del_vip(a, keep_removed=True)
    raw = sources(vpp).read()
    assert [(v.index, v.removed) for v in raw.vips] == [(a, True), (a + 1, False)]
    assert "192.0.2.1/32" not in raw.stats_index  # removed VIPs need no route
    rows, _ = reduce(raw, None, 0)
    assert [r.vip.index for r in rows] == [a + 1]


def test_two_vips_on_one_prefix_share_route_counters(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    web = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    tls = vpp.add_vip("192.0.2.1/32", protocol=6, port=443)
    vpp.traffic(web, first_packets=3)
    vpp.traffic(tls, thread=2, first_packets=4)
    src = sources(vpp)
    sums = _counters(src)
    assert (sums[web].first_packets, sums[tls].first_packets) == (3, 4)
    assert (sums[web].route_packets, sums[tls].route_packets) == (7, 7)
    assert (sums[web].route_octets, sums[tls].route_octets) == (700, 700)
    assert src.route_lookups == 1  # one prefix, one lookup


@pytest.mark.parametrize("style", ["pre-23.02", "25.10", "master"])
def test_every_cli_style(make_vpp: MakeVpp, sources: Callable[..., VppSource], style: str) -> None:
    emu = make_vpp(workers=2, cli_style=style)
    v = emu.add_vip("2001:db8::5/128", protocol=6, port=443, encap="gre6", src_ip_sticky=True)
    emu.add_backend(v, "2001:db8:ff::1", weight=40)
    emu.traffic(v, next_packets=9)
    raw = sources(emu).read()
    assert raw.problems == ()
    (vip,) = raw.vips
    assert vip.src_ip_sticky is (style != "pre-23.02")
    assert [b.address for b in vip.backends] == ["2001:db8:ff::1"]
    assert vip.backends[0].weight == (40 if style == "master" else None)
    assert sum_counters(raw)[v].next_packets == 9


def test_zero_vips(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    raw = sources(vpp).read()
    assert raw.vips == ()
    assert raw.lb_counters == {}  # created by the first VIP only
    assert raw.stats_index == {}
    assert reduce(raw, None, 0)[0] == ()


@pytest.mark.parametrize("workers", [1, 4])
def test_worker_counts(make_vpp: MakeVpp, sources: Callable[..., VppSource], workers: int) -> None:
    emu = make_vpp(workers=workers)
    v = emu.add_vip("192.0.2.1/32", protocol=6, port=80)
    for thread in range(1, workers + 1):
        emu.traffic(v, thread=thread, next_packets=thread)
    raw = sources(emu).read()
    assert [len(raw.lb_counters[n]) for n in LB_COUNTER_NAMES] == [workers + 1] * 4
    assert len(raw.route_to) == workers + 1
    expected = workers * (workers + 1) // 2
    assert sum_counters(raw)[v] == VipCounters(expected, 0, 0, 0, expected, expected * 100)


def test_api_socket_absent_names_the_socket(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.api_socket_down()
    src = sources(vpp)
    with pytest.raises(SourceUnavailableError, match=f"api socket {vpp.api_socket}: no such"):
        src.read()
    assert not src.connected
    vpp.api_socket_up()
    assert src.read().vips == ()  # recovers on the next read


def test_api_socket_stale_is_connection_refused(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.api_socket_down(stale=True)
    with pytest.raises(SourceUnavailableError, match=f"api socket {vpp.api_socket}: connection"):
        sources(vpp).read()


@pytest.mark.parametrize("stale", [False, True])
def test_stats_socket_down_names_the_socket(
    vpp: EmulatedVpp, sources: Callable[..., VppSource], stale: bool
) -> None:
    vpp.stats_socket_down(stale=stale)
    src = sources(vpp)
    reason = "connection refused" if stale else "no such socket"
    with pytest.raises(SourceUnavailableError, match=f"stats socket {vpp.stats_socket}: {reason}"):
        src.read()
    vpp.stats_socket_up()
    assert src.read().vips == ()


def test_restart_gives_new_values_not_the_frozen_segment(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    v = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.traffic(v, next_packets=100)
    src = sources(vpp)
    raw1 = src.read()
    rows1, state = reduce(raw1, None, 10)
    assert rows1[0].counters.next_packets == 100
    vpp.restart()  # VIPs kept, counters at 0, new memfd, new message ids
    vpp.traffic(v, next_packets=7)
    raw2 = src.read()
    assert raw2.vpp_instance != raw1.vpp_instance
    assert sum_counters(raw2)[v].next_packets == 7  # the new segment
    rows2, _ = reduce(raw2, state, 20)
    assert rows2[0].counters.next_packets == 107  # absorbed: never backwards
    assert rows2[0].discontinuity_cs == 20
    vpp.traffic(v, next_packets=1)
    assert sum_counters(src.read())[v].next_packets == 8


def test_route_lookups_are_cached(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    clock = FakeClock()
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_vip("192.0.2.2/32", protocol=6, port=80)
    src = sources(vpp, route_refresh_s=300.0, clock=clock)
    first = src.read().stats_index
    for _ in range(3):
        assert src.read().stats_index == first
    assert src.route_lookups == 2
    vpp.add_vip("192.0.2.3/32", protocol=6, port=80)  # a new prefix: only it is looked up
    assert len(src.read().stats_index) == 3
    assert src.route_lookups == 3
    clock.now += 300.0  # the periodic refresh
    src.read()
    assert src.route_lookups == 6
    vpp.restart()  # reconnect: resolved again
    src.read()
    assert src.route_lookups == 9


def test_route_miss_is_none(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    v = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    clock = FakeClock()
    src = sources(vpp, route_refresh_s=300.0, clock=clock)
    src.read()
    # The FIB entry vanishes behind the VIP's back; the next refresh sees the miss.
    vpp._routes.clear()
    clock.now += 300.0
    raw = src.read()
    assert raw.stats_index == {"192.0.2.1/32": None}
    assert sum_counters(raw)[v].route_packets is None


def test_bootstrap_api_without_api_dir(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    v = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.traffic(v, first_packets=2)
    raw = sources(vpp, api_dir=None).read()
    assert sum_counters(raw)[v].first_packets == 2
    assert raw.vpp_version == "25.10-release"


def test_lb_plugin_not_loaded(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    vpp.faults.lb_plugin = False
    with pytest.raises(SourceDataError, match="lb plugin not loaded"):
        sources(vpp).read()


def test_empty_cli_reply_is_an_error(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.faults.cli_empty = True
    with pytest.raises(SourceDataError, match="returned nothing"):
        sources(vpp).read()


def test_crc_mismatch_names_the_message(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.faults.bad_crc = {"ip_route_lookup"}
    with pytest.raises(SourceDataError, match="ip_route_lookup_710d6471"):
        sources(vpp).read()


def test_handshake_that_never_answers_does_not_hang(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.faults.handshake_hang = True
    src = sources(vpp, timeout_s=0.3)
    with pytest.raises(SourceUnavailableError, match=r"no answer within 0\.3s"):
        src.read()
    vpp.faults.handshake_hang = False
    assert src.read().vips == ()  # disconnected properly: no "Need to disconnect first"


def test_call_that_never_answers_does_not_hang(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    src = sources(vpp, timeout_s=0.3)
    src.read()
    vpp.faults.hang = {"cli_inband"}
    with pytest.raises(SourceUnavailableError, match=f"api socket {vpp.api_socket}"):
        src.read()
    assert not src.connected
    vpp.faults.hang = set()
    assert src.read().vips == ()


def test_stuck_in_progress_fails_bounded(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    src = sources(vpp, timeout_s=0.2)
    src.read()
    vpp.set_in_progress(1)
    with pytest.raises(SourceUnavailableError, match="stats segment locked"):
        src.read()
    with pytest.raises(SourceUnavailableError, match="stats segment locked"):
        src.read()  # also when (re)connecting: vpp_papi's connect would spin here
    vpp.set_in_progress(0)
    assert len(src.read().vips) == 1


def test_corrupt_vector_is_a_data_error(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    src = sources(vpp)
    src.read()
    vpp.corrupt_vector("first session packet", thread=0)
    with pytest.raises(SourceDataError, match="corrupt stats segment"):
        src.read()


def test_close_then_read_again(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    src = sources(vpp)
    src.read()
    assert src.connected
    src.close()
    assert not src.connected
    assert src.read().vips == ()  # type: ignore[unreachable]  # mypy keeps `connected` narrowed across close()


def test_cli_reply_repr_is_short(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    """vpp_papi formats the repr of every reply; ours must not copy megabytes of CLI text."""
    index = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    for n in range(200):
        vpp.add_backend(index, f"10.0.{n // 250}.{n % 250 + 1}")
    source = sources(vpp)
    source.read()
    reply = source._client.api.cli_inband(cmd="show lb vips verbose")
    assert type(reply).__name__ == "cli_inband_reply"  # vpp_papi matches replies by name
    assert len(reply.reply) > 5000
    assert repr(reply) == f"cli_inband_reply(retval=0, reply=<{len(reply.reply)} chars>)"


def test_reads_leave_no_cyclic_garbage(vpp: EmulatedVpp, sources: Callable[..., VppSource]) -> None:
    """The agent freezes what survives a tick (pipeline.py), so anything only the
    cyclic GC can free would pile up until the hourly unfreeze. vpp_papi's
    `has_context` made a new namedtuple class, a cycle, per received message."""
    index = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_backend(index, "10.0.0.1")
    source = sources(vpp)
    source.read()  # connect, bootstrap, first route lookups
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for n in range(5):
            vpp.traffic(index, thread=1, next_packets=n + 1, first_packets=1)
            source.read()
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x00",  # empty string
        b"\x00\x00\x00\x05hello",
        b"xx\x00\x00\x00\x03abcyy",  # at an offset, with bytes after it
        b"\x00\x00\x00\x04a\xffb\x80",  # non-ASCII bytes become U+FFFD, as in vpp_papi
    ],
)
def test_one_copy_string_decodes_as_vpp_papi_does(data: bytes) -> None:
    offset = 2 if data.startswith(b"xx") else 0
    theirs = String("reply", 0, {"limit": 0})
    ours = _OneCopyString("reply", 0, {"limit": 0})
    assert ours.unpack(data, offset) == theirs.unpack(data, offset)


def test_one_copy_string_past_the_end_is_a_struct_error() -> None:
    """A length past the message end must fail as vpp_papi's decoder does (mapped
    to SourceDataError by the source), not return a silently short string."""
    data = b"\x00\x00\x00\x09short"
    with pytest.raises(struct.error):
        String("reply", 0, {"limit": 0}).unpack(data)
    with pytest.raises(struct.error):
        _OneCopyString("reply", 0, {"limit": 0}).unpack(data)


def test_cli_reply_is_decoded_by_the_one_copy_string(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    source = sources(vpp)
    source.read()
    msg = source._client.messages["cli_inband_reply"]
    assert any(type(p) is _OneCopyString for p in msg.packers)
    reply = source._client.api.cli_inband(cmd="show lb vips verbose")
    assert "192.0.2.1/32" in reply.reply


def test_replies_cross_threads_by_reference(
    make_vpp: MakeVpp, sources: Callable[..., VppSource]
) -> None:
    """vpp_papi's multiprocessing.Queue pickles every reply between its reader
    thread and the caller; ours is a thread queue, on every (re)connection."""
    vpp = make_vpp()
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    source = sources(vpp)
    assert len(source.read().vips) == 1
    assert type(source._client.transport.q) is _ThreadQueue
    vpp.restart()  # a new connection: vpp_papi assigns new queues
    assert len(source.read().vips) == 1
    assert type(source._client.transport.q) is _ThreadQueue


def _add_many(vpp: EmulatedVpp, n: int) -> None:
    for i in range(n):
        vpp.add_vip(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32", protocol=6, port=80)


def test_route_lookups_are_pipelined_and_survive_late_replies(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    # 10,000 prefixes; every 2,500th lookup answered after the timeout (VPP
    # busy). One late reply used to drop the connection, and the reconnect
    # threw every resolved route away: the table never completed.
    n = 10_000
    _add_many(vpp, n)
    vpp.faults.late_every = {"ip_route_lookup": 2500}
    # Timeouts generous enough that the 10,000-VIP CLI reply is never late
    # on a loaded 2-core machine; only the chosen lookups are.
    vpp.faults.late_s = 2.0
    src = sources(vpp, timeout_s=1.5)
    reads = 0
    while True:
        raw = src.read()
        reads += 1
        known = sum(1 for index in raw.stats_index.values() if index is not None)
        if known == n or reads == 10:
            break
    assert known == n
    assert src.route_late > 0  # some replies really were late
    assert vpp.api_connections == 1  # a late reply is not a lost connection
    # Each late reply costs what was in flight behind it, not a new start.
    assert src.route_lookups < n + reads * 1024
    lookups = src.route_lookups
    src.read()
    assert src.route_lookups == lookups  # resolved ones are not asked again


def test_routes_kept_across_a_reconnect_to_the_same_vpp(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_vip("192.0.2.2/32", protocol=6, port=80)
    src = sources(vpp)
    first = src.read().stats_index
    vpp.api_socket_down()  # the API connection drops; VPP itself lives on
    vpp.api_socket_up()
    assert src.read().stats_index == first
    assert src.route_lookups == 2
    assert vpp.api_connections == 2  # it did reconnect


def test_a_bug_in_our_code_is_not_taken_for_bad_vpp_data(
    vpp: EmulatedVpp, sources: Callable[..., VppSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A TypeError of ours must reach the pipeline (traceback, exit, systemd
    # restart), not become a "VPP answered garbage" failure streak.
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)

    def broken(prefix: str, key: object, reply: object) -> int:
        raise TypeError("our bug")

    monkeypatch.setattr(VppSource, "_stats_index", staticmethod(broken))
    with pytest.raises(TypeError, match="our bug"):
        sources(vpp).read()


def test_an_answer_vpp_papi_cannot_decode_is_a_data_error(
    vpp: EmulatedVpp, sources: Callable[..., VppSource]
) -> None:
    vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.faults.truncate = {"cli_inband_reply"}
    with pytest.raises(SourceDataError, match="unusable answer"):
        sources(vpp).read()


@pytest.mark.parametrize(
    ("prefix", "retval", "n_paths"),
    [("192.0.2.7/32", 0, 1), ("2001:db8::7/128", 0, 2), ("0.0.0.0/0", -6, 0)],
)
def test_route_lookup_reply_head_equals_vpp_papi_decoding(
    vpp: EmulatedVpp, prefix: str, retval: int, n_paths: int
) -> None:
    from vpp_papi import VPPApiClient

    from agentx_lb.vpp.papi import ROUTE_LOOKUP_REPLY_CRC, decode_route_lookup_reply

    client = VPPApiClient(apifiles=vpp.api_files, server_address=vpp.api_socket)
    msg = client.messages["ip_route_lookup_reply"]
    assert msg.crc == ROUTE_LOOKUP_REPLY_CRC
    path = {"sw_if_index": 1, "weight": 1, "label_stack": [{}] * 16}
    data = msg.pack({
        "_vl_msg_id": 77, "context": 123456, "retval": retval,
        "route": {"table_id": 0, "stats_index": 4242, "prefix": prefix,
                  "n_paths": n_paths, "paths": [path] * n_paths},
    })  # fmt: skip
    want, _ = msg.unpack(data, ntc=True)
    got = decode_route_lookup_reply(data)
    assert (got.context, got.retval, got.stats_index) == (want.context, want.retval, 4242)
    raw = want.route.prefix
    assert (got.af, got.address, got.prefix_len) == (
        int(raw.address.af), bytes(raw.address.un.ip6), raw.len,
    )  # fmt: skip
    with pytest.raises(struct.error):
        decode_route_lookup_reply(data[:20])
