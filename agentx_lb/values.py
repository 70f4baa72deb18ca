"""SNMP values: a Python value -> the AgentX value octets of its SNMP type, validated.

Pure. Every encoder raises `CellError` for a value its type cannot carry (wrong
Python type, out of range, too long, not an address of the expected family);
nothing is clamped or guessed. `agentx_lb.table` lays the encoded cells out,
`agentx_lb.notify` encodes a notification's varbinds with the same functions.
An address cell is an `Inet` value, encoded by `enc_inet`.
"""

from __future__ import annotations

import ipaddress
import struct
from array import array
from collections.abc import Callable
from typing import NamedTuple

from agentx_lb.oids import SnmpType

__all__ = [
    "BULK",
    "DISPLAY_STRING_MAX",
    "ENCODERS",
    "EVENT_MAX",
    "I32_MAX",
    "I32_MIN",
    "U32_MAX",
    "U64_MAX",
    "CellError",
    "Inet",
    "enc_counter64",
    "enc_display",
    "enc_inet",
    "enc_integer",
    "enc_octets",
    "enc_unsigned32",
    "inet_bytes",
]

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
DISPLAY_STRING_MAX = 255
EVENT_MAX = 2**63 - 1  # event times (centiseconds) are stored as array('q')

_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_I32 = struct.Struct("!i")


class CellError(ValueError):
    """A value that does not fit its SNMP type; `kind` is the problem class."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


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


ENCODERS: dict[SnmpType, Callable[[object], bytes]] = {
    SnmpType.INTEGER: enc_integer,
    SnmpType.OCTET_STRING: enc_display,
    SnmpType.GAUGE32: enc_unsigned32,
    SnmpType.TIMETICKS: enc_unsigned32,
    SnmpType.COUNTER64: enc_counter64,
}


class Inet(NamedTuple):
    """An InetAddress cell's value: the address text and the family it must be."""

    address: str
    version: int


def inet_bytes(address: str, version: int) -> bytes:
    """InetAddress: 4 or 16 raw octets."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise CellError("not an IP address", repr(address)) from exc
    if ip.version != version:
        raise CellError("address family mismatch", f"{address} is not IPv{version}")
    return ip.packed


def enc_inet(value: object) -> bytes:
    """InetAddress (an OctetString of 4 or 16 octets) from an `Inet`."""
    if not isinstance(value, Inet):
        raise CellError("not an address", type(value).__name__)
    return enc_octets(inet_bytes(value.address, value.version))


# Integer types whose cells can be encoded in bulk: array typecode and range.
BULK: dict[int, tuple[str, int, int]] = {
    SnmpType.INTEGER: ("i", I32_MIN, I32_MAX),
    SnmpType.GAUGE32: ("I", 0, U32_MAX),
    SnmpType.TIMETICKS: ("I", 0, U32_MAX),
    SnmpType.COUNTER64: ("Q", 0, U64_MAX),
}
assert array("i").itemsize == 4 and array("I").itemsize == 4 and array("Q").itemsize == 8


def _refuses(code: str, value: int) -> bool:
    try:
        array(code, [value])
    except OverflowError:
        return True
    return False


# Bulk encoding relies on array() refusing exactly what lies outside each SNMP type's range.
assert all(
    len(array(code, [lo, hi])) == 2 and _refuses(code, lo - 1) and _refuses(code, hi + 1)
    for code, lo, hi in BULK.values()
)
