"""table.py: golden cells, ordering, validation, encoding (via pyagentx3's decoder)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import struct
from collections.abc import Sized

import pytest
from pyagentx3.pdu import PDU

from agentx_lb.logs import OnceLogger
from agentx_lb.model import Backend, Snapshot, VipCounters
from agentx_lb.oids import AGENT, BACKEND_ENTRY, DEFAULT_ROOT, VIP_ENTRY, AgentScalar, parse_oid
from agentx_lb.pipeline import log_drops
from agentx_lb.table import build_table, is_known_object, pack_oid
from snmpfixtures import FIXTURE_INDICES, make_snapshot

ROOT = DEFAULT_ROOT
V = ROOT + VIP_ENTRY
B = ROOT + BACKEND_ENTRY


def decode(varbind: bytes) -> tuple[tuple[int, ...], int, object]:
    """One varbind through pyagentx3's own decoder: (oid, type, value)."""
    pdu = PDU()
    pdu.set_decode_buf(varbind)
    value, ok = pdu.decode_value()
    assert ok
    assert pdu.decode_buf == b""  # consumed exactly
    return parse_oid(value["name"]), value["type"], value["data"]


def cells(table) -> dict:
    out = {}
    for vb in table.varbinds:
        oid, t, v = decode(vb)
        out[oid] = (t, v)
    return out


@pytest.fixture
def table():
    # TimeStamps as the agent serves them with a master clock offset of 0.
    return build_table(make_snapshot(), ROOT).restamped(lambda event: event)


def test_golden_scalars(table) -> None:
    c = cells(table)
    a = ROOT + (1, 1)
    assert c[a + (1, 0)] == (2, 1)  # vppConnected true
    assert c[a + (2, 0)] == (4, b"24.10-release")
    assert c[a + (3, 0)] == (66, len(FIXTURE_INDICES))
    assert c[a + (4, 0)] == (67, 4242)
    assert c[a + (5, 0)] == (66, 3)
    assert c[a + (6, 0)] == (66, 17)
    assert c[a + (7, 0)] == (70, 5)
    assert c[a + (8, 0)] == (66, 0)
    assert c[a + (9, 0)] == (4, b"")
    assert c[a + (10, 0)] == (4, bytes([192, 0, 2, 250]))
    assert a + (11, 0) not in c  # ip6 source not exposed: absent, not empty
    assert c[a + (12, 0)] == (66, 1024)
    assert a + (13, 0) not in c


def test_golden_vip_row(table) -> None:
    c = cells(table)
    row = {col: c.get(V + (col, 1)) for col in range(1, 21)}
    assert row == {
        1: None,  # the index is not-accessible
        2: (4, b"192.0.2.1/32 tcp/80"),
        3: (2, 1),
        4: (4, bytes([192, 0, 2, 1])),
        5: (66, 32),
        6: (66, 6),
        7: (66, 80),
        8: (2, 1),
        9: (2, 2),  # src_ip_sticky false
        10: (66, 1024),
        11: (66, 2),
        12: (66, 2),
        13: (2, 1),
        14: (70, 2**64 - 1),
        15: (70, 0),
        16: (70, 2),
        17: (70, 3),
        18: (70, 4),
        19: (70, 400),
        20: (67, 100),
    }


def test_golden_ipv6_vip_and_oper_status(table) -> None:
    c = cells(table)
    assert c[V + (2, 10)] == (4, b"2001:db8::a/128 tcp/80")
    assert c[V + (3, 10)] == (2, 2)
    assert c[V + (4, 10)] == (4, bytes.fromhex("20010db8000000000000000000000000"[:-1] + "a"))
    assert c[V + (9, 10)] == (2, 1)
    assert c[V + (2, 99)] == (4, b"192.0.2.99/32 any")
    assert c[V + (6, 99)] == (66, 255)
    # VIP 3: no used backend
    assert c[V + (12, 3)] == (66, 0)
    assert c[V + (11, 3)] == (66, 2)
    assert c[V + (13, 3)] == (2, 2)


def test_unknown_route_counters_are_absent(table) -> None:
    c = cells(table)
    assert V + (18, 12) not in c and V + (19, 12) not in c
    assert V + (17, 12) in c
    assert table.get(V + (18, 12)) is None


