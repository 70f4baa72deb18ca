"""`agentx_lb.notify`: change detection, the hold-down and the wire encoding (pure, no clock)."""

from __future__ import annotations

import dataclasses
import struct
from itertools import pairwise

import pytest

from agentx_lb.model import Backend, Encap, Vip, VipCounters, VipRow
from agentx_lb.notify import Notification, Notifier, backend_suffix, encode
from agentx_lb.oids import (
    BACKEND_REMOVED,
    BACKEND_USED,
    DEFAULT_ROOT,
    OPER_NO_ACTIVE_BACKENDS,
    OPER_UP,
    SNMP_TRAP_OID_0,
    TRUTH_FALSE,
    TRUTH_TRUE,
    NotificationType,
    decode_oid,
)
from agentx_lb.pipeline import _table_shape

VIP_CHANGE = NotificationType.VIP_OPER_STATUS_CHANGE
BACKEND_CHANGE = NotificationType.BACKEND_STATE_CHANGE
CONN_CHANGE = NotificationType.VPP_CONNECTION_CHANGE


def vip(index: int, backends: dict[str, bool], port: int = 80) -> VipRow:
    v = Vip(
        index=index,
        address=f"192.0.2.{index}",
        prefix_length=32,
        ip_version=4,
        encap=Encap.GRE4,
        protocol=6,
        port=port,
        backends=tuple(Backend(address=a, buckets=0, flows=0, used=u) for a, u in backends.items()),
    )
    return VipRow(vip=v, counters=VipCounters(), discontinuity_cs=0)


class Feed:
    """A Notifier fed row sets at chosen times, the way the pipeline feeds it."""

    def __init__(self, holddown_s: float = 10.0) -> None:
        self.n = Notifier(holddown_s)

    def scrape(
        self, rows: list[VipRow], now: float, connected: bool = True, error: str = ""
    ) -> list[Notification]:
        rows_t = tuple(rows)
        return self.n.observe(
            rows_t,
            _table_shape([r.vip for r in rows_t]),
            connected=connected,
            last_error=error,
            now=now,
        )


def two_vips(b2_used: bool = True, b3: bool | None = None) -> list[VipRow]:
    backends = {"10.0.0.2": b2_used}
    if b3 is not None:
        backends["10.0.0.3"] = b3
    return [vip(1, {"10.0.0.1": True}), vip(2, backends)]


def test_first_scrape_is_the_baseline_and_nothing_changing_sends_nothing() -> None:
    f = Feed()
    assert f.scrape(two_vips(), 0.0) == []
    for t in range(1, 100):
        assert f.scrape(two_vips(), float(t)) == []
        assert f.n.due(float(t)) == []
    assert f.n.next_due() is None


def test_vip_losing_its_last_backend_sends_vip_and_backend_changes() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    out = f.scrape(two_vips(b2_used=False), 1.0)
    by_type = {n.type: n for n in out}
    assert set(by_type) == {VIP_CHANGE, BACKEND_CHANGE}
    v = by_type[VIP_CHANGE]
    assert v.suffix == (2,)
    assert v.values == ("192.0.2.2/32 tcp/80", OPER_NO_ACTIVE_BACKENDS, 0)
    b = by_type[BACKEND_CHANGE]
    assert b.suffix == (2, 1, 4, 10, 0, 0, 2)
    assert b.values == ("10.0.0.2 via 192.0.2.2/32 tcp/80", BACKEND_REMOVED)


def test_backend_appearing_and_disappearing_on_a_kept_vip() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    out = f.scrape(two_vips(b3=True), 1.0)
    assert [(n.type, n.suffix[-1], n.values[1]) for n in out] == [(BACKEND_CHANGE, 3, BACKEND_USED)]
    out = f.scrape(two_vips(), 20.0)  # gone from VPP's list: removed(2)
    assert [(n.type, n.suffix[-1], n.values[1]) for n in out] == [
        (BACKEND_CHANGE, 3, BACKEND_REMOVED)
    ]


def test_gone_after_removed_is_reported_again_once_the_holddown_allows() -> None:
    f = Feed()
    f.scrape(two_vips(b3=True), 0.0)
    assert len(f.scrape(two_vips(b3=False), 1.0)) == 1  # removed
    assert f.scrape(two_vips(), 2.0) == []  # gone, inside the hold-down
    assert f.n.next_due() == 11.0
    out = f.n.due(11.0)
    assert [(n.type, n.values[1]) for n in out] == [(BACKEND_CHANGE, BACKEND_REMOVED)]


