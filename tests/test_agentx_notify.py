"""Notify PDUs from the session to a fake AgentX master (no snmpd): the PDU on the
wire, the Response matched in the request stream, the queue while no session
is registered, requeue of unanswered ones, the bounded outbox."""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Iterator

import pytest

from agentharness import ScriptedMaster
from agentx_lb.agentx import LbAgent
from agentx_lb.agentx.codec import FLAG_CONTEXT, FLAG_NBO, NOTIFY, Pdu
from agentx_lb.agentx.outbox import Outbox
from agentx_lb.notify import Notification, encode
from agentx_lb.oids import DEFAULT_ROOT, SNMP_TRAP_OID_0, NotificationType, encode_oid
from agentx_lb.table import build_table
from snmpfixtures import make_snapshot
from test_agentx import GET, V, decode_response, request

ROOT = DEFAULT_ROOT
PROCESSING_ERROR = 268


def note(i: int) -> bytes:
    n = Notification(NotificationType.VIP_OPER_STATUS_CHANGE, (i,), (f"vip {i}", 2, 0))
    return encode(n, ROOT)


def respond_to(master: ScriptedMaster, conn, pdu: bytes, error: int = 0) -> None:
    master.respond(conn, pdu, error)


@pytest.fixture
def master(short_tmpdir: str) -> Iterator[ScriptedMaster]:
    m = ScriptedMaster(os.path.join(short_tmpdir, "n.sock"))
    yield m
    m.close()


@pytest.fixture
def agent(master: ScriptedMaster) -> Iterator[LbAgent]:
    a = LbAgent(master.path, ROOT, notifications=True, outbox_max=5)
    a.publish(build_table(make_snapshot(), ROOT))
    stop = threading.Event()
    t = threading.Thread(target=a.run, args=(stop,), daemon=True)
    t.start()
    yield a
    stop.set()
    t.join(5)
    assert not t.is_alive()


def test_notify_pdu_encoding() -> None:
    pdu = Pdu(NOTIFY, "x", packet_id=9)
    pdu.session_id = 42
    pdu.varbinds = note(3)
    buf = pdu.encode()
    version, ptype, flags, _r, sid, _tid, pid, length = struct.unpack_from("!BBBBIIII", buf)
    assert (version, ptype, sid, pid, length) == (1, 12, 42, 9, len(buf) - 20)
    assert flags == FLAG_NBO and not flags & FLAG_CONTEXT  # default context, no index flags
    # snmpTrapOID.0 is the first varbind (snmpd adds sysUpTime.0 before it).
    assert buf[20:24] == struct.pack("!HH", 6, 0)
    assert buf[24:].startswith(encode_oid(SNMP_TRAP_OID_0))
    with pytest.raises(ValueError):
        Pdu(NOTIFY, "x").encode()  # no varbinds: refused, not sent malformed


def test_queued_before_registration_sent_after_and_answers_matched(
    master: ScriptedMaster, agent: LbAgent
) -> None:
    agent.notify([note(1), note(2)])  # before the session exists: queued
    conn, _, _ = master.accept()
    with conn:
        first = master.read_pdu(conn)
        second = master.read_pdu(conn)
        assert (first[1], second[1]) == (NOTIFY, NOTIFY)
        assert first[20:] == note(1) and second[20:] == note(2)
        sid = struct.unpack_from("!I", first, 4)[0]
        assert sid == 42  # the session id from the Open response
        pid1 = struct.unpack_from("!I", first, 12)[0]
        pid2 = struct.unpack_from("!I", second, 12)[0]
        assert pid1 != pid2  # each Notify has its own packetID
        # The Responses arrive in the same stream as requests; a GET still works.
        respond_to(master, conn, first)
        conn.sendall(request(GET, [(V + (2, 1), (), 0)], packet_id=77))
        respond_to(master, conn, second, PROCESSING_ERROR)
        pid, err, _, vbs = decode_response(master.read_pdu(conn))
        assert (pid, err, vbs[0][2]) == (77, 0, b"192.0.2.1/32 tcp/80")
        # Sent while registered and idle: the outbox wakes the blocked read.
        agent.notify([note(3)])
        third = master.read_pdu(conn)
        assert third[1] == NOTIFY and third[20:] == note(3)
        respond_to(master, conn, third)
        # The answers were taken as answers (counted), not as requests (no reply).
        conn.sendall(request(GET, [(V + (2, 2), (), 0)], packet_id=78))
        pid, _, _, _ = decode_response(master.read_pdu(conn))
        assert pid == 78
    assert agent.notifications_sent == 2
    assert agent.session.notification_errors == 1


def test_unanswered_notifications_are_sent_again_after_reconnect(
    master: ScriptedMaster, agent: LbAgent
) -> None:
    conn, _, _ = master.accept()
    agent.notify([note(1), note(2)])
    got = [master.read_pdu(conn)[20:] for _ in range(2)]
    assert got == [note(1), note(2)]
    conn.close()  # snmpd gone before answering
    conn2, _, _ = master.accept()
    with conn2:
        again = [master.read_pdu(conn2) for _ in range(2)]
        assert [p[20:] for p in again] == [note(1), note(2)]  # in order, at least once
        for p in again:
            respond_to(master, conn2, p)
        conn2.sendall(request(GET, [(V + (2, 1), (), 0)], packet_id=5))
        assert decode_response(master.read_pdu(conn2))[0] == 5
    assert agent.notifications_sent == 2


def test_outbox_is_bounded_oldest_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(3)
    try:
        with caplog.at_level(logging.WARNING, logger="agentx_lb.agentx.outbox"):
            box.put([b"1", b"2"])
            box.put([b"3", b"4", b"5"])
        assert list(box.queue) == [b"3", b"4", b"5"]
        assert box.dropped == 2
        assert caplog.text.count("notification queue full") == 1  # once per overflow
        assert box.unreported_drops() == 2 and box.unreported_drops() == 0
        box.requeue([b"0"])  # full: the newer ones stay
        assert list(box.queue) == [b"3", b"4", b"5"] and box.dropped == 3
        assert box.take() == b"3"
        box.requeue([b"a"])
        assert box.take() == b"a"
    finally:
        box.close()


def test_overflow_while_unregistered_is_logged_when_sending_again(
    master: ScriptedMaster, agent: LbAgent, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentx_lb.agentx"):
        agent.notify([note(i) for i in range(1, 9)])  # outbox_max=5: 1..3 dropped
        conn, _, _ = master.accept()
        with conn:
            got = []
            for _ in range(5):
                p = master.read_pdu(conn)
                got.append(p[20:])
                respond_to(master, conn, p)
            conn.sendall(request(GET, [(V + (2, 1), (), 0)], packet_id=5))
            assert decode_response(master.read_pdu(conn))[0] == 5
    assert got == [note(i) for i in range(4, 9)]
    assert "notifications dropped count=3" in caplog.text


def test_notifications_off_means_no_outbox(master: ScriptedMaster) -> None:
    a = LbAgent(master.path, ROOT)
    assert a.outbox is None
    a.notify([note(1)])  # a no-op, not an error
