"""Snapshot -> immutable, sorted table of pre-encoded AgentX varbinds (pure).

Every value is validated for its SNMP type here, so nothing can fail later in
the protocol loop: a bad cell is dropped and the rest of the table is served.
The drops come back as data (`Table.drops`); the pipeline logs them.

Wire format (RFC 2741 5.1, 5.4), always network byte order:
  VarBind = type u16, reserved u16, OID, value
  OID     = n_subid u8, prefix u8, include u8, reserved u8, n_subid x u32
The `1.3.6.1.X` prefix compression follows pyagentx3's encoder.

Memory layout (why not a tuple per cell): at 10,000 VIPs x 8 backends the
table has ~600,000 cells; an object or two per cell would cost tens of MB per
table (two are alive during a swap) and a million objects for every full GC
pass to walk, holding the GIL while the protocol loop waits. Instead the table
is one `_Segment` per column (GETNEXT order is column-major) and per scalar:

  key   = column key + row suffix; each table's row index suffixes (packed
          big-endian u32 sub-ids, so keys compare as bytes) are stored once
          (`_Rows`) and shared by its columns;
  value = a slice of the column's one values buffer (fixed width, or offsets
          in an `array('I')`);
  head  = the column's `type + OID header + root sub-ids + column key`.

A varbind is `head + suffix + value`: the protocol loop only slices and joins
bytes; lookups are a bisect over the column keys, then over one column's rows.
`build_table(snapshot, root, previous)` shares the columns whose inputs did not
change with the previous table (names, addresses, the backend rows' order and
suffixes) and encodes integer columns in bulk (`array`, byteswapped).
"""

from __future__ import annotations

import socket
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from operator import attrgetter, itemgetter
from typing import Any, TypeVar, cast, overload

from agentx_lb.model import Backend, Encap, Frame, Snapshot, Vip, VipRow
from agentx_lb.oids import (
    AGENT,
    BACKEND_ENTRY,
    BACKEND_REMOVED,
    BACKEND_USED,
    INET_ADDRESS_IPV4,
    INET_ADDRESS_IPV6,
    OPER_NO_ACTIVE_BACKENDS,
    OPER_UP,
    TRUTH_FALSE,
    TRUTH_TRUE,
    VIP_ENTRY,
    AgentScalar,
    BackendColumn,
    Oid,
    SnmpType,
    VipColumn,
    encode_oid,
    pack_oid,
)
from agentx_lb.values import (
    BULK,
    DISPLAY_STRING_MAX,
    ENCODERS,
    EVENT_MAX,
    U32_MAX,
    CellError,
    Inet,
    enc_counter64,
    enc_display,
    enc_inet,
    enc_integer,
    enc_unsigned32,
    inet_bytes,
)

_T = TypeVar("_T")

_U32 = struct.Struct("!I")
_I32 = struct.Struct("!i")


@dataclass(frozen=True, slots=True)
class CellDrop:
    """A cell left out of a table: its column, OID (relative to the root) and why."""

    column: str  # the MIB name
    oid: Oid
    kind: str  # the problem class (`CellError.kind`): one key per column and kind
    error: str  # the whole message


# ---------------------------------------------------------------- the table


class _Rows:
    """Index suffixes of one table's rows in OID order (packed u32 sub-ids, back to back).

    Shared by every column segment of that table and by the next build when
    the rows did not change.
    """

    __slots__ = ("lens", "off", "suf")

    def __init__(self, parts: Sequence[bytes]) -> None:
        self.suf = b"".join(parts)
        self.off = array("I", accumulate(map(len, parts), initial=0))
        self.lens = frozenset(map(len, parts))

    @classmethod
    def of_u32(cls, subids: Sequence[int]) -> _Rows:
        """Rows whose suffix is one sub-id each, packed in one call rather than one per row."""
        rows = cls.__new__(cls)
        rows.suf = struct.pack(f"!{len(subids)}I", *subids)
        rows.off = array("I", range(0, 4 * len(subids) + 1, 4))
        rows.lens = frozenset((4,)) if subids else frozenset()
        return rows

    def __len__(self) -> int:
        return len(self.off) - 1

    def suffix(self, r: int) -> bytes:
        off = self.off
        return self.suf[off[r] : off[r + 1]]


class _Segment:
    """One column (or one scalar): cells `ckey + row suffix`, values in one buffer.

    `sel` maps the segment's cell positions to rows (None: every row has a
    cell); values are `width` octets each, or delimited by `voff`.
    """

    __slots__ = ("ckey", "dropped", "events", "heads", "n", "rows", "sel", "vals", "voff", "width")

    def __init__(
        self,
        ckey: bytes,
        heads: dict[int, bytes],
        rows: _Rows,
        sel: array[int] | None,
        vals: bytes,
        voff: array[int] | None,
        width: int,
        dropped: int,
        events: array[int] | None = None,
    ) -> None:
        self.ckey = ckey
        self.heads = heads  # suffix length -> type, OID header, root sub-ids, ckey
        self.rows = rows
        self.sel = sel
        self.vals = vals
        self.voff = voff
        self.width = width
        self.n = len(rows) if sel is None else len(sel)
        self.dropped = dropped
        # A TimeStamp column: its events (`agentx_lb.clock.EventClock` centiseconds)
        # per cell; `vals` holds them converted by the last `Table.restamped`.
        self.events = events

    def with_values(self, vals: bytes, events: array[int] | None = None) -> _Segment:
        """This segment's cells with other fixed-width values (4 octets each)."""
        return _Segment(
            self.ckey, self.heads, self.rows, self.sel, vals, None, 4, self.dropped, events
        )

    def search(self, k: bytes, include: bool) -> int:
        """First position whose suffix is >= k (include) or > k."""
        lo, hi = 0, self.n
        suf, off, sel = self.rows.suf, self.rows.off, self.sel
        while lo < hi:
            mid = (lo + hi) >> 1
            r = mid if sel is None else sel[mid]
            s = suf[off[r] : off[r + 1]]
            if s < k or (not include and s == k):
                lo = mid + 1
            else:
                hi = mid
        return lo


