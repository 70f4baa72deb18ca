"""The AgentX wire format (RFC 2741): what we send, what we read, nothing else.

pyagentx3 0.1.4 is our PDU codec: its constants, header layout and octet
encoding. We wrap it, never patch it: `Pdu` subclasses its `PDU` only to say
what its `encode()` hard-codes (Open timeout, Register timeout and priority)
and to skip the hexdump it runs on every PDU. Requests are read with the
byte-level helpers below (no per-PDU objects on the walk path); OIDs go
through the one OID codec in `agentx_lb.oids`.

Notify (RFC 2741 6.2.10). pyagentx3 has the PDU type, and its `encode()`
writes a Notify as a header plus its varbinds, but what it does around that
does not hold up, so `Pdu` encodes the Notify body itself:

* the varbinds go through pyagentx3's `encode_value`, which parses string
  OIDs (a leading dot or an arc above 255 after 1.3.6.1 raises), encodes
  strings as latin-1 and, for a type it does not know, logs and writes the
  varbind without a value (the stream is then corrupt); we pass the
  VarBindList pre-encoded by `agentx_lb.notify.encode` (our OID codec, UTF-8);
* its `Network.new_pdu` never sets a packetID (every Notify has 0), so
  snmpd's Response to a Notify cannot be told from another; our `Connection`
  numbers every PDU it sends and the session matches the Response to its
  Notify (and logs an error in it, e.g. processingError when snmpTrapOID.0 is
  not the first varbind after an optional sysUpTime.0);
* its loop answers any PDU it does not handle, that Response included, with
  another Response; ours takes a Response as one and answers nothing;
* header flags: only NETWORK_BYTE_ORDER, never NON_DEFAULT_CONTEXT (no
  context octet string): the Notify is in the default context, which is
  what we want (snmpd then sends the trap without a context); the
  instance-registration, new-index and any-index flags must be 0 on a
  Notify and are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyagentx3
from pyagentx3.pdu import PDU

from agentx_lb.oids import Oid, WireError, decode_oid, echo_oid, encode_oid

__all__ = [
    "CLOSE_OTHER",
    "CLOSE_SHUTDOWN",
    "FLAG_CONTEXT",
    "FLAG_NBO",
    "HDR_LEN",
    "Pdu",
    "ProtocolError",
    "Response",
    "decode_response",
    "echo_oid",
    "parse_ranges",
    "payload_length",
    "response",
    "skip_context",
]

HDR_LEN: int = pyagentx3.AX_PDU_HDR_LEN
FLAG_NBO: int = pyagentx3.AX_PDU_FLAG_BYTE_ORDER
FLAG_CONTEXT: int = pyagentx3.AX_PDU_FLAG_CONTEXT
CLOSE_OTHER, CLOSE_PARSE_ERROR, CLOSE_SHUTDOWN = 1, 2, 5

GET: int = pyagentx3.AGENTX_GET_PDU
GETNEXT: int = pyagentx3.AGENTX_GETNEXT_PDU
GETBULK: int = pyagentx3.AGENTX_GETBULK_PDU
TESTSET: int = pyagentx3.AGENTX_TESTSET_PDU
COMMITSET: int = pyagentx3.AGENTX_COMMITSET_PDU
UNDOSET: int = pyagentx3.AGENTX_UNDOSET_PDU
OPEN: int = pyagentx3.AGENTX_OPEN_PDU
REGISTER: int = pyagentx3.AGENTX_REGISTER_PDU
CLOSE: int = pyagentx3.AGENTX_CLOSE_PDU
NOTIFY: int = pyagentx3.AGENTX_NOTIFY_PDU
PING: int = pyagentx3.AGENTX_PING_PDU
RESPONSE: int = pyagentx3.AGENTX_RESPONSE_PDU
ERROR_NAMES: dict[int, str] = pyagentx3.ERROR_NAMES
PARSE_ERROR: int = pyagentx3.ERROR_PARSEERROR
NOT_WRITABLE: int = pyagentx3.ERROR_NOTWRITABLE
PROCESSING_ERROR: int = pyagentx3.ERROR_PROCESSINGERROR
GEN_ERR: int = pyagentx3.ERROR_GENERR

HDR_BE = struct.Struct("!BBBBIIII")
HDR_LE = struct.Struct("<BBBBIIII")
_RESP_FIELDS = struct.Struct("!IHH")
_VB_TYPE = struct.Struct("!HH")
U16_BE, U16_LE = struct.Struct("!H"), struct.Struct("<H")
U32_BE, U32_LE = struct.Struct("!I"), struct.Struct("<I")
# A Response's first four octets (version 1, Response, network byte order) and
# the zeroed sysUpTime/error/index fields of a successful answer.
RESP_START = bytes((1, RESPONSE, FLAG_NBO, 0))
RESP_OK = bytes(8)
END_OF_MIB = _VB_TYPE.pack(pyagentx3.TYPE_ENDOFMIBVIEW, 0)
NO_SUCH_OBJECT = _VB_TYPE.pack(pyagentx3.TYPE_NOSUCHOBJECT, 0)
NO_SUCH_INSTANCE = _VB_TYPE.pack(pyagentx3.TYPE_NOSUCHINSTANCE, 0)

# A malformed request: answered with parseError (the OID codec's error).
ParseError = WireError


class ProtocolError(Exception):
    """The AgentX stream or a response is unusable: drop the session and reconnect."""


class Pdu(PDU):  # type: ignore[misc]  # pyagentx3 ships no types: PDU is Any
    """A PDU this agent sends: Open, Register, Ping, Notify or Close (pyagentx3's
    PDU, with the timeouts, priority and close reason it hard-codes made ours,
    and a Notify's VarBindList passed pre-encoded in `varbinds`)."""

    def __init__(
        self, pdu_type: int, agent_id: str, *, timeout_s: int = 0, packet_id: int = 0
    ) -> None:
        super().__init__(pdu_type, agent_id=agent_id)
        self.timeout_s = timeout_s
        self.packet_id = packet_id
        self.priority = 127
        self.subtree: Oid = ()
        self.reason = CLOSE_SHUTDOWN
        self.varbinds = b""

    def encode(self) -> bytes:
        if self.type == OPEN:
            body = struct.pack("!BBBBL", self.timeout_s, 0, 0, 0, 0)
            body += self.encode_octet(self.agent_id.encode("ascii", "replace"))
        elif self.type == REGISTER:
            body = struct.pack("BBBB", self.timeout_s, self.priority, 0, 0)
            body += encode_oid(self.subtree)
        elif self.type == CLOSE:
            body = struct.pack("BBBB", self.reason, 0, 0, 0)
        elif self.type == PING:
            body = b""
        elif self.type == NOTIFY:
            if not self.varbinds:
                raise ValueError("a notify needs its varbinds (snmpTrapOID.0 first)")
            body = self.varbinds
        else:
            raise ValueError(f"pdu type {self.type} is not sent by this agent")
        header: bytes = self.encode_header(self.type, len(body))
        return header + body


@dataclass(frozen=True, slots=True)
class Response:
    """The fields of a Response PDU the session uses (RFC 2741 6.2.16)."""

    session_id: int
    packet_id: int
    sys_uptime_cs: int  # the master's sysUpTime when it sent this
    error: int


def decode_response(buf: bytes) -> Response:
    """A Response PDU's fields; raises ProtocolError on anything else."""
    if len(buf) < HDR_LEN + 8 or buf[1] != RESPONSE:
        raise ProtocolError("not a response")
    nbo = buf[2] & FLAG_NBO
    _, _, _, _, session_id, _, packet_id, _ = (HDR_BE if nbo else HDR_LE).unpack_from(buf)
    uptime = (U32_BE if nbo else U32_LE).unpack_from(buf, HDR_LEN)[0]
    error = (U16_BE if nbo else U16_LE).unpack_from(buf, HDR_LEN + 4)[0]
    return Response(session_id, packet_id, uptime, error)


def payload_length(buf: bytes | bytearray) -> int:
    """The payload length in a PDU header (at least HDR_LEN octets)."""
    length: int = (U32_BE if buf[2] & FLAG_NBO else U32_LE).unpack_from(buf, 16)[0]
    return length


# A SearchRange: (start canonical, include, start echo, end canonical or None).
Range = tuple[bytes, int, bytes, bytes | None]


def parse_ranges(p: bytes, pos: int, nbo: int) -> list[Range]:
    """SearchRangeList: [(start canonical, include, start echo, end canonical or None)]."""
    ranges: list[Range] = []
    while pos < len(p):
        start, include, echo, pos = decode_oid(p, pos, nbo)
        end, _, _, pos = decode_oid(p, pos, nbo)
        ranges.append((start, include, echo, end or None))
    return ranges


def skip_context(p: bytes, flags: int, nbo: int) -> int:
    """Position after the optional context octet string."""
    if not flags & FLAG_CONTEXT:
        return 0
    if len(p) < 4:
        raise ParseError("truncated context")
    n: int = (U32_BE if nbo else U32_LE).unpack_from(p, 0)[0]
    pos = 4 + n + (-n % 4)
    if pos > len(p):
        raise ParseError("truncated context")
    return pos


def response(request: bytes, error: int, index: int, varbinds: bytes) -> bytes:
    """A Response PDU echoing the request's ids (always network byte order); its
    res.sysUpTime is 0 (the field means something only from the master)."""
    nbo = request[2] & FLAG_NBO
    _, _, _, _, session_id, transaction_id, packet_id, _ = (HDR_BE if nbo else HDR_LE).unpack_from(
        request
    )
    body = _RESP_FIELDS.pack(0, error, index) + varbinds
    return (
        HDR_BE.pack(1, RESPONSE, FLAG_NBO, 0, session_id, transaction_id, packet_id, len(body))
        + body
    )
