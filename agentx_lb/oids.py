"""Every OID agentx-lb serves, relative to the configurable root.

`mibs/IPNG-VPP-LB-MIB.txt` is the source of truth; `tests/test_oids_contract.py`
parses it and proves that this module says the same (names, sub-ids, types).
OIDs are always ``tuple[int, ...]`` in code (tuples compare and sort correctly);
they become dotted strings only for display.
"""

from __future__ import annotations

import enum
import struct

Oid = tuple[int, ...]

# netSnmpPlaypen.8298 (NET-SNMP-MIB reserves netSnmpPlaypen for local use). A
# production deployment should register an IANA PEN and set `oid_root`.
DEFAULT_ROOT: Oid = (1, 3, 6, 1, 4, 1, 8072, 9999, 9999, 8298)

# Sub-trees, relative to the root (ipngVppLbMIB).
NOTIFICATIONS: Oid = (0,)
OBJECTS: Oid = (1,)
AGENT: Oid = (1, 1)  # scalars: AGENT + (scalar, 0)
VIP_TABLE: Oid = (1, 2)
VIP_ENTRY: Oid = (1, 2, 1)  # cells: VIP_ENTRY + (column, vip_index)
BACKEND_TABLE: Oid = (1, 3)
BACKEND_ENTRY: Oid = (1, 3, 1)  # cells: BACKEND_ENTRY + (column, vip_index, addr_type, len, *addr)
CONFORMANCE: Oid = (2,)


class SnmpType(enum.IntEnum):
    """AgentX/SNMP value types (RFC 2741 5.4) of the values we serve."""

    INTEGER = 2
    OCTET_STRING = 4
    GAUGE32 = 66  # also Unsigned32 and the textual conventions built on it
    OBJECT_IDENTIFIER = 6  # snmpTrapOID.0 in a notification
    TIMETICKS = 67  # TimeStamp
    COUNTER64 = 70


class _Column(enum.IntEnum):
    """An IntEnum whose members also carry the MIB name and SNMP type."""

    mib_name: str
    snmp_type: SnmpType

    def __new__(cls, sub_id: int, mib_name: str, snmp_type: SnmpType) -> _Column:
        member = int.__new__(cls, sub_id)
        member._value_ = sub_id
        member.mib_name = mib_name
        member.snmp_type = snmp_type
        return member


_I, _S, _G, _T, _C = (
    SnmpType.INTEGER,
    SnmpType.OCTET_STRING,
    SnmpType.GAUGE32,
    SnmpType.TIMETICKS,
    SnmpType.COUNTER64,
)


class AgentScalar(_Column):
    """vppLbAgent scalars, served at root + AGENT + (sub_id, 0)."""

    VPP_CONNECTED = 1, "vppLbAgentVppConnected", _I  # TruthValue
    VPP_VERSION = 2, "vppLbAgentVppVersion", _S
    VIP_COUNT = 3, "vppLbAgentVipCount", _G
    VIP_TABLE_LAST_CHANGE = 4, "vppLbAgentVipTableLastChange", _T
    TABLE_AGE = 5, "vppLbAgentTableAge", _G  # seconds
    LAST_SCRAPE_DURATION = 6, "vppLbAgentLastScrapeDuration", _G  # milliseconds
    SCRAPE_FAILURES = 7, "vppLbAgentScrapeFailures", _C
    CONSECUTIVE_FAILURES = 8, "vppLbAgentConsecutiveFailures", _G
    LAST_ERROR = 9, "vppLbAgentLastError", _S
    # LB global settings: served only where VPP exposes them.
    IP4_SRC_ADDRESS = 10, "vppLbConfIp4SrcAddress", _S  # InetAddressIPv4
    IP6_SRC_ADDRESS = 11, "vppLbConfIp6SrcAddress", _S  # InetAddressIPv6
    STICKY_BUCKETS_PER_CORE = 12, "vppLbConfStickyBucketsPerCore", _G
    FLOW_TIMEOUT = 13, "vppLbConfFlowTimeout", _G  # seconds


class VipColumn(_Column):
    """vppLbVipEntry columns, served at root + VIP_ENTRY + (sub_id, vip_index)."""

    INDEX = 1, "vppLbVipIndex", _G  # not-accessible (the index), never served
    NAME = 2, "vppLbVipName", _S
    ADDRESS_TYPE = 3, "vppLbVipAddressType", _I
    ADDRESS = 4, "vppLbVipAddress", _S
    PREFIX_LENGTH = 5, "vppLbVipPrefixLength", _G
    PROTOCOL = 6, "vppLbVipProtocol", _G
    PORT = 7, "vppLbVipPort", _G
    ENCAP = 8, "vppLbVipEncap", _I
    SRC_IP_STICKY = 9, "vppLbVipSrcIpSticky", _I  # TruthValue
    FLOW_TABLE_LENGTH = 10, "vppLbVipFlowTableLength", _G
    BACKEND_COUNT = 11, "vppLbVipBackendCount", _G
    ACTIVE_BACKEND_COUNT = 12, "vppLbVipActiveBackendCount", _G
    OPER_STATUS = 13, "vppLbVipOperStatus", _I
    NEXT_PACKETS = 14, "vppLbVipNextPackets", _C
    FIRST_PACKETS = 15, "vppLbVipFirstPackets", _C
    UNTRACKED_PACKETS = 16, "vppLbVipUntrackedPackets", _C
    NO_SERVER_PACKETS = 17, "vppLbVipNoServerPackets", _C
    ROUTE_PACKETS = 18, "vppLbVipRoutePackets", _C
    ROUTE_OCTETS = 19, "vppLbVipRouteOctets", _C
    DISCONTINUITY_TIME = 20, "vppLbVipDiscontinuityTime", _T