class Table:
    """Immutable sorted cells under `root`, each a pre-encoded AgentX VarBind.

    Stored column by column (a few hundred objects at any size, see `_Segment`).
    `oids` and `varbinds` are read-only sequences in OID order (computed per
    access; the protocol loop uses the byte-level methods instead).
    """

    __slots__ = (
        "_ckeys",
        "_dropped_outside",
        "_last",
        "_memo",
        "_n",
        "_segs",
        "_starts",
        "age_index",
        "dropped",
        "drops",
        "has_rows",
        "root",
        "root_key",
        "taken_at",
    )

    def __init__(
        self,
        root: Oid,
        segments: Sequence[_Segment] = (),
        dropped: int = 0,
        memo: object = None,
        *,
        taken_at: float = 0.0,
        drops: tuple[CellDrop, ...] = (),
    ) -> None:
        self.root: Oid = tuple(root)
        self.root_key: bytes = pack_oid(self.root)
        self._segs = tuple(s for s in segments if s.n)
        starts = [0]
        for s in self._segs:
            starts.append(starts[-1] + s.n)
        self._starts = starts
        self._ckeys = [s.ckey for s in self._segs]
        self._n = starts[-1]
        # cells rejected by validation in this build (reused columns included)
        self._dropped_outside = dropped
        self.dropped = dropped + sum(s.dropped for s in self._segs)
        # the cells this build dropped (a reused column's were reported by the
        # build that encoded it)
        self.drops = drops
        self._memo = memo  # what the next build may reuse (see build_table)
        # When the scrape its rows come from started (monotonic seconds; with no
        # rows ever scraped, when the pipeline started): the age of the data.
        self.taken_at = taken_at
        self.has_rows = any(not _is_scalar(s.ckey) for s in self._segs)
        self.age_index = -1  # the vppLbAgentTableAge cell, answered live
        for k, seg in enumerate(self._segs):
            if seg.ckey == _AGE_CKEY:
                self.age_index = starts[k]
        # (first index, end index, segment) of the last lookup: a walk stays in
        # one column for many cells. One tuple, replaced whole (thread-safe).
        self._last: tuple[int, int, _Segment | None] = (0, 0, None)

    @classmethod
    def empty(cls, root: Oid, taken_at: float = 0.0) -> Table:
        return cls(root, taken_at=taken_at)

    def _derived(self, segments: Sequence[_Segment]) -> Table:
        return Table(
            self.root,
            segments,
            self._dropped_outside,
            self._memo,
            taken_at=self.taken_at,
            drops=self.drops,
        )

    def restamped(self, stamp: Callable[[int], int]) -> Table:
        """This table with every TimeStamp cell set to `stamp(event)` (the event
        clock -> snmpd's sysUpTime, see `agentx_lb.clock`); the other columns are
        shared, not copied."""
        segs = []
        for seg in self._segs:
            if seg.events is not None:
                a = array("I", map(stamp, seg.events))
                if _SWAP:
                    a.byteswap()
                seg = seg.with_values(a.tobytes(), seg.events)
            segs.append(seg)
        return self._derived(segs)

    def withdrawn(self, at_event_cs: int) -> Table:
        """The scalars of this table as served once its rows are too old: no VIP
        or backend row, vppLbAgentVipCount 0, vppLbAgentVppConnected false, and
        the table's last change at `at_event_cs` (when its rows expired)."""
        segs = []
        for seg in self._segs:
            if not _is_scalar(seg.ckey):
                continue
            if seg.ckey == _VIP_COUNT_CKEY:
                seg = seg.with_values(_U32.pack(0))
            elif seg.ckey == _CONNECTED_CKEY:
                seg = seg.with_values(_I32.pack(TRUTH_FALSE))
            elif seg.ckey == _LAST_CHANGE_CKEY:
                seg = seg.with_values(_U32.pack(0), array("q", [at_event_cs]))
            segs.append(seg)
        return self._derived(segs)

    def __len__(self) -> int:
        return self._n

    # ---- byte-level access (the protocol loop's hot path)

    def _at(self, i: int) -> tuple[_Segment, int]:
        lo, hi, seg = self._last
        if lo <= i < hi:
            return seg, i - lo  # type: ignore[return-value]  # _last holds a segment once set
        if not 0 <= i < self._n:
            raise IndexError(i)
        s = bisect_right(self._starts, i) - 1
        lo = self._starts[s]
        seg = self._segs[s]
        self._last = (lo, lo + seg.n, seg)
        return seg, i - lo

    def key(self, i: int) -> bytes:
        """Sub-ids below the root of cell i, packed big-endian (sorts like OIDs)."""
        seg, p = self._at(i)
        sel = seg.sel
        r = p if sel is None else sel[p]
        off = seg.rows.off
        return seg.ckey + seg.rows.suf[off[r] : off[r + 1]]

    def varbind(self, i: int) -> bytes:
        seg, p = self._at(i)
        sel = seg.sel
        r = p if sel is None else sel[p]
        off = seg.rows.off
        a, b = off[r], off[r + 1]
        w = seg.width
        if w:
            value = seg.vals[p * w : p * w + w]
        else:
            vo = seg.voff
            value = seg.vals[vo[p] : vo[p + 1]]  # type: ignore[index]  # voff is set when width is 0
        return b"".join((seg.heads[b - a], seg.rows.suf[a:b], value))

    def search(self, key: bytes, include: bool) -> int:
        """Index of the first cell with key >= key (include) or > key (not include)."""
        # Column keys are distinct and none is a prefix of another: the one
        # segment `key` can fall into is the last whose column key is <= key.
        j = bisect_right(self._ckeys, key) - 1
        if j >= 0:
            ck = self._ckeys[j]
            if key.startswith(ck):
                return self._starts[j] + self._segs[j].search(key[len(ck) :], include)
        return self._starts[j + 1]

    def locate(self, canon: bytes, include: bool) -> int:
        """Like `search`, for a full OID in canonical form (see `pack_oid`)."""
        rk = self.root_key
        if canon.startswith(rk):
            return self.search(canon[len(rk) :], include)
        return 0 if canon < rk else self._n

    # ---- tuple-level API

    def next_after(self, oid: Oid, include: bool) -> int:
        """Index of the first cell at/after (`include`) or after `oid`; len(self) if none."""
        return self.locate(pack_oid(oid), include)

    def get(self, oid: Oid) -> bytes | None:
        i = self.next_after(oid, True)
        if i < self._n and self.oid(i) == tuple(oid):
            return self.varbind(i)
        return None

    def oid(self, i: int) -> Oid:
        k = self.key(i)
        return self.root + struct.unpack(f"!{len(k) // 4}I", k)

    @property
    def oids(self) -> Sequence[Oid]:
        return _View(self, self.oid)

    @property
    def varbinds(self) -> Sequence[bytes]:
        return _View(self, self.varbind)


