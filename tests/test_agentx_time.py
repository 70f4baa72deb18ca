"""Time at the responder: the age of data, walk pins by scrape time, one clock.

docs/architecture.md: "The age rule", "TimeStamps: one clock, snmpd's".

Pure: a `Responder` with an injected `now` and event clock, hand-built PDUs,
no socket. The same promises end to end (through snmpd, with the real agent
and a hung emulated VPP) are in tests/test_faults_time.py.
"""

from __future__ import annotations

import struct

from agentx_lb.agentx import Responder
from agentx_lb.clock import EventClock, MasterClock
from agentx_lb.oids import AGENT, DEFAULT_ROOT, VIP_ENTRY, AgentScalar, VipColumn, encode_oid
from agentx_lb.table import Table, build_table
from snmpfixtures import make_snapshot

ROOT = DEFAULT_ROOT
V = ROOT + VIP_ENTRY
A = ROOT + AGENT
GET, GETNEXT = 5, 6
ROOT_END = ROOT[:-1] + (ROOT[-1] + 1,)
LIMIT_S = 15.0  # 3 intervals of 5 s
NO_SUCH_INSTANCE = 129


def request(ptype: int, start: bytes, end: tuple = ROOT_END, packet_id: int = 7) -> bytes:
    payload = start + encode_oid(end)
    return struct.pack("!BBBBIIII", 1, ptype, 0x10, 0, 42, 3, packet_id, len(payload)) + payload


def varbind(out: bytes | None) -> tuple[int, bytes, bytes]:
    """(type, wire OID, value) of the first varbind of a Response."""
    assert out is not None
    vb = out[28:]
    end = 8 + 4 * vb[4]
    return struct.unpack_from("!H", vb)[0], vb[4:end], vb[end:]


def get(r: Responder, oid: tuple, now: float) -> tuple[int, bytes]:
    typ, _, value = varbind(r.answer(request(GET, encode_oid(oid)), now))
    return typ, value


def u32(value: bytes) -> int:
    return struct.unpack("!I", value[-4:])[0]


def table(taken_at: float, indices: tuple[int, ...] = (1, 2, 3)) -> Table:
    return build_table(make_snapshot(indices=indices, taken_at=taken_at), ROOT)


def responder() -> Responder:
    # Event clock: centiseconds = monotonic seconds x 100 (wall 0 at monotonic 0).
    events = EventClock(monotonic=lambda: 0.0, wall=lambda: 0.0)
    return Responder(ROOT, max_age_s=LIMIT_S, pin_idle_s=5.0, event_clock=events)


NAME_1 = V + (VipColumn.NAME, 1)


def test_rows_older_than_the_limit_are_not_served_without_any_publish() -> None:
    """The scrape thread hangs after a good scrape at t=100: nothing is published
    again, and the responder alone stops serving the rows at 100 + limit."""
    r = responder()
    r.publish(table(taken_at=100.0), 100.0)
    assert get(r, NAME_1, 100.0 + LIMIT_S)[0] == 4  # OCTET STRING: still served at the limit
    typ, _ = get(r, NAME_1, 100.0 + LIMIT_S + 0.01)
    assert typ == NO_SUCH_INSTANCE
    # A walk from the VIP table's start finds no row at all.
    typ, _oid, _ = varbind(r.answer(request(GETNEXT, encode_oid(V)), 130.0))
    assert typ == 130  # endOfMibView
    # The scalars are served, saying why.
    assert u32(get(r, A + (AgentScalar.VIP_COUNT, 0), 130.0)[1]) == 0
    assert u32(get(r, A + (AgentScalar.VPP_CONNECTED, 0), 130.0)[1]) == 2  # false
    assert u32(get(r, A + (AgentScalar.TABLE_AGE, 0), 130.0)[1]) == 30


def test_table_age_is_computed_when_answered() -> None:
    r = responder()
    r.publish(table(taken_at=100.0), 100.0)
    assert u32(get(r, A + (AgentScalar.TABLE_AGE, 0), 100.5)[1]) == 0
    assert u32(get(r, A + (AgentScalar.TABLE_AGE, 0), 107.9)[1]) == 7


def _walk_to_vip_rows(r: Responder, now: float) -> bytes:
    """Start a walk and step it into the VIP table; the wire OID of its head."""
    _, head, _ = varbind(r.answer(request(GETNEXT, encode_oid(V + (VipColumn.NAME,))), now))
    return head