class BackendColumn(_Column):
    """vppLbBackendEntry columns; INDEX { vppLbVipIndex, AddressType, Address }."""

    ADDRESS_TYPE = 1, "vppLbBackendAddressType", _I  # not-accessible (index)
    ADDRESS = 2, "vppLbBackendAddress", _S  # not-accessible (index)
    STATE = 3, "vppLbBackendState", _I
    WEIGHT = 4, "vppLbBackendWeight", _G
    BUCKETS = 5, "vppLbBackendBuckets", _G
    FLOWS = 6, "vppLbBackendFlows", _G
    NAME = 7, "vppLbBackendName", _S


class NotificationType(enum.IntEnum):
    """vppLbNotifications: NOTIFICATION-TYPEs at root + NOTIFICATIONS + (sub_id,).

    `objects` are the varbinds after snmpTrapOID.0, in the MIB's OBJECTS order.
    """

    mib_name: str
    objects: tuple[_Column, ...]

    def __new__(cls, sub_id: int, mib_name: str, objects: tuple[_Column, ...]) -> NotificationType:
        member = int.__new__(cls, sub_id)
        member._value_ = sub_id
        member.mib_name = mib_name
        member.objects = objects
        return member

    VIP_OPER_STATUS_CHANGE = (
        1,
        "vppLbVipOperStatusChange",
        (VipColumn.NAME, VipColumn.OPER_STATUS, VipColumn.ACTIVE_BACKEND_COUNT),
    )
    BACKEND_STATE_CHANGE = 2, "vppLbBackendStateChange", (BackendColumn.NAME, BackendColumn.STATE)
    VPP_CONNECTION_CHANGE = (
        3,
        "vppLbAgentVppConnectionChange",
        (AgentScalar.VPP_CONNECTED, AgentScalar.LAST_ERROR),
    )


# SNMPv2-MIB: the varbinds every SNMPv2 notification starts with.
SYS_UPTIME_0: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)

# Enumerations the MIB defines (values served as INTEGER).
TRUTH_TRUE, TRUTH_FALSE = 1, 2  # SNMPv2-TC TruthValue
INET_ADDRESS_IPV4, INET_ADDRESS_IPV6 = 1, 2  # INET-ADDRESS-MIB InetAddressType
OPER_UP, OPER_NO_ACTIVE_BACKENDS = 1, 2  # vppLbVipOperStatus
BACKEND_USED, BACKEND_REMOVED = 1, 2  # vppLbBackendState


def parse_oid(text: str) -> Oid:
    """`1.3.6.1` or `.1.3.6.1` -> (1, 3, 6, 1); raises ValueError on anything else."""
    parts = text.strip().lstrip(".").split(".")
    oid = tuple(int(p) for p in parts)
    if len(oid) < 2 or any(not 0 <= p <= 0xFFFFFFFF for p in oid):
        raise ValueError(f"not an OID: {text!r}")
    return oid


def format_oid(oid: Oid) -> str:
    return ".".join(map(str, oid))


# ---------------------------------------------------------------- the OID codec
#
# The one encoder/decoder of OIDs on the wire (RFC 2741 5.1), used by the table
# builder and the AgentX codec alike. In comparisons an OID is "canonical":
# every sub-id a big-endian u32, so bytes sort like the tuples.

_INTERNET = (1, 3, 6, 1)
_INTERNET_CANON = struct.pack("!4I", *_INTERNET)


class WireError(ValueError):
    """Bytes that are not a well-formed AgentX OID."""


def pack_oid(oid: Oid) -> bytes:
    """Canonical bytes of an OID: big-endian u32 per sub-id (sorts like the tuple)."""
    return struct.pack(f"!{len(oid)}I", *oid)


def encode_oid(oid: Oid, include: int = 0) -> bytes:
    """AgentX OID encoding with the 1.3.6.1.X prefix compression (network byte order)."""
    if len(oid) > 5 and oid[:4] == _INTERNET and 0 < oid[4] <= 255:
        prefix, rest = oid[4], oid[5:]
    else:
        prefix, rest = 0, oid
    return struct.pack(f"!BBBB{len(rest)}I", len(rest), prefix, include, 0, *rest)


def echo_oid(canon: bytes) -> bytes:
    """AgentX OID (network order, uncompressed, include 0) of a canonical OID."""
    return bytes((len(canon) // 4, 0, 0, 0)) + canon


def decode_oid(p: bytes, pos: int, nbo: int) -> tuple[bytes, int, bytes, int]:
    """The AgentX OID at `pos`: (canonical bytes, include, the OID as network-order
    wire bytes with include 0, position after it). Raises WireError."""
    if pos + 4 > len(p):
        raise WireError("truncated OID header")
    n, prefix, include = p[pos], p[pos + 1], p[pos + 2]
    end = pos + 4 + 4 * n
    if end > len(p) or n > 128:
        raise WireError("truncated OID")
    if nbo:
        raw = p[pos + 4 : end]
    else:
        raw = struct.pack(f"!{n}I", *struct.unpack_from(f"<{n}I", p, pos + 4))
    echo = bytes((n, prefix, 0, 0)) + raw
    canon = _INTERNET_CANON + struct.pack("!I", prefix) + raw if prefix else raw
    return canon, include, echo, end