_AGENT_KEY = pack_oid(AGENT)
_AGE_CKEY = _AGENT_KEY + _U32.pack(AgentScalar.TABLE_AGE)
_VIP_COUNT_CKEY = _AGENT_KEY + _U32.pack(AgentScalar.VIP_COUNT)
_CONNECTED_CKEY = _AGENT_KEY + _U32.pack(AgentScalar.VPP_CONNECTED)
_LAST_CHANGE_CKEY = _AGENT_KEY + _U32.pack(AgentScalar.VIP_TABLE_LAST_CHANGE)


def _is_scalar(ckey: bytes) -> bool:
    return len(ckey) == len(_AGENT_KEY) + 4 and ckey.startswith(_AGENT_KEY)


class _View(Sequence[_T]):
    """Read-only sequence over a Table, materialising items on access."""

    __slots__ = ("_f", "_t")

    def __init__(self, table: Table, item: Callable[[int], _T]) -> None:
        self._t = table
        self._f = item

    def __len__(self) -> int:
        return len(self._t)

    @overload
    def __getitem__(self, i: int) -> _T: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[_T, ...]: ...
    def __getitem__(self, i: int | slice) -> _T | tuple[_T, ...]:
        if isinstance(i, slice):
            return tuple(self._f(j) for j in range(*i.indices(len(self._t))))
        n = len(self._t)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._f(i)

    def __iter__(self) -> Iterator[_T]:
        return (self._f(i) for i in range(len(self._t)))


def is_known_object(root: Oid, oid: Oid) -> bool:
    """Does `oid` lie under a scalar or column object the MIB defines?"""
    n = len(root)
    if tuple(oid[:n]) != tuple(root):
        return False
    rel = tuple(oid[n:])
    if rel[:2] == AGENT:
        return len(rel) > 2 and rel[2] in AgentScalar._value2member_map_
    if rel[:3] == VIP_ENTRY:
        return len(rel) > 3 and rel[3] in _VIP_COLS
    if rel[:3] == BACKEND_ENTRY:
        return len(rel) > 3 and rel[3] in _BACKEND_COLS
    return False


_VIP_COLS = frozenset(int(c) for c in VipColumn if c != VipColumn.INDEX)
_BACKEND_COLS = frozenset(
    int(c) for c in BackendColumn if c not in (BackendColumn.ADDRESS_TYPE, BackendColumn.ADDRESS)
)


# ---------------------------------------------------------------- the builder

# Bulk encoders: array typecode and range per SNMP type (big-endian after byteswap).
_SWAP = sys.byteorder == "little"


