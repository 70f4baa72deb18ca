"""Snapshot -> immutable, sorted table of pre-encoded AgentX varbinds (pure).

Every value is validated for its SNMP type here, so nothing can fail later in
the protocol loop: a bad cell is dropped (logged once per column and problem)
and the rest of the table is served.

Wire format (RFC 2741 5.1, 5.4), always network byte order:
  VarBind = type u16, reserved u16, OID, value
  OID     = n_subid u8, prefix u8, include u8, reserved u8, n_subid x u32
The `1.3.6.1.X` prefix compression follows pyagentx3's encoder.

Memory layout (why not a tuple of tuples): at 10,000 VIPs x 8 backends the
table has ~600,000 cells; a tuple OID plus a bytes object per cell costs
~300 bytes, so two tables alive during a swap would blow the agent's memory
budget. Instead each cell is three slices of shared buffers:

  key   = the OID's sub-ids below the root, packed as big-endian u32
          (byte order == tuple order, so keys compare as bytes);
  value = the encoded value;
  head  = one of a few shared `type + OID header + root sub-ids` prefixes.

A varbind is `head + key + value`: the protocol loop only concatenates bytes.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from agentx_lb.model import Backend, Encap, Snapshot, VipRow
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
    format_oid,
)

log = logging.getLogger(__name__)

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
DISPLAY_STRING_MAX = 255

# Canonical form of an OID for comparisons: every sub-id as a big-endian u32.
_INTERNET = (1, 3, 6, 1)
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_I32 = struct.Struct("!i")

# (column, problem) pairs already logged at WARNING. Bounded: columns and
# problem kinds are finite. Later occurrences are logged at DEBUG.
_WARNED: set[tuple[str, str]] = set()


class CellError(ValueError):
    """A value that does not fit its SNMP type; `kind` is the problem class."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def pack_oid(oid: Oid) -> bytes:
    """Canonical bytes of an OID: big-endian u32 per sub-id (sorts like the tuple)."""
    return struct.pack(f"!{len(oid)}I", *oid)


def encode_oid(oid: Oid, include: int = 0) -> bytes:
    """AgentX OID encoding (RFC 2741 5.1) with the 1.3.6.1.X prefix compression."""
    prefix, rest = _compress(oid)
    return struct.pack(f"!BBBB{len(rest)}I", len(rest), prefix, include, 0, *rest)


def _compress(oid: Oid) -> tuple[int, Oid]:
    if len(oid) > 5 and oid[:4] == _INTERNET and 0 < oid[4] <= 255:
        return oid[4], oid[5:]
    return 0, oid


# ---------------------------------------------------------------- value encoders


def _check_int(value: object) -> int:
    # bool is an int, but a bool where a number is expected is a bug upstream.
    if type(value) is not int:
        raise CellError("not an integer", type(value).__name__)
    return value


def enc_integer(value: object) -> bytes:
    v = _check_int(value)
    if not I32_MIN <= v <= I32_MAX:
        raise CellError("out of range for INTEGER", str(v))
    return _I32.pack(v)


def enc_unsigned32(value: object) -> bytes:
    """Gauge32, Unsigned32, TimeTicks."""
    v = _check_int(value)
    if not 0 <= v <= U32_MAX:
        raise CellError("out of range for 32-bit unsigned", str(v))
    return _U32.pack(v)


def enc_counter64(value: object) -> bytes:
    v = _check_int(value)
    if not 0 <= v <= U64_MAX:
        raise CellError("out of range for Counter64", str(v))
    return _U64.pack(v)


def enc_octets(value: object, max_len: int = 65535) -> bytes:
    """OctetString: bytes as is, str as UTF-8; padded to a multiple of 4."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise CellError("not encodable as UTF-8", repr(value[:40])) from exc
    else:
        raise CellError("not a string", type(value).__name__)
    if len(data) > max_len:
        raise CellError("string too long", f"{len(data)} > {max_len} octets")
    return _U32.pack(len(data)) + data + b"\0" * (-len(data) % 4)


def enc_display(value: object) -> bytes:
    return enc_octets(value, DISPLAY_STRING_MAX)


_ENCODERS = {
    SnmpType.INTEGER: enc_integer,
    SnmpType.OCTET_STRING: enc_display,
    SnmpType.GAUGE32: enc_unsigned32,
    SnmpType.TIMETICKS: enc_unsigned32,
    SnmpType.COUNTER64: enc_counter64,
}


def _inet_bytes(address: str, version: int) -> bytes:
    """InetAddress: 4 or 16 raw octets."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise CellError("not an IP address", repr(address)) from exc
    if ip.version != version:
        raise CellError("address family mismatch", f"{address} is not IPv{version}")
    return ip.packed


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class _Buffers:
    keys: bytes
    key_offsets: array  # len n+1
    values: bytes
    value_offsets: array  # len n+1
    head_ids: bytes  # one byte per cell: index into heads
    heads: tuple[bytes, ...]


