"""agentx.py against a fake AgentX master (no snmpd): requests, framing, lifecycle."""

from __future__ import annotations

import math
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyagentx3.pdu import PDU

from agentharness import ScriptedMaster
from agentx_lb.agentx import Connection, LbAgent, ProtocolError
from agentx_lb.agentx.codec import HDR_LEN
from agentx_lb.oids import DEFAULT_ROOT, VIP_ENTRY, parse_oid
from agentx_lb.table import Table, build_table, encode_oid
from snmpfixtures import make_snapshot

ROOT = DEFAULT_ROOT
V = ROOT + VIP_ENTRY
GET, GETNEXT, GETBULK, CLOSE, RESPONSE = 5, 6, 7, 2, 18
END_OF_MIB, NO_SUCH_OBJECT, NO_SUCH_INSTANCE = 130, 128, 129


def request(
    ptype: int, ranges, *, packet_id: int = 7, body: bytes = b"", le: bool = False
) -> bytes:
    """A request PDU; ranges = [(start, end, include)]."""
    payload = body
    for start, end, include in ranges:
        payload += encode_oid(start, include) + encode_oid(end)
    if le:  # little-endian variant: flags without NETWORK_BYTE_ORDER
        payload = body + b"".join(_le_oid(s, i) + _le_oid(e, 0) for s, e, i in ranges)
        return struct.pack("<BBBBIIII", 1, ptype, 0, 0, 42, 1, packet_id, len(payload)) + payload
    return struct.pack("!BBBBIIII", 1, ptype, 0x10, 0, 42, 1, packet_id, len(payload)) + payload


def _le_oid(oid, include: int) -> bytes:
    return struct.pack(f"<BBBB{len(oid)}I", len(oid), 0, include, 0, *oid)


def decode_response(buf: bytes) -> tuple[int, int, int, list[tuple[int, tuple, object]]]:
    """(packet_id, error, index, [(type, oid, value)]) via pyagentx3's decoder."""
    pdu = PDU()
    pdu.decode(buf)
    assert pdu.type == RESPONSE
    return (
        pdu.packet_id,
        pdu.response["error"],
        pdu.response["index"],
        [(v["type"], parse_oid(v["name"]), v["data"]) for v in pdu.values],
    )


@pytest.fixture
def agent() -> LbAgent:
    a = LbAgent("/nonexistent/agentx.sock", ROOT, max_age_s=math.inf)
    a.publish(build_table(make_snapshot(), ROOT))
    return a


def answer(agent: LbAgent, pdu: bytes):
    out = agent.handle(pdu)
    assert out is not None
    return decode_response(out)


def test_get_found_missing_instance_missing_object(agent: LbAgent) -> None:
    _, err, _, vbs = answer(
        agent,
        request(
            GET,
            [
                (V + (2, 10), (), 0),
                (V + (2, 13), (), 0),
                (V + (21, 1), (), 0),
                (ROOT + (1, 1, 11, 0), (), 0),
                (ROOT + (7,), (), 0),
            ],
        ),
    )
    assert err == 0
    assert vbs[0] == (4, V + (2, 10), b"2001:db8::a/128 tcp/80")
    assert [(t, o) for t, o, _ in vbs[1:]] == [
        (NO_SUCH_INSTANCE, V + (2, 13)),
        (NO_SUCH_OBJECT, V + (21, 1)),
        (NO_SUCH_INSTANCE, ROOT + (1, 1, 11, 0)),  # a known scalar that is not exposed
        (NO_SUCH_OBJECT, ROOT + (7,)),
    ]


def test_getnext_exact_vanished_past_end(agent: LbAgent) -> None:
    end = ROOT[:-1] + (ROOT[-1] + 1,)
    _, _, _, vbs = answer(
        agent,
        request(
            GETNEXT,
            [
                (V + (2, 9), end, 0),
                (V + (2, 50), end, 0),
                (V + (2, 101), end, 0),
                (ROOT + (1, 4), end, 0),
                (ROOT[:-1], end, 0),
            ],
        ),
    )
    assert [o for _, o, _ in vbs] == [
        V + (2, 10),
        V + (2, 99),
        V + (3, 1),
        ROOT + (1, 4),
        ROOT + (1, 1, 1, 0),
    ]
    assert vbs[2][0] == 2 and vbs[3][0] == END_OF_MIB  # past the table: leave our subtree