def test_golden_backend_rows(table) -> None:
    c = cells(table)
    b4 = B + (3, 1, 1, 4, 10, 0, 1, 2)  # VIP 1, 10.0.1.2
    assert c[b4] == (2, 1)
    assert c[B + (4, 1, 1, 4, 10, 0, 1, 2)] == (66, 50)
    assert c[B + (5, 1, 1, 4, 10, 0, 1, 2)] == (66, 2048)
    assert c[B + (6, 1, 1, 4, 10, 0, 1, 2)] == (66, 11)
    assert c[B + (7, 1, 1, 4, 10, 0, 1, 2)] == (4, b"10.0.1.2 via 192.0.2.1/32 tcp/80")
    # VIP 2 has no weights: the weight cell is absent
    assert B + (4, 2, 1, 4, 10, 0, 2, 1) not in c
    assert c[B + (3, 2, 1, 4, 10, 0, 2, 1)] == (2, 1)
    # VIP 4's second backend is removed
    assert c[B + (3, 4, 1, 4, 10, 0, 4, 2)] == (2, 2)
    # IPv6 backend index: type 2, length 16, 16 octets
    addr = tuple(bytes.fromhex("20010db8000a00000000000000000001"))
    assert c[B + (7, 10, 2, 16, *addr)] == (4, b"2001:db8:a::1 via 2001:db8::a/128 tcp/80")


def test_cell_count(table) -> None:
    n = len(FIXTURE_INDICES)
    backends = 2 * n
    weights = 2 * sum(1 for i in FIXTURE_INDICES if i % 2)
    scalars = 11
    assert len(table) == scalars + 19 * n - 2 + 4 * backends + weights


def test_strictly_increasing_and_ten_after_nine(table) -> None:
    oids = list(table.oids)
    assert all(a < b for a, b in itertools.pairwise(oids))
    names = [o[len(V) + 1] for o in oids if o[: len(V) + 1] == V + (2,)]
    assert names == list(FIXTURE_INDICES)
    # the byte keys sort like the tuples
    keys = [table.key(i) for i in range(len(table))]
    assert keys == sorted(keys)


def test_next_after_and_get(table) -> None:
    oids = list(table.oids)
    i9 = oids.index(V + (2, 9))
    assert table.next_after(V + (2, 9), True) == i9
    assert oids[table.next_after(V + (2, 9), False)] == V + (2, 10)
    # a vanished row: the next existing OID
    assert oids[table.next_after(V + (2, 50), True)] == V + (2, 99)
    assert oids[table.next_after(V + (2, 101), False)] == V + (3, 1)
    assert table.next_after(ROOT[:-1], False) == 0  # before the subtree
    assert table.next_after(ROOT[:-1] + (ROOT[-1] + 1,), True) == len(table)
    assert table.next_after(oids[-1], False) == len(table)
    assert table.get(V + (2, 99)) == table.varbinds[oids.index(V + (2, 99))]
    assert table.get(V + (2, 13)) is None
    assert table.get(ROOT) is None


def test_known_objects() -> None:
    assert is_known_object(ROOT, V + (2, 13))
    assert is_known_object(ROOT, ROOT + (1, 1, 11, 0))
    assert is_known_object(ROOT, B + (7, 1))
    assert not is_known_object(ROOT, V + (1, 1))  # the index column is not-accessible
    assert not is_known_object(ROOT, V + (21, 1))
    assert not is_known_object(ROOT, ROOT + (1, 1, 14, 0))
    assert not is_known_object(ROOT, ROOT + (1, 4))
    assert not is_known_object(ROOT, (1, 3, 6, 1, 2, 1, 1, 3, 0))


def _replace_row(snap: Snapshot, index: int, **counters) -> Snapshot:
    rows = tuple(
        dataclasses.replace(r, counters=dataclasses.replace(r.counters, **counters))
        if r.vip.index == index
        else r
        for r in snap.rows
    )
    return dataclasses.replace(snap, rows=rows)