def test_a_walk_never_receives_rows_older_than_the_limit() -> None:
    """The issue's repro: a good scrape at t=0, failed ticks republish its rows
    at 5, 10 and 15 s; a walk pinned at 14.9 s (and one starting at 15.2 s on
    the republished table) must get no t=0 row at 15.2 or 30 s."""
    r = responder()
    good = table(taken_at=0.0)
    r.publish(good, 0.0)
    for t in (5.0, 10.0):
        r.publish(table(taken_at=0.0), t)  # a failed tick: the last good rows again
    head = _walk_to_vip_rows(r, 14.9)  # a walk on rows 14.9 s old: fine
    r.publish(table(taken_at=0.0), 15.0)
    for now in (15.2, 30.0):
        typ, _, _ = varbind(r.answer(request(GETNEXT, head), now))
        assert typ == 130, now  # not V.2.2 of the t=0 scrape
        typ, _, _ = varbind(r.answer(request(GETNEXT, encode_oid(V)), now))
        assert typ == 130, now


def test_a_pin_is_judged_by_the_scrape_time_not_the_publish_time() -> None:
    r = responder()
    r.publish(table(taken_at=0.0), 0.0)
    head = _walk_to_vip_rows(r, 10.0)
    r.publish(table(taken_at=12.0, indices=(1, 7)), 12.0)  # a newer scrape
    _typ, oid, _ = varbind(r.answer(request(GETNEXT, head), 14.0))
    assert oid == encode_oid(V + (VipColumn.NAME, 2))  # the walk keeps its t=0 table
    head = oid
    _typ, oid, _ = varbind(r.answer(request(GETNEXT, head), 15.5))
    assert oid == encode_oid(V + (VipColumn.NAME, 7))  # t=0 rows too old: the newest


def test_pins_are_dropped_after_an_idle_interval_without_requests() -> None:
    r = responder()
    r.publish(table(taken_at=0.0), 0.0)
    _walk_to_vip_rows(r, 1.0)
    assert len(r.pins) == 1
    r.publish(table(taken_at=5.0), 5.0)
    assert len(r.pins) == 1  # used within the last interval (5 s)
    r.publish(table(taken_at=10.0), 10.0)
    assert len(r.pins) == 0  # idle for an interval: the old table is let go


# ---------------------------------------------------------------- one clock


def test_timestamps_are_served_on_the_masters_clock() -> None:
    """An event at event-clock 500,000 cs; snmpd said sysUpTime 2,000 cs when
    our event clock read 600,000: the event happened at sysUpTime -98,000, i.e.
    before snmpd started (0), and an event at 599,000 at sysUpTime 1,000."""
    r = responder()
    snap = make_snapshot(indices=(1, 2), taken_at=0.0)
    rows = (
        snap.rows[0].__class__(snap.rows[0].vip, snap.rows[0].counters, 500_000),
        snap.rows[1].__class__(snap.rows[1].vip, snap.rows[1].counters, 599_000),
    )
    from dataclasses import replace

    t = build_table(replace(snap, rows=rows), ROOT)
    r.events = EventClock(monotonic=lambda: 6000.0, wall=lambda: 6000.0)  # now: 600,000 cs
    r.publish(t, 0.0)
    assert r.learn_uptime(2_000)
    disc = V + (VipColumn.DISCONTINUITY_TIME,)
    assert u32(get(r, disc + (1,), 0.0)[1]) == 0
    assert u32(get(r, disc + (2,), 0.0)[1]) == 1_000
    # A reading a centisecond off does not move the served stamps.
    assert not r.learn_uptime(2_001)
    # snmpd restarted: sysUpTime back near 0; every earlier event serves as 0.
    assert r.learn_uptime(5)
    assert u32(get(r, disc + (2,), 0.0)[1]) == 0


def test_master_clock_clamps_and_keeps_its_offset() -> None:
    m = MasterClock()
    assert m.stamp(123) == 0  # nothing learned yet
    assert m.learn(1_000, 10_000)
    assert (m.stamp(9_500), m.stamp(8_000), m.stamp(10_000)) == (500, 0, 1_000)
    assert not m.learn(1_050, 10_000)  # within DRIFT_CS: kept
    assert m.learn(50, 10_000)