def test_vips_appearing_or_disappearing_are_silent() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    assert f.scrape([*two_vips(), vip(3, {})], 1.0) == []  # new, no backend: baseline
    assert f.scrape(two_vips(), 2.0) == []  # deleted with its backends
    assert f.scrape(two_vips()[:1], 3.0) == []


def flap(flips: int, holddown_s: float = 10.0) -> list[tuple[float, NotificationType, int]]:
    """Backend 10.0.0.2 (VIP 2's only one) flips `flips` times in 10 s (every
    0.45 s); a scrape every 0.5 s sees each flip; due() runs at next_due() as
    the scrape thread does. Returns (time, type, state) of every notification."""
    f = Feed(holddown_s)
    f.scrape(two_vips(), 0.0)
    flip_at = [0.45 * (i + 1) for i in range(flips)]
    sent: list[tuple[float, NotificationType, int]] = []
    t = 0.0
    while t < 40.0:
        t = round(t + 0.5, 2)
        while (due_at := f.n.next_due()) is not None and due_at <= t:
            sent += [(due_at, n.type, int(n.values[1])) for n in f.n.due(due_at)]
        used = sum(1 for at in flip_at if at <= t) % 2 == 0
        sent += [(t, n.type, int(n.values[1])) for n in f.scrape(two_vips(b2_used=used), t)]
    return sent


def test_holddown_under_flapping_21_flips_in_10_s() -> None:
    sent = flap(21)
    # The first flip at once; at the hold-down's end (10.5 s) the state is the
    # one last sent (21 flips: down), so nothing more: one per key.
    assert sent == [
        (0.5, VIP_CHANGE, OPER_NO_ACTIVE_BACKENDS),
        (0.5, BACKEND_CHANGE, BACKEND_REMOVED),
    ]


def test_holddown_under_flapping_final_state_rule() -> None:
    sent = flap(20)  # ends where it started: up
    assert sent == [
        (0.5, VIP_CHANGE, OPER_NO_ACTIVE_BACKENDS),
        (0.5, BACKEND_CHANGE, BACKEND_REMOVED),
        (10.5, VIP_CHANGE, OPER_UP),
        (10.5, BACKEND_CHANGE, BACKEND_USED),
    ]
    # Whatever the flips, the last notification per key states the final state.
    for flips in range(1, 40):
        sent = flap(flips)
        final_used = flips % 2 == 0
        last = {typ: state for _t, typ, state in sent}
        if flips:
            assert last[VIP_CHANGE] == (OPER_UP if final_used else OPER_NO_ACTIVE_BACKENDS)
            assert last[BACKEND_CHANGE] == (BACKEND_USED if final_used else BACKEND_REMOVED)
        # At most one per key per hold-down: sends of one key at least 10 s apart.
        for typ in (VIP_CHANGE, BACKEND_CHANGE):
            times = [at for at, ty, _s in sent if ty == typ]
            assert all(b - a >= 10.0 for a, b in pairwise(times))


def test_a_change_inside_the_holddown_is_sent_when_it_ends() -> None:
    f = Feed(holddown_s=10.0)
    f.scrape(two_vips(), 0.0)
    assert len(f.scrape(two_vips(b2_used=False), 1.0)) == 2
    assert f.scrape(two_vips(b2_used=True), 2.0) == []  # held down
    assert f.scrape(two_vips(b2_used=False), 3.0) == []  # back to what was sent
    assert f.scrape(two_vips(b2_used=True), 4.0) == []  # differs again
    assert f.n.next_due() == 11.0
    assert f.n.due(10.9) == []
    out = f.n.due(11.0)
    assert sorted((n.type, n.values[1]) for n in out) == [
        (VIP_CHANGE, OPER_UP),
        (BACKEND_CHANGE, BACKEND_USED),
    ]
    v = next(n for n in out if n.type == VIP_CHANGE)
    assert v.values[2] == 1  # the active count as seen last
    assert f.n.next_due() is None
    # Sending started a new hold-down: a change at 12 s waits until 21 s.
    assert f.scrape(two_vips(b2_used=False), 12.0) == []
    assert f.n.next_due() == 21.0