class Table:
    """Immutable sorted cells under `root`, each a pre-encoded AgentX VarBind.

    `oids` and `varbinds` are read-only sequences in OID order (computed per
    access; the protocol loop uses the byte-level methods instead).
    """

    __slots__ = ("root", "root_key", "dropped", "_b", "_n")

    def __init__(self, root: Oid, buffers: _Buffers, dropped: int = 0) -> None:
        self.root: Oid = tuple(root)
        self.root_key: bytes = pack_oid(self.root)
        self.dropped = dropped  # cells rejected by validation in this build
        self._b = buffers
        self._n = len(buffers.head_ids)

    @classmethod
    def empty(cls, root: Oid) -> Table:
        zero = array("I", [0])
        return cls(root, _Buffers(b"", zero, b"", zero, b"", ()))

    def __len__(self) -> int:
        return self._n

    # ---- byte-level access (the protocol loop's hot path)

    def key(self, i: int) -> bytes:
        """Sub-ids below the root of cell i, packed big-endian (sorts like OIDs)."""
        ko = self._b.key_offsets
        return self._b.keys[ko[i] : ko[i + 1]]

    def varbind(self, i: int) -> bytes:
        b = self._b
        ko, vo = b.key_offsets, b.value_offsets
        return b"".join(
            (b.heads[b.head_ids[i]], b.keys[ko[i] : ko[i + 1]], b.values[vo[i] : vo[i + 1]])
        )

    def search(self, key: bytes, include: bool) -> int:
        """Index of the first cell with key >= key (include) or > key (not include)."""
        lo, hi = 0, self._n
        b = self._b
        keys, ko = b.keys, b.key_offsets
        if include:
            while lo < hi:
                mid = (lo + hi) >> 1
                if keys[ko[mid] : ko[mid + 1]] < key:
                    lo = mid + 1
                else:
                    hi = mid
        else:
            while lo < hi:
                mid = (lo + hi) >> 1
                if keys[ko[mid] : ko[mid + 1]] <= key:
                    lo = mid + 1
                else:
                    hi = mid
        return lo

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

    def is_known_object(self, oid: Oid) -> bool:
        """True when `oid` names an instance of an object we define (GET: noSuchInstance)."""
        return is_known_object(self.root, oid)


class _View(Sequence):
    """Read-only sequence over a Table, materialising items on access."""

    __slots__ = ("_t", "_f")

    def __init__(self, table: Table, item) -> None:  # noqa: ANN001
        self._t = table
        self._f = item

    def __len__(self) -> int:
        return len(self._t)

    def __getitem__(self, i):  # noqa: ANN001, ANN204
        if isinstance(i, slice):
            return tuple(self._f(j) for j in range(*i.indices(len(self._t))))
        n = len(self._t)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._f(i)

    def __iter__(self) -> Iterator:
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


class _Builder:
    """Appends cells in OID order into the shared buffers."""

    def __init__(self, root: Oid) -> None:
        self.prefix, rest = _compress(tuple(root))
        self.root_rest_len = len(rest)
        self.root_wire = struct.pack(f"!{len(rest)}I", *rest)
        self.keys = bytearray()
        self.values = bytearray()
        self.key_offsets = array("I", [0])
        self.value_offsets = array("I", [0])
        self.head_ids = bytearray()
        self.heads: list[bytes] = []
        self._head_index: dict[tuple[int, int], int] = {}
        self.dropped = 0
        self.last_key = b""

    def head(self, snmp_type: int, key_len: int) -> int:
        """Shared `type, reserved, OID header, root sub-ids` prefix for a cell."""
        k = (snmp_type, key_len)
        h = self._head_index.get(k)
        if h is None:
            n_sub = self.root_rest_len + key_len // 4
            h = len(self.heads)
            if h > 255 or n_sub > 128:
                raise ValueError("OID too long for AgentX")
            self.heads.append(
                struct.pack("!HHBBBB", snmp_type, 0, n_sub, self.prefix, 0, 0) + self.root_wire
            )
            self._head_index[k] = h
        return h

    def add(self, head_id: int, key: bytes, value: bytes) -> None:
        self.keys += key
        self.key_offsets.append(len(self.keys))
        self.values += value
        self.value_offsets.append(len(self.values))
        self.head_ids.append(head_id)

    def drop(self, column: str, oid_key: bytes, exc: CellError) -> None:
        self.dropped += 1
        key = (column, exc.kind)
        rel = struct.unpack(f"!{len(oid_key) // 4}I", oid_key)
        if key in _WARNED:
            log.debug("cell dropped column=%s oid=.%s err=%s", column, format_oid(rel), exc)
        else:
            _WARNED.add(key)
            log.warning(
                "cell dropped column=%s oid=.%s err=%s (logged once per column and problem)",
                column,
                format_oid(rel),
                exc,
            )

    def finish(self, root: Oid) -> Table:
        return Table(
            root,
            _Buffers(
                bytes(self.keys),
                self.key_offsets,
                bytes(self.values),
                self.value_offsets,
                bytes(self.head_ids),
                tuple(self.heads),
            ),
            self.dropped,
        )


