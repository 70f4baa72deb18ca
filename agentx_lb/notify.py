"""Which notifications a scrape calls for, and when (pure: no I/O, no clock of its own).

The scrape thread hands every published scrape to `Notifier.observe()` and
calls `Notifier.due()` when `next_due()` says a hold-down ends; both return the
`Notification`s to send now, and `encode()` turns one into the VarBindList of
an AgentX Notify PDU (snmpTrapOID.0 first; snmpd adds sysUpTime.0).

What is tracked, per key:

* a VIP (by its identity): `vppLbVipOperStatus`, up or noActiveBackends;
* a backend (VIP identity, address) of a VIP listed in both scrapes: used,
  removed, or gone (VPP no longer lists it: sent as removed(2));
* the VPP connection: the first failed scrape after good ones (or the first
  scrape of the agent, if it failed), the first good one after failures.

VIPs that appear or disappear, and the backends that come and go with them,
are not reported: the new rows are the baseline. Neither is any row change in
a scrape in which the connection changed or the whole VIP table appeared or
emptied at once (VPP restarted): the rows are taken as they are (re-baselined)
and the connection notification says what happened.

Hold-down (per key): a change is sent at once if the key sent nothing in the
last `holddown_s`; otherwise it waits until the hold-down ends and is sent
then only if the state still differs from the one last sent (so the last
notification of a key always states its current status). Sending starts a
new hold-down. Only keys that changed recently have a `_Track`: for any other
key "last sent" is its state in the previous scrape, so a table of 10,000 VIPs
costs nothing per scrape while nothing changes.
"""

from __future__ import annotations

import ipaddress
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agentx_lb.model import Frame, Vip, VipRow
from agentx_lb.oids import (
    AGENT,
    BACKEND_ENTRY,
    BACKEND_REMOVED,
    BACKEND_USED,
    INET_ADDRESS_IPV4,
    INET_ADDRESS_IPV6,
    NOTIFICATIONS,
    OPER_NO_ACTIVE_BACKENDS,
    OPER_UP,
    SNMP_TRAP_OID_0,
    TRUTH_FALSE,
    TRUTH_TRUE,
    VIP_ENTRY,
    AgentScalar,
    BackendColumn,
    NotificationType,
    Oid,
    SnmpType,
    VipColumn,
    encode_oid,
)
from agentx_lb.values import DISPLAY_STRING_MAX, CellError, enc_display, enc_integer, enc_unsigned32

__all__ = ["DEFAULT_HOLDDOWN_S", "Notification", "Notifier", "encode"]

DEFAULT_HOLDDOWN_S = 10.0
GONE = 0  # a backend VPP no longer lists (sent as removed(2))
_VPP_KEY = ("vpp",)  # other keys: ("vip", identity), ("backend", identity, address)

# One row of the pipeline's table shape: (VIP identity, (address, used, weight,
# address, used, weight, ...)): flat, one tuple a VIP (10,000 VIPs x 8
# backends as 3-tuples were 90,000 objects, 6.5 MB, kept between scrapes).
VipId = tuple[int, str, int, int]
BackendShape = tuple[str | bool | int | None, ...]
ShapeRow = tuple[VipId, BackendShape]
Shape = dict[VipId, BackendShape]


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification: its type, the row's instance suffix, one value per object."""

    type: NotificationType
    suffix: Oid  # (vip index,), the backend row's index, or (0,) for the scalars
    values: tuple[int | str, ...]  # aligned with `type.objects`

    def describe(self) -> str:
        """For the log: `vppLbVipOperStatusChange .5 name='...' status=2 ...`."""
        pairs = " ".join(
            f"{o.mib_name}={v!r}" for o, v in zip(self.type.objects, self.values, strict=True)
        )
        return f"{self.type.mib_name} .{'.'.join(map(str, self.suffix))} {pairs}"


class _Track:
    """A key that changed within the last hold-down (or has a change waiting)."""

    __slots__ = ("note", "sent", "state", "until")

    def __init__(
        self, sent: object, state: object, note: Notification | None, until: float
    ) -> None:
        self.sent = sent  # the state last sent (or taken as the baseline)
        self.state = state  # the state seen last
        self.note = note  # the notification for `state`, values as seen last
        self.until = until  # end of the hold-down (monotonic seconds)