class _Builder:
    """Encodes columns into segments, in OID order."""

    def __init__(self, root: Oid) -> None:
        root_wire = encode_oid(tuple(root))  # n_subid, prefix, include, reserved, sub-ids
        self.prefix = root_wire[1]
        self.root_rest_len = root_wire[0]
        self.root_wire = root_wire[4:]
        self.segments: list[_Segment] = []
        self.dropped = 0  # drops outside any segment (bad row indices)
        self.drops: list[CellDrop] = []  # every cell this build dropped

    def heads(self, snmp_type: int, ckey: bytes, rows: _Rows) -> dict[int, bytes]:
        """`type, reserved, OID header, root sub-ids, column key` per suffix length."""
        out = {}
        for n in rows.lens:
            n_sub = self.root_rest_len + (len(ckey) + n) // 4
            if n_sub > 128:
                raise ValueError("OID too long for AgentX")
            out[n] = (
                struct.pack("!HHBBBB", snmp_type, 0, n_sub, self.prefix, 0, 0)
                + self.root_wire
                + ckey
            )
        return out

    def column(
        self,
        ckey: bytes,
        snmp_type: int,
        name: str,
        rows: _Rows,
        raws: Sequence[object],
        encode: Callable[[object], bytes],
        *,
        lo: int | None = None,
        hi: int | None = None,
        allowed: frozenset[int] | None = None,
        none_absent: bool = True,
    ) -> _Segment:
        """Validate and encode one column (raws aligned with rows); bad cells dropped."""
        if snmp_type == SnmpType.TIMETICKS:
            seg = self._stamps(ckey, name, rows, raws)
            self.segments.append(seg)
            return seg
        bulk = self._bulk(ckey, snmp_type, rows, raws, lo, hi, allowed)
        if bulk is None:
            bulk = self._cells(ckey, snmp_type, name, rows, raws, encode, none_absent)
        self.segments.append(bulk)
        return bulk

    def _bulk(
        self,
        ckey: bytes,
        snmp_type: int,
        rows: _Rows,
        raws: Sequence[object],
        lo: int | None,
        hi: int | None,
        allowed: frozenset[int] | None,
    ) -> _Segment | None:
        """All cells plain ints within range: one array, no per-cell work (else None)."""
        bulk = BULK.get(snmp_type)
        if bulk is None or not raws or set(map(type, raws)) != {int}:
            return None
        ints = cast("Sequence[int]", raws)  # every cell's type is int (checked above)
        try:
            # array() refuses a value outside the SNMP type's range (asserted below).
            a = array(bulk[0], ints)
        except OverflowError:
            return None
        if (lo is not None and min(ints) < lo) or (hi is not None and max(ints) > hi):
            return None
        if allowed is not None and not allowed.issuperset(ints):
            return None
        if _SWAP:
            a.byteswap()
        return _Segment(
            ckey, self.heads(snmp_type, ckey, rows), rows, None, a.tobytes(), None, a.itemsize, 0
        )

    def _stamps(self, ckey: bytes, name: str, rows: _Rows, raws: Sequence[object]) -> _Segment:
        """A TimeStamp column: events kept as given (validated), served values 0
        until `Table.restamped` converts them to snmpd's clock."""
        events: list[int] = []
        sel: list[int] = []
        dropped = 0
        for r, raw in enumerate(raws):
            if type(raw) is not int or not 0 <= raw <= EVENT_MAX:
                dropped += 1
                self._note(name, ckey + rows.suffix(r), CellError("not an event time", repr(raw)))
                continue
            events.append(raw)
            sel.append(r)
        return _Segment(
            ckey,
            self.heads(SnmpType.TIMETICKS, ckey, rows),
            rows,
            None if len(sel) == len(rows) else array("I", sel),
            bytes(4 * len(events)),
            None,
            4,
            dropped,
            array("q", events),
        )

    def _cells(
        self,
        ckey: bytes,
        snmp_type: int,
        name: str,
        rows: _Rows,
        raws: Sequence[object],
        encode: Callable[[object], bytes],
        none_absent: bool,
    ) -> _Segment:
        parts: list[bytes] = []
        sel: list[int] = []
        dropped = 0
        for r, raw in enumerate(raws):
            if raw is None and none_absent:  # unknown (e.g. no exact FIB entry): no cell, never 0
                continue
            try:
                value = encode(raw)
            except CellError as exc:
                dropped += 1
                self._note(name, ckey + rows.suffix(r), exc)
                continue
            parts.append(value)
            sel.append(r)
        widths = set(map(len, parts))
        width = widths.pop() if len(widths) == 1 else 0
        voff = None if width else array("I", accumulate(map(len, parts), initial=0))
        return _Segment(
            ckey,
            self.heads(snmp_type, ckey, rows),
            rows,
            None if len(sel) == len(rows) else array("I", sel),
            b"".join(parts),
            voff,
            width,
            dropped,
        )

    def encoded(
        self,
        ckey: bytes,
        snmp_type: int,
        name: str,
        rows: _Rows,
        cells: Sequence[bytes | CellError],
        fresh: Sequence[bool],
        clean: bool,
    ) -> _Segment:
        """A column of cells encoded already (aligned with rows); a CellError
        cell is left out, and reported when `fresh` (encoded by this build).
        `clean`: no cell is a CellError (known from `_VipCells.clean`)."""
        if clean:
            parts = cast("Sequence[bytes]", cells)
            sel = None
            dropped = 0
        else:
            parts = []
            chosen: list[int] = []
            dropped = 0
            for r, cell in enumerate(cells):
                if isinstance(cell, CellError):
                    dropped += 1
                    if fresh[r]:
                        self._note(name, ckey + rows.suffix(r), cell)
                    continue
                parts.append(cell)
                chosen.append(r)
            sel = array("I", chosen)
        widths = set(map(len, parts))
        width = widths.pop() if len(widths) == 1 else 0
        voff = None if width else array("I", accumulate(map(len, parts), initial=0))
        seg = _Segment(
            ckey, self.heads(snmp_type, ckey, rows), rows, sel, b"".join(parts), voff, width,
            dropped,
        )  # fmt: skip
        self.segments.append(seg)
        return seg

    def _note(self, column: str, oid_key: bytes, exc: CellError) -> None:
        rel = struct.unpack(f"!{len(oid_key) // 4}I", oid_key)
        self.drops.append(CellDrop(column, rel, exc.kind, str(exc)))

    def drop(self, column: str, oid_key: bytes, exc: CellError) -> None:
        self.dropped += 1
        self._note(column, oid_key, exc)

    def finish(self, root: Oid, memo: object, taken_at: float) -> Table:
        return Table(
            root, self.segments, self.dropped, memo, taken_at=taken_at, drops=tuple(self.drops)
        )


