"""agentx.py's GetNext fast path (cursor) answers exactly what the general path does."""

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
from snmpfixtures import make_snapshot

from agentx_lb.agentx import LbAgent, _Session
from agentx_lb.oids import DEFAULT_ROOT, VIP_ENTRY
from agentx_lb.table import Table, build_table, encode_oid

ROOT = DEFAULT_ROOT
V = ROOT + VIP_ENTRY
GETNEXT = 6
ROOT_END = ROOT[:-1] + (ROOT[-1] + 1,)
TABLES = (
    build_table(make_snapshot(), ROOT),
    build_table(make_snapshot(indices=(1, 2, 7)), ROOT),
)


def getnext(start: bytes, end: tuple = ROOT_END, packet_id: int = 7, session: int = 42) -> bytes:
    """A one-range GetNext; `start` is an AgentX wire OID (as snmpd echoes it)."""
    payload = start + encode_oid(end)
    return struct.pack("!BBBBIIII", 1, GETNEXT, 0x10, 0, session, 3, packet_id, len(payload)) + payload


def wire_oid(table: Table, i: int) -> bytes:
    """The AgentX OID of cell i as it appears in our varbind (what snmpd sends back)."""
    vb = table.varbind(i)
    return vb[4 : 8 + 4 * vb[4]]


def reference(table: Table, pdu: bytes) -> bytes | None:
    """The general path's answer: a fresh agent has no cursor."""
    fresh = LbAgent("/nonexistent/agentx.sock", ROOT)
    fresh.publish(table)
    return fresh.handle(pdu)


def test_sequential_walk_is_fast_and_equal() -> None:
    table = TABLES[0]
    agent = LbAgent("/nonexistent/agentx.sock", ROOT)
    agent.publish(table)
    pdu = getnext(encode_oid(ROOT))
    seen = []
    for k in range(len(table)):
        out = agent.handle(pdu)
        assert out == reference(table, pdu)
        vb = out[28:]
        seen.append(vb[4 : 8 + 4 * vb[4]])
        pdu = getnext(seen[-1], packet_id=k + 8)
    assert seen == [wire_oid(table, i) for i in range(len(table))]
    assert agent.fast_answers == len(table) - 1  # all but the first (no cursor yet)


def test_past_the_last_cell_and_end_bounds() -> None:
    table = TABLES[0]
    agent = LbAgent("/nonexistent/agentx.sock", ROOT)
    agent.publish(table)
    last = len(table) - 1
    agent.handle(getnext(wire_oid(table, last - 1)))  # cursor at last - 1 ...
    agent.handle(getnext(wire_oid(table, last - 1)))  # ... then at last
    out = agent.handle(getnext(wire_oid(table, last)))
    assert out == reference(table, getnext(wire_oid(table, last)))
    assert out[28:30] == struct.pack("!H", 130)  # endOfMibView
    # An end bound inside the table: the cell at the bound is not served.
    i = table.locate(table.root_key + struct.pack("!IIII", *VIP_ENTRY, 2), True) + 3
    bound = table.oid(i + 1)
    agent.handle(getnext(wire_oid(table, i - 1), bound))
    pdu = getnext(wire_oid(table, i), bound)
    out = agent.handle(pdu)
    assert out == reference(table, pdu)
    assert out[28:30] == struct.pack("!H", 130)


def test_publish_drops_the_cursor_to_the_old_table() -> None:
    old, new = TABLES
    agent = LbAgent("/nonexistent/agentx.sock", ROOT)
    agent.publish(old)
    i = old.locate(old.root_key + struct.pack("!IIIII", *VIP_ENTRY, 2, 2), True)
    agent.handle(getnext(wire_oid(old, i - 1)))
    agent.publish(new)
    pdu = getnext(wire_oid(old, i))  # V.2.2: next in `new` is V.2.7, in `old` V.2.3
    out = agent.handle(pdu)
    assert out == reference(new, pdu)
    assert out != reference(old, pdu)


_STEP = st.one_of(
    st.tuples(st.just("next")),  # continue from the last answer (the fast path)
    st.tuples(st.just("jump"), st.integers(0, 400)),  # any cell, include 0
    st.tuples(st.just("include"), st.integers(0, 400)),  # include 1: general path
    st.tuples(st.just("bound"), st.integers(0, 400)),  # end bound inside the table
    st.tuples(st.just("publish"), st.integers(0, 1)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=40))
def test_any_sequence_equals_the_general_path(steps: list[tuple]) -> None:
    agent = LbAgent("/nonexistent/agentx.sock", ROOT)
    table = TABLES[0]
    agent.publish(table)
    last = encode_oid(ROOT)
    for pid, step in enumerate(steps):
        end: tuple = ROOT_END
        if step[0] == "publish":
            table = TABLES[step[1]]
            agent.publish(table)
            continue
        if step[0] == "next":
            start = last
        else:
            i = step[1] % len(table)
            start = wire_oid(table, i)
            if step[0] == "include":
                start = start[:2] + b"\x01" + start[3:]
            elif step[0] == "bound":
                end = table.oid(min(i + 1 + step[1] % 3, len(table) - 1))
        pdu = getnext(start, end, packet_id=pid)
        out = agent.handle(pdu)
        assert out == reference(table, pdu)
        vb = out[28:]
        if struct.unpack_from("!H", vb)[0] < 128:  # a value, not an exception: walk on from it
            last = vb[4 : 8 + 4 * vb[4]]


@contextlib.contextmanager
def _master() -> Iterator[tuple[_Session, socket.socket]]:
    """A connected (session in serving mode, master side) pair on a temp socket."""
    d = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    path = os.path.join(d, "m.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(path)
        srv.listen(1)
        session = _Session(path, "t", ROOT)
        session._connect()
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
        rest = threading.Timer(0.05, lambda: (conn.sendall(b[10:30]), conn.sendall(b[30:])))
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
        sender = threading.Timer(0.1, lambda: (conn.sendall(a[:10]), conn.sendall(a[10:])))
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