class Notifier:
    """Change detection and hold-down; `now` is the caller's monotonic seconds."""

    def __init__(self, holddown_s: float = DEFAULT_HOLDDOWN_S) -> None:
        self.holddown_s = holddown_s
        self._shape: Shape = {}
        self._shape_rows: tuple[ShapeRow, ...] | None = None  # as passed last time
        self._baseline = False  # False until the first observation
        self._connected: bool | None = None
        self._tracks: dict[tuple[Any, ...], _Track] = {}
        self.rebaselines = 0  # scrapes whose row changes were taken as a restart (tests)

    # ---- the scrape thread's two calls

    def observe(
        self,
        rows: Sequence[VipRow],
        shape: Sequence[ShapeRow],
        *,
        connected: bool,
        last_error: str,
        now: float,
    ) -> list[Notification]:
        """The notifications due after a scrape whose served rows are `rows`.

        `shape` is the pipeline's `_table_shape` of the rows' VIPs (same order as `rows`).
        """
        out: list[Notification] = []
        conn_changed = connected != self._connected
        if conn_changed:
            first = self._connected is None
            self._connected = connected
            # The agent's start with VPP up is the baseline; with VPP down, news.
            if not (first and connected):
                note = Notification(
                    NotificationType.VPP_CONNECTION_CHANGE,
                    (0,),
                    (TRUTH_TRUE if connected else TRUTH_FALSE, _display(last_error)),
                )
                self._see(_VPP_KEY, not connected, connected, note, now, out)
            conn_changed = not first
        shape = tuple(shape)
        if shape is self._shape_rows or shape == self._shape_rows:
            return out  # no row changed (the pipeline passes the same object then)
        self._shape_rows = shape
        new_shape = dict(shape)
        if not self._baseline:
            self._baseline = True
        elif new_shape != self._shape:
            old = self._shape
            if conn_changed or bool(old) != bool(new_shape):
                self._rebaseline(new_shape)
            else:
                self._diff(rows, old, new_shape, now, out)
        self._shape = new_shape
        return out

    def due(self, now: float) -> list[Notification]:
        """Changes whose hold-down has ended and that still differ from the last sent."""
        out: list[Notification] = []
        for key, tr in list(self._tracks.items()):
            if tr.until > now:
                continue
            if tr.state != tr.sent and tr.note is not None:
                out.append(tr.note)
                tr.sent = tr.state
                tr.until = now + self.holddown_s
            else:
                del self._tracks[key]  # quiet for a whole hold-down: untracked again
        return out

    def next_due(self) -> float | None:
        """When `due()` has something to send (None: nothing is waiting)."""
        times = [tr.until for tr in self._tracks.values() if tr.state != tr.sent]
        return min(times) if times else None

    @property
    def waiting(self) -> int:
        """Keys with a change held back by their hold-down."""
        return sum(1 for tr in self._tracks.values() if tr.state != tr.sent)

    # ---- internals

    def _see(
        self,
        key: tuple[Any, ...],
        previous: object,
        state: object,
        note: Notification,
        now: float,
        out: list[Notification],
    ) -> None:
        """`key` is now in `state` (it was `previous` in the last scrape)."""
        tr = self._tracks.get(key)
        if tr is None:
            if state == previous:
                return
            tr = self._tracks[key] = _Track(previous, state, note, -math.inf)
        tr.state, tr.note = state, note
        if state != tr.sent and now >= tr.until:
            out.append(note)
            tr.sent = state
            tr.until = now + self.holddown_s

    def _rebaseline(self, shape: Shape) -> None:
        """Take every row as it is now: nothing waiting, hold-downs kept."""
        self.rebaselines += 1
        for key, tr in list(self._tracks.items()):
            if key == _VPP_KEY:
                continue
            vip_id = key[1]
            if vip_id not in shape:
                del self._tracks[key]
                continue
            if key[0] == "vip":
                state: object = _oper(shape[vip_id])
            else:
                state = _backend_state(shape[vip_id], key[2])
            tr.sent = tr.state = state
            tr.note = None

    def _diff(
        self, rows: Sequence[VipRow], old: Shape, new: Shape, now: float, out: list[Notification]
    ) -> None:
        for vip_id in old.keys() - new.keys():  # gone VIPs: forgotten with their backends
            self._tracks.pop(("vip", vip_id), None)
            for addr, _used, _w in _triples(old[vip_id]):
                self._tracks.pop(("backend", vip_id, addr), None)
        # Only the VIPs (not the rows, which a Frame makes on access).
        vips = rows.vips if isinstance(rows, Frame) else [row.vip for row in rows]
        for vip in vips:
            vip_id = vip.identity
            before = old.get(vip_id)
            after = new.get(vip_id)
            if before is None or after is None or before == after:
                continue  # a new VIP is its own baseline; unchanged rows cost nothing
            active = sum(1 for b in vip.backends if b.used)
            oper = OPER_UP if active else OPER_NO_ACTIVE_BACKENDS
            note = Notification(
                NotificationType.VIP_OPER_STATUS_CHANGE,
                (vip.index,),
                (_display(vip.name), oper, active),
            )
            self._see(("vip", vip_id), _oper(before), oper, note, now, out)
            was = {
                addr: BACKEND_USED if used else BACKEND_REMOVED
                for addr, used, _w in _triples(before)
            }
            for b in vip.backends:
                state = BACKEND_USED if b.used else BACKEND_REMOVED
                self._see(
                    ("backend", vip_id, b.address),
                    was.pop(b.address, GONE),
                    state,
                    _backend_note(vip, b.address, state),
                    now,
                    out,
                )
            for addr, prev in was.items():  # no longer listed
                self._see(
                    ("backend", vip_id, addr),
                    prev,
                    GONE,
                    _backend_note(vip, addr, BACKEND_REMOVED),
                    now,
                    out,
                )


