"""The responder's GetNext fast path (cursor) and walk pins: each walk keeps its table."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyagentx3.pdu import PDU

from agentx_lb.agentx import MAX_PINS, Connection, LbAgent
from agentx_lb.oids import DEFAULT_ROOT, VIP_ENTRY, VipColumn, parse_oid
from agentx_lb.table import Table, build_table, encode_oid
from fakes import FakeClock
from snmpfixtures import make_snapshot

ROOT = DEFAULT_ROOT
V = ROOT + VIP_ENTRY
GETNEXT = 6
ROOT_END = ROOT[:-1] + (ROOT[-1] + 1,)
# Scraped at t=1000 s (monotonic): agents here run on a `FakeClock` from there.
TABLES = (
    build_table(make_snapshot(taken_at=1000.0), ROOT),
    build_table(make_snapshot(indices=(1, 2, 7), taken_at=1000.0), ROOT),
)


def getnext(start: bytes, end: tuple = ROOT_END, packet_id: int = 7, session: int = 42) -> bytes:
    """A one-range GetNext; `start` is an AgentX wire OID (as snmpd echoes it)."""
    payload = start + encode_oid(end)
    return (
        struct.pack("!BBBBIIII", 1, GETNEXT, 0x10, 0, session, 3, packet_id, len(payload)) + payload
    )


def wire_oid(table: Table, i: int) -> bytes:
    """The AgentX OID of cell i as it appears in our varbind (what snmpd sends back)."""
    vb = table.varbind(i)
    return vb[4 : 8 + 4 * vb[4]]


def make_agent(**kw) -> LbAgent:
    kw.setdefault("clock", FakeClock(step=0.001))
    return LbAgent("/nonexistent/agentx.sock", ROOT, **kw)


def reference(table: Table, pdu: bytes) -> bytes | None:
    """The general path's answer: a fresh agent has no cursor."""
    fresh = make_agent()
    fresh.publish(table)
    return fresh.handle(pdu)


def test_sequential_walk_is_fast_and_equal() -> None:
    table = TABLES[0]
    agent = make_agent()
    agent.publish(table)
    pdu = getnext(encode_oid(ROOT))
    seen = []
    for k in range(len(table)):
        out = agent.handle(pdu)
        assert out == reference(table, pdu)
        assert out is not None
        vb = out[28:]
        seen.append(vb[4 : 8 + 4 * vb[4]])
        pdu = getnext(seen[-1], packet_id=k + 8)
    assert seen == [wire_oid(table, i) for i in range(len(table))]
    # All but the first (no cursor yet) and vppLbAgentTableAge (answered live).
    assert agent.fast_answers == len(table) - 2


def test_past_the_last_cell_and_end_bounds() -> None:
    table = TABLES[0]
    agent = make_agent()
    agent.publish(table)
    last = len(table) - 1
    agent.handle(getnext(wire_oid(table, last - 1)))  # cursor at last - 1 ...
    agent.handle(getnext(wire_oid(table, last - 1)))  # ... then at last
    out = agent.handle(getnext(wire_oid(table, last)))
    assert out == reference(table, getnext(wire_oid(table, last)))
    assert out is not None
    assert out[28:30] == struct.pack("!H", 130)  # endOfMibView
    # An end bound inside the table: the cell at the bound is not served.
    i = table.locate(table.root_key + struct.pack("!IIII", *VIP_ENTRY, VipColumn.NAME), True) + 3
    bound = table.oid(i + 1)
    agent.handle(getnext(wire_oid(table, i - 1), bound))
    pdu = getnext(wire_oid(table, i), bound)
    out = agent.handle(pdu)
    assert out == reference(table, pdu)
    assert out is not None
    assert out[28:30] == struct.pack("!H", 130)


def _cell(table: Table, index: int, column: int = 2) -> int:
    """Position of vppLbVipEntry.column.index in `table`."""
    return table.locate(table.root_key + struct.pack("!IIIII", *VIP_ENTRY, column, index), True)


def _head(out: bytes | None) -> bytes:
    """The wire OID of a one-varbind answer: where its walk goes on from."""
    assert out is not None
    vb = out[28:]
    return vb[4 : 8 + 4 * vb[4]]


def test_a_walk_continues_on_its_table_after_a_publish() -> None:
    old, new = TABLES
    agent = make_agent()
    agent.publish(old)
    i = _cell(old, 2)
    agent.handle(getnext(wire_oid(old, i - 1)))
    agent.publish(new)
    pdu = getnext(wire_oid(old, i))  # V.2.2: next in `new` is V.2.7, in `old` V.2.3
    out = agent.handle(pdu)
    assert out == reference(old, pdu)
    assert out != reference(new, pdu)
    # A walk that starts now (not from a head) sees the newest table.
    fresh = getnext(encode_oid(V + (2,)))
    assert agent.handle(fresh) == reference(new, fresh)