def test_a_change_undone_inside_the_holddown_is_not_sent() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    f.scrape(two_vips(b2_used=False), 1.0)
    f.scrape(two_vips(b2_used=True), 2.0)
    f.scrape(two_vips(b2_used=False), 3.0)
    assert f.n.due(11.0) == []
    assert f.n.next_due() is None


def test_keys_are_independent() -> None:
    f = Feed()
    rows = [vip(1, {"10.0.0.1": True}), vip(2, {"10.0.0.2": True})]
    f.scrape(rows, 0.0)
    out = f.scrape([vip(1, {"10.0.0.1": False}), vip(2, {"10.0.0.2": True})], 1.0)
    assert {n.suffix[0] for n in out} == {1}
    out = f.scrape([vip(1, {"10.0.0.1": False}), vip(2, {"10.0.0.2": False})], 2.0)
    assert {n.suffix[0] for n in out} == {2}  # VIP 1's hold-down does not hold VIP 2


def test_connection_lost_and_back() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    out = f.scrape(two_vips(), 1.0, connected=False, error="api socket gone")
    assert [(n.type, n.suffix, n.values) for n in out] == [
        (CONN_CHANGE, (0,), (TRUTH_FALSE, "api socket gone"))
    ]
    assert f.scrape(two_vips(), 2.0, connected=False, error="api socket gone") == []
    out = f.scrape(two_vips(), 20.0, connected=True, error="api socket gone")
    assert [(n.type, n.values[0]) for n in out] == [(CONN_CHANGE, TRUTH_TRUE)]


def test_agent_start_without_vpp_is_news_with_vpp_is_not() -> None:
    assert Feed().scrape([], 0.0, connected=True) == []
    out = Feed().scrape([], 0.0, connected=False, error="no VPP")
    assert [(n.type, n.values[0]) for n in out] == [(CONN_CHANGE, TRUTH_FALSE)]


def test_vpp_restart_yields_the_connection_notifications_not_one_per_row() -> None:
    f = Feed()
    rows = [vip(i, {f"10.0.{i}.1": True}) for i in range(1, 50)]
    f.scrape(rows, 0.0)
    # VPP gone: rows kept (last good), then withdrawn (emptied at once).
    lost = f.scrape(rows, 1.0, connected=False, error="gone")
    assert [n.type for n in lost] == [CONN_CHANGE]
    assert f.scrape([], 4.0, connected=False, error="gone") == []
    # Back, with every VIP at noActiveBackends (startup-config half done).
    down = [vip(i, {f"10.0.{i}.1": False}) for i in range(1, 50)]
    back = f.scrape(down, 20.0, connected=True, error="gone")
    assert [n.type for n in back] == [CONN_CHANGE]
    # The rows came back as they are: the next real change is news again.
    out = f.scrape([vip(1, {"10.0.1.1": True}), *down[1:]], 21.0)
    assert sorted(n.type for n in out) == [VIP_CHANGE, BACKEND_CHANGE]


def test_table_filling_or_emptying_at_once_is_a_restart_not_news() -> None:
    f = Feed()
    rows = [vip(i, {f"10.0.{i}.1": True}) for i in range(1, 5)]
    f.scrape(rows, 0.0)
    assert f.scrape([], 1.0) == []  # VPP restarted between scrapes, LB empty
    assert f.scrape([vip(i, {f"10.0.{i}.1": False}) for i in range(1, 5)], 2.0) == []
    assert f.n.rebaselines == 2


def test_restart_drops_what_was_waiting() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    f.scrape(two_vips(b2_used=False), 1.0)
    f.scrape(two_vips(b2_used=True), 2.0)  # waiting for 11 s
    assert f.n.waiting == 2
    f.scrape([], 3.0)
    f.scrape(two_vips(b2_used=True), 4.0)
    assert f.n.waiting == 0
    assert f.n.due(11.0) == []


def test_holddown_zero_sends_every_change() -> None:
    f = Feed(holddown_s=0.0)
    f.scrape(two_vips(), 0.0)
    count = 0
    for i in range(1, 11):
        count += sum(
            1 for n in f.scrape(two_vips(b2_used=i % 2 == 0), float(i)) if n.type == VIP_CHANGE
        )
    assert count == 10