def _triples(backends: BackendShape) -> Iterator[tuple[str, bool, int | None]]:
    """(address, used, weight) of each backend in a flat BackendShape."""
    return zip(backends[0::3], backends[1::3], backends[2::3], strict=True)  # type: ignore[arg-type]  # the shape's layout


def _oper(backends: BackendShape) -> int:
    return OPER_UP if any(backends[1::3]) else OPER_NO_ACTIVE_BACKENDS


def _backend_state(backends: BackendShape, address: str) -> int:
    for addr, used, _w in _triples(backends):
        if addr == address:
            return BACKEND_USED if used else BACKEND_REMOVED
    return GONE


def _backend_note(vip: Vip, address: str, state: int) -> Notification:
    return Notification(
        NotificationType.BACKEND_STATE_CHANGE,
        backend_suffix(vip.index, address),
        (_display(f"{address} via {vip.name}"), state),
    )


def backend_suffix(vip_index: int, address: str) -> Oid:
    """A backend row's index: vip index, InetAddressType, length, address octets."""
    packed = ipaddress.ip_address(address).packed
    atype = INET_ADDRESS_IPV6 if len(packed) == 16 else INET_ADDRESS_IPV4
    return (vip_index, atype, len(packed), *packed)


def _display(text: str) -> str:
    """At most 255 octets of UTF-8 (a DisplayString), cut on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= DISPLAY_STRING_MAX:
        return text
    return data[:DISPLAY_STRING_MAX].decode("utf-8", "ignore")


# ---------------------------------------------------------------- the wire

_BASE = {AgentScalar: AGENT, VipColumn: VIP_ENTRY, BackendColumn: BACKEND_ENTRY}
_ENCODE = {
    SnmpType.INTEGER: enc_integer,
    SnmpType.GAUGE32: enc_unsigned32,
    SnmpType.OCTET_STRING: enc_display,
}
_VB = struct.Struct("!HH")


def encode(note: Notification, root: Oid) -> bytes:
    """The Notify PDU's VarBindList: snmpTrapOID.0, then the objects' instances.

    Raises `CellError` for a value that does not fit its type (not sent).
    """
    root = tuple(root)
    parts = [
        _VB.pack(SnmpType.OBJECT_IDENTIFIER, 0),
        encode_oid(SNMP_TRAP_OID_0),
        encode_oid(root + NOTIFICATIONS + (int(note.type),)),
    ]
    if len(note.values) != len(note.type.objects):
        raise CellError("wrong number of values", note.type.mib_name)
    for obj, value in zip(note.type.objects, note.values, strict=True):
        oid = root + _BASE[type(obj)] + (int(obj),) + note.suffix
        parts += (_VB.pack(obj.snmp_type, 0), encode_oid(oid), _ENCODE[obj.snmp_type](value))
    return b"".join(parts)