def _scalar_values(
    snapshot: Snapshot,
) -> list[tuple[AgentScalar, object, Callable[[object], bytes]]]:
    """(scalar, raw value, encoder) for the served scalars, in sub-id order."""
    h = snapshot.health
    last_error: str | bytes = h.last_error
    if isinstance(last_error, str):
        # An error text is worth serving cut short rather than not at all.
        last_error = last_error.encode("utf-8", "replace")[:DISPLAY_STRING_MAX]
    out: list[tuple[AgentScalar, object, Callable[[object], bytes]]] = [
        (
            AgentScalar.VPP_CONNECTED,
            TRUTH_TRUE if h.vpp_connected else TRUTH_FALSE,
            enc_integer,
        ),
        (AgentScalar.VPP_VERSION, h.vpp_version, enc_display),
        (AgentScalar.VIP_COUNT, h.vip_count, enc_unsigned32),
        (AgentScalar.VIP_TABLE_LAST_CHANGE, h.vip_table_last_change_cs, enc_unsigned32),
        (AgentScalar.TABLE_AGE, h.table_age_s, enc_unsigned32),
        (AgentScalar.LAST_SCRAPE_DURATION, h.last_scrape_duration_ms, enc_unsigned32),
        (AgentScalar.SCRAPE_FAILURES, h.scrape_failures, enc_counter64),
        (AgentScalar.CONSECUTIVE_FAILURES, h.consecutive_failures, enc_unsigned32),
        (AgentScalar.LAST_ERROR, last_error, enc_display),
    ]
    s = snapshot.settings
    if s is not None:
        if s.ip4_src_address is not None:
            out.append((AgentScalar.IP4_SRC_ADDRESS, Inet(s.ip4_src_address, 4), enc_inet))
        if s.ip6_src_address is not None:
            out.append((AgentScalar.IP6_SRC_ADDRESS, Inet(s.ip6_src_address, 6), enc_inet))
        if s.sticky_buckets_per_core is not None:
            out.append(
                (AgentScalar.STICKY_BUCKETS_PER_CORE, s.sticky_buckets_per_core, enc_unsigned32)
            )
        if s.flow_timeout_s is not None:
            out.append((AgentScalar.FLOW_TIMEOUT, s.flow_timeout_s, enc_unsigned32))
    return out


_VIP_COLUMNS = [c for c in VipColumn if c != VipColumn.INDEX]
# Per-column range checks beyond the SNMP base type (MIB SYNTAX).
_VIP_LIMITS = {
    VipColumn.PROTOCOL: 255,
    VipColumn.PORT: 65535,
    VipColumn.ADDRESS_TYPE: 2,
}

_ENCAP_VALUES = frozenset(int(e) for e in Encap)  # the MIB's enumeration, nothing else


def _encode_vip(col: VipColumn, raw: object) -> bytes:
    if isinstance(raw, Inet):
        return enc_inet(raw)
    limit = _VIP_LIMITS.get(col)
    if limit is not None and type(raw) is int and not 0 <= raw <= limit:
        raise CellError("out of range for column", f"{raw} > {limit}")
    if col == VipColumn.PREFIX_LENGTH and type(raw) is int and not 0 <= raw <= 128:
        raise CellError("out of range for column", str(raw))
    if col == VipColumn.ENCAP and raw not in _ENCAP_VALUES:
        raise CellError("not a vppLbVipEncap value", repr(raw))
    return ENCODERS[col.snmp_type](raw)


def _backend_index(vip_index: int, b: Backend) -> bytes:
    """Index part of a backend row: vip_index, addr_type, addr_len, *addr octets."""
    version = b.ip_version
    try:
        # inet_pton (C) accepts exactly the canonical forms the parser emits;
        # anything it refuses goes through ipaddress for the precise error.
        packed = socket.inet_pton(socket.AF_INET6 if version == 6 else socket.AF_INET, b.address)
    except (OSError, TypeError, ValueError):
        packed = inet_bytes(b.address, version)
    atype = INET_ADDRESS_IPV6 if len(packed) == 16 else INET_ADDRESS_IPV4
    return struct.pack(f"!III{len(packed)}I", vip_index, atype, len(packed), *packed)


def _enc_weight(value: object) -> bytes:
    if type(value) is int and not 0 <= value <= 100:
        raise CellError("out of range for column", str(value))
    return enc_unsigned32(value)


@dataclass(frozen=True, slots=True)
class _VipCells:
    """One VIP's encoded configuration cells, kept while its Vip object stands.

    A changed or new VIP (a new Vip object, the parser's rule) is encoded
    again; every other one reuses these, so a table build after VIPs churned
    costs per changed VIP, not per VIP. A cell that failed validation is its
    CellError (reported by the build that made it).
    """

    name: bytes | CellError
    address: bytes | CellError
    backend_order: tuple[int, ...]  # the VIP's backend positions in OID order (bad, duplicate out)
    backend_keys: tuple[bytes, ...]  # their index suffixes, in that order
    backend_names: tuple[bytes | CellError, ...]  # their vppLbBackendName cells, in that order
    backend_drops: int  # backends left out (bad or duplicate address)
    clean: bool  # no CellError in name, address or backend_names