def test_a_walk_moves_to_the_newest_table_once_its_table_is_too_old() -> None:
    old, new = TABLES
    clock = FakeClock(step=0.001)
    agent = make_agent(max_age_s=5.0, clock=clock)
    agent.publish(old)
    i = _cell(old, 2)
    agent.handle(getnext(wire_oid(old, i - 1)))
    new = build_table(make_snapshot(indices=(1, 2, 7), taken_at=1003.0), ROOT)
    agent.publish(new)  # scraped 3 s after `old`
    clock.now += 4.0
    pdu = getnext(wire_oid(old, i))
    out = agent.handle(pdu)
    assert out == reference(old, pdu)  # its scrape 4 s old: still the walk's table
    clock.now += 2.0
    pdu = getnext(_head(out))
    out = agent.handle(pdu)
    assert out == reference(new, pdu)  # 6 s (> 5 s): moved to the newest ...
    pdu = getnext(_head(out))
    assert agent.handle(pdu) == reference(new, pdu)  # ... and stays there


def test_interleaved_walks_each_keep_their_own_table() -> None:
    """Two walks through one session (two clients behind one snmpd), a publish
    between their starts: each sees only the table it started on."""
    old, new = TABLES
    agent = make_agent()
    agent.publish(old)
    heads = {"a": _head(agent.handle(getnext(encode_oid(V + (2,)))))}
    agent.publish(new)
    heads["b"] = encode_oid(V + (2,))
    tables = {"a": old, "b": new}
    for step in range(30):
        for walk in ("a", "b"):
            pdu = getnext(heads[walk], packet_id=step)
            out = agent.handle(pdu)
            assert out == reference(tables[walk], pdu), (walk, step)
            heads[walk] = _head(out)


def getnext_ranges(starts: list[bytes], packet_id: int = 7) -> bytes:
    """A GetNext with one range per start (snmptable asks a row per request)."""
    payload = b"".join(start + encode_oid(ROOT_END) for start in starts)
    return struct.pack("!BBBBIIII", 1, GETNEXT, 0x10, 0, 42, 3, packet_id, len(payload)) + payload


def test_a_row_by_row_walk_continues_on_its_table_after_a_publish() -> None:
    old, new = TABLES
    agent = make_agent()
    agent.publish(old)
    columns = [encode_oid(V + (2,)), encode_oid(V + (14,))]  # name and next-packets
    pdu = getnext_ranges(columns)
    out = agent.handle(pdu)
    assert out == reference(old, pdu)
    agent.publish(new)
    for k in range(5):  # rows 2..6: `old` has 1..12, `new` only 1, 2, 7
        assert out is not None
        decoder = PDU()
        decoder.set_decode_buf(out[28:])
        starts = [encode_oid(parse_oid(decoder.decode_value()[0]["name"])) for _ in columns]
        pdu = getnext_ranges(starts, packet_id=k)
        out = agent.handle(pdu)
        assert out == reference(old, pdu), k
        assert k == 0 or out != reference(new, pdu), k  # from row 2 on they differ


def test_two_walks_meeting_at_one_oid_go_on_from_the_newer_table() -> None:
    old, new = TABLES
    agent = make_agent()
    agent.publish(old)
    b = _head(agent.handle(getnext(encode_oid(V + (2,)))))  # walk B on `old` at V.2.1
    agent.publish(new)
    a = _head(agent.handle(getnext(encode_oid(V + (2, 1, 5)))))  # walk A on `new` at V.2.2
    b = _head(agent.handle(getnext(b)))  # B goes on in `old`: also at V.2.2
    assert a == b == wire_oid(new, _cell(new, 2))
    pdu = getnext(a)  # from V.2.2: A's or B's request, it cannot be told
    assert agent.handle(pdu) == reference(new, pdu)  # V.2.7, never `old`'s V.2.3


def test_walk_pins_are_bounded_and_dropped_when_idle_at_a_publish() -> None:
    table = TABLES[0]
    clock = FakeClock(step=0.001)
    agent = make_agent(clock=clock, pin_idle_s=5.0)
    agent.publish(table)
    for i in range(200):  # 200 walks started, none continued
        agent.handle(getnext(wire_oid(table, (i * 7) % len(table)), packet_id=i))
    pins = agent.responder.pins
    assert 0 < len(pins) <= MAX_PINS + 1
    clock.now += 4.0
    agent.publish(TABLES[1])  # used within the interval: kept
    assert len(pins) > 1
    clock.now += 2.0
    agent.publish(TABLES[0])  # no walk used them for an interval: dropped, no request needed
    assert len(pins) == 0


_STEP = st.one_of(
    st.tuples(st.just("next")),  # continue from the last answer (the fast path)
    st.tuples(st.just("resume"), st.integers(0, 400)),  # continue an earlier walk
    st.tuples(st.just("jump"), st.integers(0, 400)),  # any cell, include 0
    st.tuples(st.just("include"), st.integers(0, 400)),  # include 1: general path
    st.tuples(st.just("bound"), st.integers(0, 400)),  # end bound inside the table
    st.tuples(st.just("publish"), st.integers(0, 1)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=40))
