"""Pipeline + notifications: what the scrape thread hands to `notify`, and when
(fake source and clock from test_pipeline; no sockets, no real time)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from agentx_lb.model import Backend
from agentx_lb.notify import encode
from agentx_lb.oids import DEFAULT_ROOT, NotificationType
from test_pipeline import DOWN, FakeStop, harness, raw, vip

ROOT_ARCS = len(DEFAULT_ROOT)


def with_backends(index: int, **used: bool) -> Any:
    v = vip(index)
    backends = tuple(
        Backend(address=f"10.0.{index}.{n[1:]}", buckets=0, flows=0, used=u)
        for n, u in used.items()
    )
    return dataclasses.replace(v, backends=backends)


def trap_type(varbinds: bytes) -> NotificationType:
    """The notification of an encoded VarBindList (snmpTrapOID.0's value, last arc)."""
    # varbind header 4 + OID header 4 + 6 sub-ids (snmpTrapOID.0 compressed) = 32;
    # then the value OID: header 4, compressed 1.3.6.1.4 prefix, root + (0, n).
    n_sub = varbinds[32]
    value = varbinds[36 : 36 + 4 * n_sub]
    # By value; mypy takes the members' __new__ (sub_id, mib_name, objects) for it.
    return NotificationType(int.from_bytes(value[-4:], "big"))  # type: ignore[call-arg]


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    def __call__(self, varbinds: Any) -> None:
        self.batches.append(list(varbinds))

    @property
    def types(self) -> list[NotificationType]:
        return [trap_type(vb) for batch in self.batches for vb in batch]


UP = raw(with_backends(1, b1=True), with_backends(2, b1=True))
B2_DOWN = raw(with_backends(1, b1=True), with_backends(2, b1=False))


def test_no_notify_no_notifier() -> None:
    h = harness([UP, B2_DOWN])
    p = h.pipeline()
    p.tick()
    p.tick()
    assert p.notifications == 0


def test_changes_go_to_notify_from_the_tick_encoded_for_the_root() -> None:
    sink = Sink()
    h = harness([UP, UP, B2_DOWN])
    p = h.pipeline(notify=sink)
    p.tick()
    p.tick()
    assert sink.batches == []  # baseline, then silence while nothing changes
    p.tick()
    assert sorted(sink.types) == [
        NotificationType.VIP_OPER_STATUS_CHANGE,
        NotificationType.BACKEND_STATE_CHANGE,
    ]
    assert p.notifications == 2


def test_connection_lost_and_back_and_rows_rebaselined() -> None:
    sink = Sink()
    h = harness([UP, DOWN, DOWN, B2_DOWN, B2_DOWN])
    p = h.pipeline(notify=sink, notify_holddown_s=0.0)
    p.tick()
    p.tick()
    assert sink.types == [NotificationType.VPP_CONNECTION_CHANGE]
    p.tick()
    p.tick()  # back, with VIP 2 down: the connection notification only
    assert sink.types == [NotificationType.VPP_CONNECTION_CHANGE] * 2
    p.tick()
    assert len(sink.types) == 2


def test_run_wakes_when_a_holddown_ends(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    # t=0 baseline, t=5 change (sent), t=10 back (held until 15), t=15..: unchanged.
    h = harness([UP, B2_DOWN, UP])
    p = h.pipeline(notify=sink, interval_s=5.0, notify_holddown_s=7.0)
    stop = FakeStop(h.clock, waits=5)
    with caplog.at_level(logging.INFO, logger="agentx_lb.pipeline"):
        p.run(stop)
    # Ticks at 0, 5, 10 (waits of 5 s); the held change is due at 12 s: the
    # wait is split there, and the change goes out then, not at the 15 s tick.
    assert stop.timeouts[:4] == [5.0, 5.0, 2.0, 3.0]
    assert [len(b) for b in sink.batches] == [2, 2]
    assert "notification vppLbVipOperStatusChange .2" in caplog.text


def test_a_value_that_cannot_be_encoded_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    h = harness([UP])
    p = h.pipeline(notify=sink)
    p.tick()
    from agentx_lb.notify import Notification

    bad = Notification(NotificationType.VIP_OPER_STATUS_CHANGE, (1,), ("x", 2**40, 0))
    good = Notification(NotificationType.VIP_OPER_STATUS_CHANGE, (1,), ("x", 2, 0))
    with caplog.at_level(logging.WARNING):
        p._send([bad, good])
    assert sink.batches == [[encode(good, DEFAULT_ROOT)]]
    assert "notification not sent" in caplog.text