@dataclass(frozen=True, slots=True)
class _Memo:
    """What one build keeps for the next: its VIPs and what they gave.

    Every column that depends on the VIPs' configuration only (all but the
    counters, the discontinuity times and the flows) is reused whole when the
    next build has the same VIPs (the parser hands back the same Vip objects
    while VPP's configuration stands, so the compare is one identity check per
    VIP); otherwise each unchanged VIP's encoded cells are (`_VipCells`).
    """

    vips: tuple[Vip, ...]  # as given (before validation); keeps the objects of `cells` alive
    cells: dict[int, _VipCells]  # id(vip) -> its cells, for the VIPs served
    vip_rows: _Rows
    static_segs: dict[int, _Segment]  # column key -> segment, for the same VIPs
    b_order: array[int]  # flat backend positions in OID order (bad and duplicate ones left out)
    b_in_order: bool  # b_order is every backend in VPP's order
    b_rows: _Rows
    b_dropped: int
    b_name_seg: _Segment
    vip_drops: tuple[CellDrop, ...]  # bad VIP indexes (kept with the VIPs)

    @property
    def name_seg(self) -> _Segment:
        return self.static_segs[VipColumn.NAME]


# Columns that change with every scrape; every other one depends on the VIPs only.
_DYNAMIC_VIP_COLUMNS = frozenset(
    {
        VipColumn.NEXT_PACKETS,
        VipColumn.FIRST_PACKETS,
        VipColumn.UNTRACKED_PACKETS,
        VipColumn.NO_SERVER_PACKETS,
        VipColumn.ROUTE_PACKETS,
        VipColumn.ROUTE_OCTETS,
        VipColumn.DISCONTINUITY_TIME,
    }
)


def _valid_rows(bld: _Builder, frame: Frame) -> Frame:
    """`frame` sorted by VIP index, rows with a bad or duplicate index dropped."""
    indices = [v.index for v in frame.vips]
    if (
        all(map(int.__lt__, indices, indices[1:]))
        and all(type(i) is int for i in indices)
        and (not indices or (indices[0] >= 1 and indices[-1] <= U32_MAX))
    ):
        return frame  # reduce's rows: sorted, valid
    keep: list[int] = []
    seen: set[int] = set()
    # Bad (non-int) indexes first, to be dropped; sorted() is stable: first one wins.
    for k in sorted(range(len(indices)), key=lambda k: _int_or(indices[k], -1)):
        idx = indices[k]
        if type(idx) is not int or not 1 <= idx <= U32_MAX or idx in seen:
            bld.drop(
                "vppLbVipIndex",
                pack_oid(VIP_ENTRY),
                CellError("bad or duplicate VIP index", repr(idx)),
            )
            continue
        seen.add(idx)
        keep.append(k)
    starts = frame.backend_starts()
    flows: list[int] = []
    for k in keep:
        flows.extend(frame.flows[starts[k] : starts[k + 1]])
    return Frame(
        tuple(frame.vips[k] for k in keep),
        [[column[k] for k in keep] for column in frame.counters],
        [frame.discontinuity_cs[k] for k in keep],
        flows,
    )


def _int_or(value: object, default: int) -> int:
    return value if type(value) is int else default