def test_getnext_include_and_end_bound(agent: LbAgent) -> None:
    _, _, _, vbs = answer(
        agent,
        request(
            GETNEXT,
            [(V + (2, 9), (), 1), (V + (2, 9), V + (2, 10), 0), (V + (2, 9), V + (2, 11), 0)],
        ),
    )
    assert [(t, o) for t, o, _ in vbs] == [
        (4, V + (2, 9)),
        (END_OF_MIB, V + (2, 9)),  # the end OID is exclusive
        (4, V + (2, 10)),
    ]


def test_getbulk_exact(agent: LbAgent) -> None:
    body = struct.pack("!HH", 1, 3)
    *_, before_last, last = agent.table.oids
    _, err, _, vbs = answer(
        agent,
        request(
            GETBULK, [(V + (2, 1), (), 0), (V + (2, 11), (), 0), (before_last, (), 0)], body=body
        ),
    )
    assert err == 0
    types_oids = [(t, o) for t, o, _ in vbs]
    assert types_oids[0] == (4, V + (2, 2))
    # repeaters interleave: (col2 walk, tail walk) per repetition
    assert types_oids[1] == (4, V + (2, 12))
    assert types_oids[2][1] == last
    assert types_oids[3] == (4, V + (2, 99))
    assert types_oids[4][0] == END_OF_MIB
    assert types_oids[5] == (4, V + (2, 100))
    assert types_oids[6][0] == END_OF_MIB
    assert len(vbs) == 7


def test_little_endian_request(agent: LbAgent) -> None:
    _, _, _, vbs = answer(agent, request(GETNEXT, [(V + (2, 9), (), 0)], le=True))
    assert vbs[0][1] == V + (2, 10)


def test_each_pdu_sees_one_table(agent: LbAgent) -> None:
    old = agent.table
    _, _, _, before = answer(agent, request(GET, [(V + (2, 1), (), 0)]))
    agent.publish(build_table(make_snapshot(indices=(1, 2)), ROOT))
    _, _, _, after = answer(agent, request(GET, [(V + (2, 99), (), 0)]))
    assert before[0][0] == 4 and after[0][0] == NO_SUCH_INSTANCE
    assert agent.table is not old


@pytest.mark.parametrize(
    "pdu",
    [
        request(GET, [(V + (2, 1), (), 0)])[:-4],  # payload shorter than its OID
        struct.pack("!BBBBIIII", 1, GETNEXT, 0x10, 0, 1, 1, 1, 4) + b"\x05\x00\x00\x00",
        struct.pack("!BBBBIIII", 1, GETBULK, 0x10, 0, 1, 1, 1, 2) + b"\x00\x01",
        struct.pack("!BBBBIIII", 1, GET, 0x18, 0, 1, 1, 1, 4) + b"\x00\x00\x00\x09",  # context
    ],
)
def test_malformed_request_parse_error(agent: LbAgent, pdu: bytes) -> None:
    fixed = pdu[:16] + struct.pack("!I", len(pdu) - 20) + pdu[20:]
    out = agent.handle(fixed)
    assert out is not None
    assert struct.unpack_from("!H", out, 24)[0] == 266  # parseError


def test_unknown_and_set_pdus(agent: LbAgent) -> None:
    assert agent.handle(struct.pack("!BBBBIIII", 1, 99, 0x10, 0, 1, 1, 1, 0)) is None
    assert agent.handle(struct.pack("!BBBBIIII", 2, GET, 0x10, 0, 1, 1, 1, 0)) is None
    out = agent.handle(struct.pack("!BBBBIIII", 1, 8, 0x10, 0, 1, 1, 1, 0))
    assert out is not None
    assert struct.unpack_from("!HH", out, 24) == (17, 1)  # testSet: notWritable