def _scalar_values(snapshot: Snapshot) -> list[tuple[AgentScalar, object, object]]:
    """(scalar, raw value, encoder) for the served scalars, in sub-id order."""
    h = snapshot.health
    last_error = h.last_error
    if isinstance(last_error, str):
        # An error text is worth serving cut short rather than not at all.
        last_error = last_error.encode("utf-8", "replace")[:DISPLAY_STRING_MAX]
    out: list[tuple[AgentScalar, object, object]] = [
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
            out.append((AgentScalar.IP4_SRC_ADDRESS, (s.ip4_src_address, 4), "inet"))
        if s.ip6_src_address is not None:
            out.append((AgentScalar.IP6_SRC_ADDRESS, (s.ip6_src_address, 6), "inet"))
        if s.sticky_buckets_per_core is not None:
            out.append(
                (AgentScalar.STICKY_BUCKETS_PER_CORE, s.sticky_buckets_per_core, enc_unsigned32)
            )
        if s.flow_timeout_s is not None:
            out.append((AgentScalar.FLOW_TIMEOUT, s.flow_timeout_s, enc_unsigned32))
    return out


def _vip_cells(row: VipRow) -> list[object]:
    """Raw values of columns 2..20 (index 0 is column 2)."""
    vip, c = row.vip, row.counters
    active = sum(1 for b in vip.backends if b.used)
    return [
        vip.name,
        INET_ADDRESS_IPV6 if vip.ip_version == 6 else INET_ADDRESS_IPV4,
        ("inet", vip.address, vip.ip_version),
        vip.prefix_length,
        vip.protocol,
        vip.port,
        int(vip.encap),
        TRUTH_TRUE if vip.src_ip_sticky else TRUTH_FALSE,
        vip.flow_table_length,
        len(vip.backends),
        active,
        OPER_UP if active else OPER_NO_ACTIVE_BACKENDS,
        c.next_packets,
        c.first_packets,
        c.untracked_packets,
        c.no_server_packets,
        c.route_packets,
        c.route_octets,
        row.discontinuity_cs,
    ]


_VIP_COLUMNS = [c for c in VipColumn if c != VipColumn.INDEX]
# Per-column range checks beyond the SNMP base type (MIB SYNTAX).
_VIP_LIMITS = {
    VipColumn.PROTOCOL: 255,
    VipColumn.PORT: 65535,
    VipColumn.ADDRESS_TYPE: 2,
}

_ENCAP_VALUES = frozenset(int(e) for e in Encap)  # the MIB's enumeration, nothing else


def _encode_vip(col: VipColumn, raw: object) -> bytes:
    if isinstance(raw, tuple):  # ("inet", address, version)
        return enc_octets(_inet_bytes(raw[1], raw[2]))
    limit = _VIP_LIMITS.get(col)
    if limit is not None and type(raw) is int and not 0 <= raw <= limit:
        raise CellError("out of range for column", f"{raw} > {limit}")
    if col == VipColumn.PREFIX_LENGTH and type(raw) is int and not 0 <= raw <= 128:
        raise CellError("out of range for column", str(raw))
    if col == VipColumn.ENCAP and raw not in _ENCAP_VALUES:
        raise CellError("not a vppLbVipEncap value", repr(raw))
    return _ENCODERS[col.snmp_type](raw)


def _backend_index(vip_index: int, b: Backend) -> bytes:
    """Index part of a backend row: vip_index, addr_type, addr_len, *addr octets."""
    packed = _inet_bytes(b.address, b.ip_version)
    atype = INET_ADDRESS_IPV6 if len(packed) == 16 else INET_ADDRESS_IPV4
    return struct.pack(f"!III{len(packed)}I", vip_index, atype, len(packed), *packed)


def build_table(snapshot: Snapshot, root: Oid) -> Table:
    """Validate and encode every cell of `snapshot` under `root`, in OID order."""
    root = tuple(root)
    bld = _Builder(root)

    # Scalars: root.1.1.<scalar>.0
    agent = pack_oid(AGENT)
    for scalar, raw, enc in _scalar_values(snapshot):
        key = agent + _U32.pack(scalar) + _U32.pack(0)
        try:
            if enc == "inet":
                value = enc_octets(_inet_bytes(*raw))  # type: ignore[misc]
            else:
                value = enc(raw)  # type: ignore[operator]
        except CellError as exc:
            bld.drop(scalar.mib_name, key, exc)
            continue
        bld.add(bld.head(scalar.snmp_type, len(key)), key, value)

    # VIP rows: validate the index, then lay the table out column by column.
    rows: list[tuple[bytes, VipRow]] = []
    seen: set[int] = set()
    for row in sorted(snapshot.rows, key=lambda r: r.vip.index):
        idx = row.vip.index
        if type(idx) is not int or not 1 <= idx <= U32_MAX or idx in seen:
            bld.drop(
                "vppLbVipIndex",
                pack_oid(VIP_ENTRY),
                CellError("bad or duplicate VIP index", repr(idx)),
            )
            continue
        seen.add(idx)
        rows.append((_U32.pack(idx), row))

    entry = pack_oid(VIP_ENTRY)
    cells = [_vip_cells(r) for _, r in rows]
    for ci, col in enumerate(_VIP_COLUMNS):
        col_key = entry + _U32.pack(col)
        head_id = bld.head(col.snmp_type, len(col_key) + 4)
        enc = _ENCODERS[col.snmp_type]
        plain = col not in _VIP_LIMITS and col not in (
            VipColumn.ADDRESS, VipColumn.PREFIX_LENGTH, VipColumn.ENCAP
        )
        for (idx_key, _), raw in zip(rows, cells):
            if raw[ci] is None:  # unknown (e.g. no exact FIB entry): no cell, never 0
                continue
            key = col_key + idx_key
            try:
                value = enc(raw[ci]) if plain else _encode_vip(col, raw[ci])
            except CellError as exc:
                bld.drop(col.mib_name, key, exc)
                continue
            bld.add(head_id, key, value)
    del cells

    # Backend rows, sorted by their index (vip, type, len, address octets).
    brows: list[tuple[bytes, str, Backend]] = []
    for idx_key, row in rows:
        vip = row.vip
        for b in vip.backends:
            try:
                index = _backend_index(vip.index, b)
            except CellError as exc:
                bld.drop("vppLbBackendAddress", entry, exc)
                continue
            brows.append((index, vip.name, b))
    brows.sort(key=lambda t: t[0])
    unique: list[tuple[bytes, str, Backend]] = []
    for t in brows:
        if unique and unique[-1][0] == t[0]:
            bld.drop(
                "vppLbBackendAddress",
                pack_oid(BACKEND_ENTRY) + t[0],
                CellError("duplicate backend", t[2].address),
            )
            continue
        unique.append(t)

    bentry = pack_oid(BACKEND_ENTRY)
    for col in (
        BackendColumn.STATE,
        BackendColumn.WEIGHT,
        BackendColumn.BUCKETS,
        BackendColumn.FLOWS,
        BackendColumn.NAME,
    ):
        col_key = bentry + _U32.pack(col)
        enc = _ENCODERS[col.snmp_type]
        for index, vip_name, b in unique:
            key = col_key + index
            try:
                if col == BackendColumn.STATE:
                    value = enc_integer(BACKEND_USED if b.used else BACKEND_REMOVED)
                elif col == BackendColumn.WEIGHT:
                    if b.weight is None:
                        continue
                    if type(b.weight) is int and not 0 <= b.weight <= 100:
                        raise CellError("out of range for column", str(b.weight))
                    value = enc(b.weight)
                elif col == BackendColumn.BUCKETS:
                    value = enc(b.buckets)
                elif col == BackendColumn.FLOWS:
                    value = enc(b.flows)
                else:
                    value = enc(f"{b.address} via {vip_name}")
            except CellError as exc:
                bld.drop(col.mib_name, key, exc)
                continue
            bld.add(bld.head(col.snmp_type, len(key)), key, value)

    return bld.finish(root)