def test_any_sequence_equals_the_walk_model(steps: list[tuple]) -> None:
    """Fast path and general path together answer exactly what this model says:
    a GetNext (include 0) from the OID of an earlier answer goes on in that
    answer's table, once; anything else uses the newest table; two walks at
    one OID share the newer of their tables. (The fake clock moves 1 ms per
    read: no pin is idle for an interval here.)"""
    agent = make_agent()
    current = (TABLES[0], 0)  # (table, publish number)
    agent.publish(current[0])
    walks: dict[bytes, tuple[Table, int]] = {}  # head OID -> (table, publish number)
    answered: list[bytes] = []
    last = encode_oid(ROOT)
    for pid, step in enumerate(steps):
        end: tuple = ROOT_END
        if step[0] == "publish":
            current = (TABLES[step[1]], current[1] + 1)
            agent.publish(current[0])
            continue
        table = current[0]
        if step[0] == "next":
            start = last
        elif step[0] == "resume":
            if not answered:
                continue
            start = answered[step[1] % len(answered)]
        else:
            i = step[1] % len(table)
            start = wire_oid(table, i)
            if step[0] == "include":
                start = start[:2] + b"\x01" + start[3:]
            elif step[0] == "bound":
                end = table.oid(min(i + 1 + step[1] % 3, len(table) - 1))
        walk = walks.pop(start, None) if start[2] == 0 else None
        on = walk or current
        pdu = getnext(start, end, packet_id=pid)
        out = agent.handle(pdu)
        assert out == reference(on[0], pdu)
        assert out is not None
        vb = out[28:]
        if struct.unpack_from("!H", vb)[0] < 128:  # a value, not an exception: walk on from it
            last = vb[4 : 8 + 4 * vb[4]]
            other = walks.get(last)
            walks[last] = other if other is not None and other[1] > on[1] else on
            answered.append(last)


@contextlib.contextmanager
def _master() -> Iterator[tuple[Connection, socket.socket]]:
    """A connected (session in serving mode, master side) pair on a temp socket."""
    d = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    path = os.path.join(d, "m.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(path)
        srv.listen(1)
        session = Connection(path, "t")
        session.connect()
        conn, _ = srv.accept()
        try:
            with conn:
                session.to_blocking()
                yield session, conn
        finally:
            session.close()
    finally:
        srv.close()
        os.unlink(path)
        os.rmdir(d)


def test_recv_one_pdu_per_read_and_split_reads() -> None:
    with _master() as (session, conn):
        a, b = getnext(encode_oid(ROOT), packet_id=1), getnext(encode_oid(V), packet_id=2)
        conn.sendall(a)
        assert session.recv_blocking() == a  # whole PDU in one read
        conn.sendall(b[:10])  # the rest arrives while recv_blocking waits

        def send_rest() -> None:
            conn.sendall(b[10:30])
            conn.sendall(b[30:])

        rest = threading.Timer(0.05, send_rest)
        rest.start()
        assert session.recv_blocking() == b
        rest.join()
        conn.sendall(a + b)  # two PDUs in one read
        assert session.recv_blocking() == a
        assert session.recv_blocking() == b
        assert not session._recv_buf


# Long enough for the sending thread to get the GIL (switch interval 5 ms) and send.
SPIN_NS = 100_000_000


def test_spin_catches_a_pdu_sent_during_it() -> None:
    a = getnext(encode_oid(ROOT), packet_id=1)
    with _master() as (session, conn):
        sender = threading.Timer(0.001, conn.sendall, (a,))
        sender.start()
        assert session._recv_soon(SPIN_NS) == a  # read by the spin, not a blocking read
        sender.join()


def test_spin_gives_up_after_its_time() -> None:
    with _master() as (session, _conn):
        t0 = time.perf_counter_ns()
        assert session._recv_soon(SPIN_NS) is None
        assert time.perf_counter_ns() - t0 >= SPIN_NS


def test_spinning_read_falls_back_to_a_blocking_read() -> None:
    """Nothing within the spin: the read blocks until the PDU comes (split ones too)."""
    a = getnext(encode_oid(ROOT), packet_id=1)
    with _master() as (session, conn):

        def send_split() -> None:
            conn.sendall(a[:10])
            conn.sendall(a[10:])

        sender = threading.Timer(0.1, send_split)
        sender.start()
        t0 = time.monotonic()
        assert session.recv_blocking(1000) == a
        assert time.monotonic() - t0 >= 0.09
        sender.join()


def test_spinning_read_sees_the_master_close() -> None:
    with _master() as (session, conn):
        conn.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionError):
            session.recv_blocking(SPIN_NS)