def build_table(snapshot: Snapshot, root: Oid, previous: Table | None = None) -> Table:
    """Validate and encode every cell of `snapshot` under `root`, in OID order.

    With `previous` (the table this one replaces) the encoded columns whose
    inputs did not change are shared with it instead of encoded again: the
    result is the same table either way.
    """
    root = tuple(root)
    bld = _Builder(root)
    memo = previous._memo if previous is not None and previous.root == root else None
    if not isinstance(memo, _Memo):
        memo = None

    # Scalars: root.1.1.<scalar>.0, one segment each.
    agent = pack_oid(AGENT)
    zero = _Rows([_U32.pack(0)])
    for scalar, raw, encode in _scalar_values(snapshot):
        ckey = agent + _U32.pack(scalar)
        bld.column(ckey, scalar.snmp_type, scalar.mib_name, zero, [raw], encode, none_absent=False)

    frame = Frame.from_rows(snapshot.rows)
    if memo is not None and memo.vips == frame.vips:
        # The same VIPs as last time (the common case): only what moves is encoded.
        return _build_moving(bld, frame, memo, root, snapshot.taken_at)
    drops_before = len(bld.drops)
    frame = _valid_rows(bld, frame)
    vip_drops = tuple(bld.drops[drops_before:])
    vips = frame.vips
    vrows = _Rows.of_u32([v.index for v in vips])
    if memo is not None and memo.vip_rows.suf == vrows.suf:
        vrows = memo.vip_rows
    known = memo.cells if memo is not None else {}
    cells = [known.get(id(v)) or _vip_cells(v) for v in vips]
    fresh = [id(v) not in known for v in vips]
    static: tuple[list[object], ...] = (
        [v.address for v in vips],
        [v.ip_version for v in vips],
        [v.prefix_length for v in vips],
        [v.protocol for v in vips],
        [v.port for v in vips],
    )
    static_segs: dict[int, _Segment] = {}
    clean = all(map(_CLEAN, cells))

    entry = pack_oid(VIP_ENTRY)
    actives = [len([b for b in v.backends if b.used]) for v in vips]
    for col in _VIP_COLUMNS:
        ckey = entry + _U32.pack(col)
        if col == VipColumn.NAME or col == VipColumn.ADDRESS:
            encoded = list(map(_NAME_CELL if col == VipColumn.NAME else _ADDRESS_CELL, cells))
            seg = bld.encoded(ckey, col.snmp_type, col.mib_name, vrows, encoded, fresh, clean)
        else:
            seg = _vip_segment(bld, ckey, col, vrows, _vip_column(col, frame, actives, static))
        if col not in _DYNAMIC_VIP_COLUMNS:
            static_segs[col] = seg
    del actives

    # Backend rows in OID order: VIP by VIP (rows are sorted by VIP index,
    # the first sub-id of a backend's index), each VIP's in its own order.
    starts = list(accumulate((len(v.backends) for v in vips), initial=0))
    order_list: list[int] = []
    keys: list[bytes] = []
    name_cells: list[bytes | CellError] = []
    name_fresh: list[bool] = []
    b_dropped = 0
    for k, c in enumerate(cells):
        at = starts[k]
        n = len(c.backend_order)
        if n == starts[k + 1] - at and c.backend_order == tuple(range(n)):
            order_list.extend(range(at, at + n))
        else:
            order_list.extend([at + j for j in c.backend_order])
        keys.extend(c.backend_keys)
        name_cells.extend(c.backend_names)
        name_fresh.extend([fresh[k]] * n)
        b_dropped += c.backend_drops
        if fresh[k] and c.backend_drops:
            _note_backend_drops(bld, vips[k])
    bld.dropped += b_dropped
    order = array("I", order_list)
    del order_list
    brows = memo.b_rows if memo is not None and memo.b_rows.suf == b"".join(keys) else _Rows(keys)
    del keys
    backs = [b for v in vips for b in v.backends]
    sb = [backs[j] for j in order]

    bentry = pack_oid(BACKEND_ENTRY)
    for bcol, raws, encode, kw in (
        (BackendColumn.STATE, [BACKEND_USED if b.used else BACKEND_REMOVED for b in sb],
         enc_integer, {}),
        (BackendColumn.WEIGHT, [b.weight for b in sb], _enc_weight, {"lo": 0, "hi": 100}),
        (BackendColumn.BUCKETS, [b.buckets for b in sb], enc_unsigned32, {"none_absent": False}),
    ):  # fmt: skip
        static_segs[bcol + _BACKEND_KEY] = bld.column(
            bentry + _U32.pack(bcol), bcol.snmp_type, bcol.mib_name, brows, raws, encode, **kw
        )
    del sb
    in_order = _in_order(order, len(backs))
    _flows_segment(bld, frame, order, in_order, brows)
    bcol = BackendColumn.NAME
    b_name_seg = bld.encoded(
        bentry + _U32.pack(bcol), bcol.snmp_type, bcol.mib_name, brows, name_cells, name_fresh,
        clean,
    )  # fmt: skip
    next_memo = _Memo(
        snapshot_vips(snapshot.rows, frame), dict(zip(map(id, vips), cells)), vrows,
        static_segs, order, in_order, brows, b_dropped, b_name_seg, vip_drops,
    )  # fmt: skip
    return bld.finish(root, next_memo, snapshot.taken_at)


_CLEAN = attrgetter("clean")
_NAME_CELL = attrgetter("name")
_ADDRESS_CELL = attrgetter("address")


def _vip_cells(vip: Vip) -> _VipCells:
    """Encode what depends on one VIP's configuration only."""
    name = vip.name
    name_cell = _try(partial(_encode_vip, VipColumn.NAME), name)
    address_cell = _try(partial(_encode_vip, VipColumn.ADDRESS), Inet(vip.address, vip.ip_version))
    keyed: list[tuple[bytes, int]] = []
    for j, b in enumerate(vip.backends):
        try:
            keyed.append((_backend_index(vip.index, b), j))
        except CellError:
            continue  # reported by _note_backend_drops
    keyed.sort(key=itemgetter(0))  # stable: of two equal keys the first listed wins
    order: list[int] = []
    keys: list[bytes] = []
    for key, j in keyed:
        if keys and keys[-1] == key:
            continue  # a duplicate backend (reported by _note_backend_drops)
        keys.append(key)
        order.append(j)
    backends = vip.backends
    names = [_try(enc_display, f"{backends[j].address} via {name}") for j in order]
    clean = all(type(c) is bytes for c in (name_cell, address_cell, *names))
    return _VipCells(
        name_cell, address_cell, tuple(order), tuple(keys), tuple(names),
        len(backends) - len(order), clean,
    )  # fmt: skip


def _try(encode: Callable[[Any], bytes], value: object) -> bytes | CellError:
    try:
        return encode(value)
    except CellError as exc:
        return exc


def _note_backend_drops(bld: _Builder, vip: Vip) -> None:
    """Report the backends of `vip` left out of the backend table (not counted:
    the caller counts `_VipCells.backend_drops`)."""
    seen: set[bytes] = set()
    keyed: list[tuple[bytes, int]] = []
    for j, b in enumerate(vip.backends):
        try:
            keyed.append((_backend_index(vip.index, b), j))
        except CellError as exc:
            bld._note("vppLbBackendAddress", pack_oid(VIP_ENTRY), exc)
    keyed.sort(key=itemgetter(0))
    for key, j in keyed:
        if key in seen:
            bld._note(
                "vppLbBackendAddress",
                pack_oid(BACKEND_ENTRY) + key,
                CellError("duplicate backend", vip.backends[j].address),
            )
        seen.add(key)