def test_bad_values_dropped_rest_served_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    once = OnceLogger(logging.getLogger("agentx_lb.pipeline"))  # as a Pipeline keeps one
    good = build_table(make_snapshot(), ROOT)
    snap = _replace_row(make_snapshot(), 5, first_packets=-1, untracked_packets=2**64)
    vip6 = snap.rows[5].vip
    long_name_backend = Backend(address="10.0.6.9", buckets=2**32, flows=1, used=True)
    rows = list(snap.rows)
    rows[5] = dataclasses.replace(
        rows[5], vip=dataclasses.replace(vip6, backends=vip6.backends + (long_name_backend,))
    )
    snap = dataclasses.replace(snap, rows=tuple(rows))
    with caplog.at_level(logging.DEBUG, logger="agentx_lb.pipeline"):
        bad = build_table(snap, ROOT)
        log_drops(once, bad.drops)  # what the pipeline does with each table it builds
        log_drops(once, build_table(snap, ROOT).drops)
    assert bad.get(V + (15, 5)) is None
    assert bad.get(V + (16, 5)) is None
    assert bad.get(B + (5, 6, 1, 4, 10, 0, 6, 9)) is None  # buckets 2**32 rejected
    assert bad.get(B + (6, 6, 1, 4, 10, 0, 6, 9)) is not None  # the same row's flows served
    assert bad.get(V + (14, 5)) == good.get(V + (14, 5))
    assert bad.dropped == 3
    # every other cell of the good table is still there, byte for byte
    for oid, vb in zip(good.oids, good.varbinds):
        # (VIP 6 gained a backend, so its two count columns differ on purpose)
        if oid not in (V + (15, 5), V + (16, 5), V + (11, 6), V + (12, 6)):
            assert bad.get(oid) == vb, oid
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # one warning per (column, problem), none for the second build
    assert len(warnings) == 3
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 3


@pytest.mark.parametrize(
    "field,value",
    [("next_packets", 1.5), ("next_packets", True), ("next_packets", None), ("route_octets", -5)],
)
def test_type_checks(field: str, value: object) -> None:
    snap = _replace_row(make_snapshot(), 2, **{field: value})
    t = build_table(snap, ROOT)
    col = {f.name: 14 + i for i, f in enumerate(dataclasses.fields(VipCounters))}[field]
    assert t.get(V + (col, 2)) is None
    assert t.get(V + (col, 3)) is not None


def test_display_string_limits() -> None:
    snap = make_snapshot()
    h = dataclasses.replace(snap.health, vpp_version="x" * 256, last_error="é" * 300)
    t = build_table(dataclasses.replace(snap, health=h), ROOT)
    assert t.get(ROOT + AGENT + (AgentScalar.VPP_VERSION, 0)) is None  # too long: dropped
    vb = t.get(ROOT + AGENT + (AgentScalar.LAST_ERROR, 0))
    assert vb is not None
    _, typ, val = decode(vb)
    assert isinstance(val, Sized)
    assert typ == 4 and len(val) == 255  # the error text is cut, not dropped


def test_bad_vip_index_and_duplicates_dropped() -> None:
    snap = make_snapshot(indices=(1, 2))
    zero = dataclasses.replace(snap.rows[0], vip=dataclasses.replace(snap.rows[0].vip, index=0))
    t = build_table(dataclasses.replace(snap, rows=(*snap.rows, zero, snap.rows[1])), ROOT)
    names = [o for o in t.oids if o[: len(V) + 1] == V + (2,)]
    assert names == [V + (2, 1), V + (2, 2)]


def test_encoding_layout(table) -> None:
    vb = table.get(V + (14, 1))
    vtype, reserved, n_sub, prefix, include, _ = struct.unpack_from("!HHBBBB", vb)
    assert (vtype, reserved, prefix, include) == (70, 0, 4, 0)
    assert n_sub == len(V) + 2 - 5
    assert vb[8:] == pack_oid(V[5:] + (14, 1)) + (2**64 - 1).to_bytes(8, "big")


def test_empty_table() -> None:
    t = build_table(Snapshot(), ROOT)
    assert [o[len(ROOT) + 2] for o in t.oids] == list(range(1, 10))
    assert t.next_after(V, True) == len(t)
