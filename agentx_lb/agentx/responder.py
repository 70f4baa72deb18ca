"""The responder: a table and a request PDU in, the response bytes out.

No socket and no clock of its own: the caller passes `now` (monotonic seconds)
with every request and the master's sysUpTime whenever a Response brings it.

* GET/GETNEXT/GETBULK are answered from an immutable `Table` by binary search
  over pre-encoded varbinds, honouring the search range end and `include`;
  GET tells noSuchInstance from noSuchObject. Each PDU is answered from one
  table.
* The age of data is the table's: rows whose scrape (`Table.taken_at`) is older
  than `max_age_s` are not served, whatever the scrape thread is doing; the
  scalars still are, saying why (`Table.withdrawn`). vppLbAgentTableAge is
  computed at answer time from `taken_at`.
* TimeStamps are on snmpd's clock: the served table is the published one
  re-stamped (`Table.restamped`) with the offset learned from the master's
  sysUpTime (`agentx_lb.clock`), again whenever that offset changes.
* The walk fast path: snmpd 5.9 turns every GETBULK repetition into one
  GetNext whose start is the OID we answered last. The cursor pin (table,
  wire OID of the last answer, its index) turns that continuation into a
  bytes compare and the next index: no OID parsing, no search. Anything else
  (other PDUs, several ranges, include=1, a table past its age, the age cell,
  another byte order, a context) takes the general path, which keeps walks on
  their tables through `Pins`.

Threads: `answer` runs on the protocol loop; `publish` on the scrape thread
(one reference swap of the served table, under a lock shared only with the
clock's re-stamping).
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any

from agentx_lb.agentx import codec
from agentx_lb.agentx.codec import (
    END_OF_MIB,
    FLAG_NBO,
    GETNEXT,
    HDR_LEN,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    RESP_OK,
    RESP_START,
    U32_BE,
    ParseError,
    Range,
    response,
)
from agentx_lb.agentx.pins import Pins
from agentx_lb.clock import EventClock, MasterClock
from agentx_lb.oids import Oid, decode_oid, echo_oid, pack_oid
from agentx_lb.table import Table, is_known_object

__all__ = ["MAX_BULK_VARBINDS", "Responder"]

log = logging.getLogger(__name__)

MAX_BULK_VARBINDS = 2048  # GETBULK answer cap (snmpd 5.9 never sends GETBULK)
_U32_MAX = 2**32 - 1


class Responder:
    """Answers AgentX requests for the subtree `root` from the served table."""

    def __init__(
        self,
        root: Oid,
        *,
        max_age_s: float,
        pin_idle_s: float = 5.0,
        event_clock: EventClock | None = None,
    ) -> None:
        self.root: Oid = tuple(root)
        self.max_age_s = max_age_s
        self.events = event_clock or EventClock()
        self.master = MasterClock()
        self.pins = Pins(max_age_s, pin_idle_s)
        self._lock = threading.Lock()  # publish vs. re-stamping
        self._published = Table.empty(self.root, taken_at=0.0)
        self.served = self._published  # re-stamped for the master's clock
        self._seq = 0  # publish number of `served`
        self._withdrawn: tuple[Table | None, Table | None] = (None, None)
        # Sequential-walk shortcut: (table, canonical OID last answered, its index).
        self._hint: tuple[Table, bytes, int] | None = None
        # The last search range end seen on the fast path: (wire, canonical end
        # or None when it lies beyond every OID under the root).
        self._end: tuple[bytes, bytes | None] = (b"", None)
        self._root_end = pack_oid(self.root[:-1] + (self.root[-1] + 1,))
        self.fast_answers = 0  # GetNext PDUs answered by the fast path (tests, profiling)

    # ---- tables and clocks

    def publish(self, table: Table, now: float) -> None:
        """Serve `table` from the next PDU on (`now`: monotonic, for the pins)."""
        if table.root != self.root:
            raise ValueError(f"table root {table.root} is not the agent root {self.root}")
        with self._lock:
            served = table.restamped(self.master.stamp)
            self._published = table
            self._seq += 1
            self.served = served
            self.pins.on_publish(now)

    def learn_uptime(self, sys_uptime_cs: int) -> bool:
        """The master's sysUpTime from a Response received just now; re-stamps the
        served table (and lets walks go) when the offset changed."""
        if not self.master.learn(sys_uptime_cs, self.events.now_cs()):
            return False
        with self._lock:
            self.served = self._published.restamped(self.master.stamp)
            self._seq += 1
            self._withdrawn = (None, None)
            self.pins.clear()
        log.info("agentx clock offset_cs=%d sysuptime_cs=%d", self.master.offset_cs, sys_uptime_cs)
        return True

    def reset_walks(self) -> None:
        """A new session: no walk goes on from the last one."""
        self._hint = None
        self.pins.clear()

    def _view(self, table: Table, now: float) -> Table:
        """`table`, or only its scalars once its rows are older than the limit."""
        if not table.has_rows or now <= table.taken_at + self.max_age_s:
            return table
        cached, view = self._withdrawn
        if cached is not table:
            at = self.events.at_cs(table.taken_at + self.max_age_s)
            view = table.withdrawn(at).restamped(self.master.stamp)
            self._withdrawn = (table, view)
        assert view is not None
        return view

    # ---- requests

    def answer(self, pdu: bytes, now: float) -> bytes | None:
        """The response to one complete request PDU, or None when none is due."""
        if pdu[1] == GETNEXT and pdu[2] == FLAG_NBO and pdu[0] == 1:
            out = self._continued(pdu, now)
            if out is not None:
                return out
        version, ptype, flags = pdu[0], pdu[1], pdu[2]
        if version != 1:
            log.debug("agentx pdu dropped version=%d", version)
            return None
        served, seq = self.served, self._seq  # one table for the whole PDU
        nbo = flags & FLAG_NBO
        payload = pdu[HDR_LEN:]
        try:
            if ptype == GETNEXT:
                pos = codec.skip_context(payload, flags, nbo)
                ranges = codec.parse_ranges(payload, pos, nbo)
                # A walk's next request starts at its last answer; snmptable
                # asks a row per request (one range per column) and its first
                # range starts at the last row's first column: the key.
                key = ranges[0][2] if ranges and not any(r[1] for r in ranges) else None
                pin = self.pins.take(key, now)
                table = self._view(served, now) if pin is None else pin.table
                if pin is not None:
                    seq = pin.seq
                answers, first = self._getnext(table, ranges, now)
                if first >= 0:
                    vb = table.varbind(first)
                    self.pins.point(table, vb[4 : 8 + 4 * vb[4]], first, seq, now)
                return response(pdu, 0, 0, answers)
            table = self._view(served, now)
            if ptype == codec.GET:
                pos = codec.skip_context(payload, flags, nbo)
                return response(
                    pdu, 0, 0, self._get(table, codec.parse_ranges(payload, pos, nbo), now)
                )
            if ptype == codec.GETBULK:
                pos = codec.skip_context(payload, flags, nbo)
                if pos + 4 > len(payload):
                    raise ParseError("truncated getbulk")
                u16 = codec.U16_BE if nbo else codec.U16_LE
                non_rep = u16.unpack_from(payload, pos)[0]
                max_rep = u16.unpack_from(payload, pos + 2)[0]
                ranges = codec.parse_ranges(payload, pos + 4, nbo)
                return response(pdu, 0, 0, self._getbulk(table, ranges, non_rep, max_rep, now))
        except ParseError as exc:
            log.debug("agentx parse error type=%d err=%s", ptype, exc)
            return response(pdu, codec.PARSE_ERROR, 0, b"")
        if ptype == codec.TESTSET:
            return response(pdu, codec.NOT_WRITABLE, 1, b"")
        if ptype in (codec.COMMITSET, codec.UNDOSET):
            return response(pdu, codec.PROCESSING_ERROR, 0, b"")
        if ptype == codec.PING:
            return response(pdu, 0, 0, b"")
        # Responses (the session reads those), CleanupSet and unknown types: no answer.
        log.debug("agentx pdu ignored type=%d", ptype)
        return None

    def _continued(self, pdu: bytes, now: float) -> bytes | None:
        """The answer when `pdu` is a one-range GetNext (network byte order, no
        context) starting exactly at the OID answered last; None otherwise (the
        general path then answers it)."""
        pins = self.pins
        cursor = pins.cursor
        if cursor is None or now > cursor.deadline:
            return None  # no walk, or its rows are too old: the general path decides
        n = len(pdu)
        mid = HDR_LEN + 4 + 4 * pdu[HDR_LEN] if n > HDR_LEN else n
        # One SearchRange exactly: start OID, end OID, nothing after.
        if mid + 4 > n or mid + 4 + 4 * pdu[mid] != n or pdu[HDR_LEN:mid] != cursor.key:
            return None
        table = cursor.table
        i = cursor.index + 1
        if i >= len(table) or i == table.age_index:
            return None  # endOfMibView, or the age (answered live): the general path
        end_wire = pdu[mid:]
        end = self._end
        if end[0] != end_wire:
            end = self._end = (end_wire, self._end_canon(pdu, mid))
        if end[1] is not None and table.root_key + table.key(i) >= end[1]:
            return None
        vb = table.varbind(i)
        key = cursor.key = vb[4 : 8 + 4 * vb[4]]
        cursor.index = i  # moved in place
        cursor.used = now
        if pins.parked and key in pins.parked:
            pins.merge(cursor)
        self.fast_answers += 1
        return b"".join((RESP_START, pdu[4:16], U32_BE.pack(8 + len(vb)), RESP_OK, vb))

    def _end_canon(self, pdu: bytes, mid: int) -> bytes | None:
        """Canonical range end at `mid`; None when no end or it is past the root's subtree."""
        try:
            end, _, _, _ = decode_oid(pdu, mid, FLAG_NBO)
        except ParseError:
            return b""  # unreachable after the length check; b"" sends all to the general path
        if not end or end >= self._root_end:
            return None
        return end

    def _varbind(self, table: Table, i: int, now: float) -> bytes:
        vb = table.varbind(i)
        if i == table.age_index:
            age = min(max(int(now - table.taken_at), 0), _U32_MAX)
            vb = vb[:-4] + U32_BE.pack(age)
        return vb

    def _next(
        self, table: Table, start: bytes, include: int, end: bytes | None
    ) -> tuple[int, bytes]:
        """(index, canonical OID) of the next cell in range; index -1 when none."""
        hint = self._hint
        if hint is not None and not include and hint[0] is table and hint[1] == start:
            i = hint[2] + 1  # sequential walk: the successor of the last answer
        else:
            i = table.locate(start, bool(include))
        if i >= len(table):
            return -1, b""
        canon = table.root_key + table.key(i)
        if end is not None and canon >= end:
            return -1, b""
        self._hint = (table, canon, i)
        return i, canon

    def _getnext(self, table: Table, ranges: list[Range], now: float) -> tuple[bytes, int]:
        """The answers to `ranges`, and the index of the first range's answer
        (-1 when it is endOfMibView or there is no range)."""
        out = []
        first = -1
        for k, (start, include, echo, end) in enumerate(ranges):
            i, _ = self._next(table, start, include, end)
            if i >= 0:
                out.append(self._varbind(table, i, now))
                if k == 0:
                    first = i
            else:
                out.append(END_OF_MIB + echo)
        return b"".join(out), first

    def _get(self, table: Table, ranges: list[Range], now: float) -> bytes:
        out = []
        rk = table.root_key
        for start, _, echo, _ in ranges:
            i = table.locate(start, True)
            if i < len(table) and rk + table.key(i) == start:
                out.append(self._varbind(table, i, now))
                continue
            oid = struct.unpack(f"!{len(start) // 4}I", start)
            missing = NO_SUCH_INSTANCE if is_known_object(table.root, oid) else NO_SUCH_OBJECT
            out.append(missing + echo)
        return b"".join(out)

    def _getbulk(
        self, table: Table, ranges: list[Range], non_rep: int, max_rep: int, now: float
    ) -> bytes:
        out = [self._getnext(table, ranges[:non_rep], now)[0]]
        # [start (None at endOfMibView), include, echo, end], updated in place
        repeaters: list[list[Any]] = [[s, inc, echo, end] for s, inc, echo, end in ranges[non_rep:]]
        if not repeaters:
            return out[0]
        reps = min(max_rep, MAX_BULK_VARBINDS // len(repeaters))
        for _ in range(reps):
            all_end = True
            for r in repeaters:
                i, canon = self._next(table, r[0], r[1], r[3]) if r[0] is not None else (-1, b"")
                if i >= 0:
                    out.append(self._varbind(table, i, now))
                    r[0], r[1], r[2] = canon, 0, echo_oid(canon)
                    all_end = False
                else:
                    out.append(END_OF_MIB + r[2])
                    r[0] = None  # stays at endOfMibView
            if all_end:
                break
        return b"".join(out)