def test_weight_or_flow_changes_are_not_state_changes() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    rows = two_vips()
    b = rows[1].vip.backends[0]
    changed = VipRow(
        vip=dataclasses.replace(rows[1].vip, backends=(Backend(b.address, 99, 7, True, weight=5),)),
        counters=VipCounters(),
        discontinuity_cs=0,
    )
    assert f.scrape([rows[0], changed], 1.0) == []


def test_untracked_once_quiet_for_a_holddown() -> None:
    f = Feed()
    f.scrape(two_vips(), 0.0)
    f.scrape(two_vips(b2_used=False), 1.0)
    assert f.n.due(11.0) == []
    assert f.n._tracks == {}


# ---------------------------------------------------------------- encoding


def _varbinds(buf: bytes) -> list[tuple[int, tuple[int, ...], bytes]]:
    """Parse a VarBindList (network byte order) into (type, oid, raw value)."""
    out = []
    pos = 0
    while pos < len(buf):
        vtype = struct.unpack_from("!H", buf, pos)[0]
        canon, _inc, _echo, pos = decode_oid(buf, pos + 4, 1)
        oid = struct.unpack(f"!{len(canon) // 4}I", canon)
        if vtype in (2, 66):
            raw, pos = buf[pos : pos + 4], pos + 4
        elif vtype == 6:
            ocanon, _i, _e, end = decode_oid(buf, pos, 1)
            raw, pos = ocanon, end
        else:
            n = struct.unpack_from("!I", buf, pos)[0]
            raw = buf[pos + 4 : pos + 4 + n]
            pos += 4 + n + (-n % 4)
        out.append((vtype, oid, raw))
    return out


def test_encode_vip_change() -> None:
    note = Notification(VIP_CHANGE, (7,), ("192.0.2.7/32 tcp/80", OPER_NO_ACTIVE_BACKENDS, 0))
    vbs = _varbinds(encode(note, DEFAULT_ROOT))
    r = DEFAULT_ROOT
    assert vbs[0][:2] == (6, SNMP_TRAP_OID_0)
    assert struct.unpack(f"!{len(vbs[0][2]) // 4}I", vbs[0][2]) == (*r, 0, 1)
    assert vbs[1:] == [
        (4, (*r, 1, 2, 1, 2, 7), b"192.0.2.7/32 tcp/80"),
        (2, (*r, 1, 2, 1, 13, 7), struct.pack("!i", 2)),
        (66, (*r, 1, 2, 1, 12, 7), struct.pack("!I", 0)),
    ]


def test_encode_backend_and_connection_changes() -> None:
    r = (1, 3, 6, 1, 4, 1, 99999)
    suffix = backend_suffix(3, "2001:db8::5")
    assert suffix[:3] == (3, 2, 16) and len(suffix) == 19
    vbs = _varbinds(encode(Notification(BACKEND_CHANGE, suffix, ("x", BACKEND_USED)), r))
    assert [oid for _t, oid, _v in vbs[1:]] == [
        (*r, 1, 3, 1, 7, *suffix),
        (*r, 1, 3, 1, 3, *suffix),
    ]
    vbs = _varbinds(encode(Notification(CONN_CHANGE, (0,), (TRUTH_FALSE, "")), r))
    assert [(t, oid) for t, oid, _v in vbs[1:]] == [(2, (*r, 1, 1, 1, 0)), (4, (*r, 1, 1, 9, 0))]


def test_long_error_text_is_cut_to_a_display_string() -> None:
    f = Feed()
    f.scrape([], 0.0)
    out = f.scrape([], 1.0, connected=False, error="é" * 300)
    text = out[0].values[1]
    assert isinstance(text, str) and len(text.encode()) <= 255
    encode(out[0], DEFAULT_ROOT)  # fits


def test_describe_names_the_objects() -> None:
    note = Notification(CONN_CHANGE, (0,), (TRUTH_TRUE, "e"))
    assert note.describe() == (
        "vppLbAgentVppConnectionChange .0 vppLbAgentVppConnected=1 vppLbAgentLastError='e'"
    )


@pytest.mark.parametrize("values", [("x",), ("x", 1, 2, 3)])
def test_encode_refuses_a_wrong_value_count(values: tuple) -> None:
    with pytest.raises(ValueError):
        encode(Notification(BACKEND_CHANGE, (1, 1, 4, 1, 2, 3, 4), values), DEFAULT_ROOT)