def test_publish_rejects_other_root(agent: LbAgent) -> None:
    with pytest.raises(ValueError):
        agent.publish(Table.empty((1, 3, 6, 1, 4, 1, 1)))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=8),
    seed_type=st.sampled_from([5, 6, 7, 8, 99]),
)
def test_fuzz_stream_never_crashes(agent: LbAgent, chunks: list[bytes], seed_type: int) -> None:
    """Arbitrary bytes over a socketpair: only ProtocolError/ConnectionError may escape."""
    a, b = socket.socketpair()
    try:
        session = Connection("/unused", "fuzz")
        session.socket = a
        # bias some chunks towards plausible headers
        data = b"".join(chunks)
        if data:
            data = bytes((1, seed_type, data[0] & 0x18)) + data[1:]
        b.sendall(data)
        b.shutdown(socket.SHUT_WR)
        try:
            # Each turn reads, consumes a PDU (at least HDR_LEN octets) or ends the
            # stream: a session that does neither fails here instead of hanging.
            for _ in range(len(data) // HDR_LEN + 10):
                pdu = session.recv_pdu(0.01)
                if pdu is None:
                    continue
                out = agent.handle(pdu)
                if out is not None:
                    decode_response(out)  # every answer is a well-formed Response
            else:
                pytest.fail(f"{len(data)} octets neither consumed nor refused")
        except (ProtocolError, ConnectionError):
            pass
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------- the run loop


@pytest.fixture
def master(short_tmpdir: str) -> Iterator[ScriptedMaster]:
    m = ScriptedMaster(os.path.join(short_tmpdir, "m.sock"))
    yield m
    m.close()


@pytest.fixture
def running(master: ScriptedMaster) -> Iterator[tuple[LbAgent, threading.Event, threading.Thread]]:
    a = LbAgent(master.path, ROOT, timeout_s=4, priority=100)
    a.publish(build_table(make_snapshot(), ROOT))
    stop = threading.Event()
    t = threading.Thread(target=a.run, args=(stop,), daemon=True)
    t.start()
    yield a, stop, t
    stop.set()
    t.join(5)
    assert not t.is_alive()


def test_open_register_and_get_in_pieces(master: ScriptedMaster, running) -> None:
    conn, open_pdu, reg = master.accept()
    with conn:
        assert open_pdu[20] == 4  # our timeout
        timeout, priority = reg[20], reg[21]
        assert (timeout, priority) == (4, 100)
        assert reg[24:] == encode_oid(ROOT)
        pdu = request(GET, [(V + (2, 1), (), 0)], packet_id=11)
        for piece in (pdu[:7], pdu[7:30], pdu[30:]):  # a PDU in three reads
            conn.sendall(piece)
            time.sleep(0.05)
        pid, err, _, vbs = decode_response(master.read_pdu(conn))
        assert (pid, err, vbs[0][2]) == (11, 0, b"192.0.2.1/32 tcp/80")
        # two PDUs in one write, with an unknown type in between
        junk = struct.pack("!BBBBIIII", 1, 99, 0x10, 0, 42, 1, 12, 0)
        conn.sendall(junk + request(GETNEXT, [(V + (2, 1), (), 0)], packet_id=13))
        pid, _, _, vbs = decode_response(master.read_pdu(conn))
        assert (pid, vbs[0][1]) == (13, V + (2, 2))
        assert running[0].connected
        running[1].set()  # stop: a clean Close follows
        close = master.read_pdu(conn)
        assert close[1] == CLOSE and close[20] == 5


def test_reconnect_after_garbage_and_master_close(master: ScriptedMaster, running) -> None:
    conn, _, _ = master.accept()
    conn.sendall(struct.pack("!BBBBIIII", 1, GET, 0x10, 0, 1, 1, 1, 0x7FFFFFFF))  # absurd length
    conn2, _, _ = master.accept()  # the agent dropped the stream and came back
    conn.close()
    conn2.sendall(struct.pack("!BBBBIIII", 1, CLOSE, 0x10, 0, 42, 1, 1, 4) + b"\x01\x00\x00\x00")
    conn3, _, _ = master.accept()  # after the master's Close: a new session, fresh buffer
    conn2.close()
    with conn3:
        conn3.sendall(request(GET, [(V + (2, 2), (), 0)], packet_id=5))
        _, err, _, vbs = decode_response(master.read_pdu(conn3))
        assert err == 0 and vbs[0][2] == b"192.0.2.2/32 tcp/80"
    assert running[0].sessions == 3


def test_register_refused_is_retried(short_tmpdir: str) -> None:
    m = ScriptedMaster(os.path.join(short_tmpdir, "r.sock"), register_error=263)
    a = LbAgent(m.path, ROOT)
    stop = threading.Event()
    t = threading.Thread(target=a.run, args=(stop,), daemon=True)
    t.start()
    try:
        conn, _, _ = m.accept()
        close = m.read_pdu(conn)  # refused: the agent closes the session...
        assert close[1] == CLOSE
        conn.close()
        m.register_error = 0
        conn2, _, _ = m.accept()  # ...and tries again
        conn2.close()
    finally:
        stop.set()
        t.join(5)
        m.close()
    assert not t.is_alive()


def test_stop_while_master_absent(short_tmpdir: str) -> None:
    a = LbAgent(os.path.join(short_tmpdir, "none.sock"), ROOT)
    stop = threading.Event()
    t = threading.Thread(target=a.run, args=(stop,), daemon=True)
    t.start()
    time.sleep(1.0)  # let the backoff grow
    stop.set()
    t.join(2)
    assert not t.is_alive()
    assert not a.connected