# Backend column keys in `_Memo.static_segs` (apart from the VIP columns').
_BACKEND_KEY = 1000


def snapshot_vips(rows: Sequence[VipRow], frame: Frame) -> tuple[Vip, ...]:
    """The VIPs the next build compares with: as given (before validation)."""
    return rows.vips if isinstance(rows, Frame) else frame.vips


def _vip_segment(
    bld: _Builder, ckey: bytes, col: VipColumn, vrows: _Rows, raws: Sequence[object]
) -> _Segment:
    return bld.column(
        ckey,
        col.snmp_type,
        col.mib_name,
        vrows,
        raws,
        partial(_encode_vip, col),
        lo=0 if col in _VIP_RANGES else None,
        hi=_VIP_RANGES.get(col),
        allowed=_ENCAP_VALUES if col == VipColumn.ENCAP else None,
    )


def _flows_segment(
    bld: _Builder, frame: Frame, order: array[int], in_order: bool, brows: _Rows
) -> None:
    """The flows column: `in_order`, `order` is every backend in VPP's order."""
    flows = frame.flows
    raws = flows if in_order else itemgetter_list(flows, order)
    bcol = BackendColumn.FLOWS
    bld.column(
        pack_oid(BACKEND_ENTRY) + _U32.pack(bcol), bcol.snmp_type, bcol.mib_name, brows, raws,
        enc_unsigned32, none_absent=False,
    )  # fmt: skip


def _in_order(order: array[int], n: int) -> bool:
    """Is `order` `range(n)`? (VPP lists the backends in OID order already.)"""
    return len(order) == n and order == array("I", range(n))


def itemgetter_list(values: Sequence[int], positions: Sequence[int]) -> list[int]:
    """`[values[p] for p in positions]`, gathered in C."""
    if not positions:
        return []
    if len(positions) == 1:
        return [values[positions[0]]]
    return list(itemgetter(*positions)(values))


def _build_moving(bld: _Builder, frame: Frame, memo: _Memo, root: Oid, taken_at: float) -> Table:
    """The table for the same VIPs as `memo`'s build: the static columns shared."""
    bld.drops.extend(memo.vip_drops)
    bld.dropped += len(memo.vip_drops) + memo.b_dropped
    if memo.vip_drops:
        frame = _valid_rows(_Builder(root), frame)  # the same rows as memo's build kept
    entry = pack_oid(VIP_ENTRY)
    vrows = memo.vip_rows
    for col in _VIP_COLUMNS:
        if col in _DYNAMIC_VIP_COLUMNS:
            raws = _vip_column(col, frame, [], ())
            _vip_segment(bld, entry + _U32.pack(col), col, vrows, raws)
        else:
            bld.segments.append(memo.static_segs[col])
    for bcol in (BackendColumn.STATE, BackendColumn.WEIGHT, BackendColumn.BUCKETS):
        bld.segments.append(memo.static_segs[bcol + _BACKEND_KEY])
    _flows_segment(bld, frame, memo.b_order, memo.b_in_order, memo.b_rows)
    bld.segments.append(memo.b_name_seg)
    return bld.finish(root, memo, taken_at)


def _vip_column(
    col: VipColumn,
    frame: Frame,
    actives: list[int],
    static: tuple[list[object], ...],
) -> Sequence[object]:
    """Raw values of one VIP column (not NAME/ADDRESS), aligned with the frame's rows."""
    vips = frame.vips
    if col in _COUNTER_COLUMN_INDEX:
        return frame.counters[_COUNTER_COLUMN_INDEX[col]]
    if col == VipColumn.DISCONTINUITY_TIME:
        return frame.discontinuity_cs
    if col == VipColumn.ADDRESS_TYPE:
        return [INET_ADDRESS_IPV6 if ver == 6 else INET_ADDRESS_IPV4 for ver in static[1]]
    if col == VipColumn.PREFIX_LENGTH:
        return static[2]
    if col == VipColumn.PROTOCOL:
        return static[3]
    if col == VipColumn.PORT:
        return static[4]
    if col == VipColumn.ENCAP:
        return [int(v.encap) for v in vips]
    if col == VipColumn.SRC_IP_STICKY:
        return [TRUTH_TRUE if v.src_ip_sticky else TRUTH_FALSE for v in vips]
    if col == VipColumn.FLOW_TABLE_LENGTH:
        return [v.flow_table_length for v in vips]
    if col == VipColumn.BACKEND_COUNT:
        return [len(v.backends) for v in vips]
    if col == VipColumn.ACTIVE_BACKEND_COUNT:
        return actives
    if col == VipColumn.OPER_STATUS:
        return [OPER_UP if a else OPER_NO_ACTIVE_BACKENDS for a in actives]
    raise ValueError(f"not a VIP value column: {col!r}")


# The counter columns' positions in `Frame.counters` (VipCounters order).
_COUNTER_COLUMN_INDEX = {
    VipColumn.NEXT_PACKETS: 0,
    VipColumn.FIRST_PACKETS: 1,
    VipColumn.UNTRACKED_PACKETS: 2,
    VipColumn.NO_SERVER_PACKETS: 3,
    VipColumn.ROUTE_PACKETS: 4,
    VipColumn.ROUTE_OCTETS: 5,
}
# Bulk-path ranges (the cell path, `_encode_vip`, reports the same limits).
_VIP_RANGES = {**_VIP_LIMITS, VipColumn.PREFIX_LENGTH: 128}
