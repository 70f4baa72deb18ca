"""The AgentX protocol loop: our subagent session to snmpd (the only pyagentx3 importer).

pyagentx3 0.1.4 is used as published for its PDU codec (constants, header,
OID and octet-string encoding); everything it gets wrong is fixed in the
subclasses below (see design/snmp-baseline.md):

* GET/GETNEXT/GETBULK are answered from an immutable `Table` by binary
  search over pre-encoded varbinds, honouring the search range end and the
  `include` flag; GET distinguishes noSuchInstance from noSuchObject.
* PDUs split over several reads are reassembled (the buffer belongs to one
  connection), responses go out with `sendall`, and no per-PDU dump or
  hexdump runs (we never call pyagentx3's `encode()`/`decode()` in the loop).
* Open and Register responses are checked; after snmpd restarts we reconnect
  with a short capped backoff; the stop event is honoured within ~0.1 s in
  every state, and a connected session ends with a Close PDU.
* Per request one recv() and one send() (no select/poll per PDU, no
  wake-ups when idle): a watcher thread waiting on the stop event shuts the
  read side of the live socket down, which ends the blocking read.
* After each answer the loop polls the socket for the next request for up to
  `SPIN_S` (non-blocking reads, yielding the CPU between them) before it
  blocks. snmpd sends a walk's next GetNext within ~20-40 us; sleeping and
  being woken for each one costs more than that on a VM (a wake-up of an idle
  vCPU is an IPI and a VM exit), and made a 10,000-VIP walk 2.5x slower. The
  yield keeps snmpd running when both share a CPU; no request, no spin.
* The walk fast path: snmpd 5.9 turns every GETBULK repetition into one
  GetNext PDU whose start is the OID we answered last. A cursor (table, wire
  OID of the last answer, its index) turns that continuation into a bytes
  compare and the next index: no OID parsing, no search, no per-PDU objects
  beyond the answer. Anything else (other PDUs, several ranges, include=1, a
  walk's table grown too old, another byte order, context) takes the general
  path.

* One table per walk: a walk in progress keeps the table it started on, so
  from its first OID to its last it sees one scrape (every column of a row,
  too), even when refreshes land in between. snmpd's next GetNext for a walk
  starts at the OID we answered last for it (snmptable, a row per request:
  the first column's); that is the walk's "head",
  remembered with its table (`_cursor` for the latest answer, `_heads` for
  walks interleaved with it). A request from a head continues on the head's
  table while that table is at most `pin_max_s` old (cli: the staleness limit,
  so a walk never extends how long old data is served); anything else is
  answered from the newest table. Two walks at the same OID share the newer
  of their tables, so no walk ever moves to an older scrape.
  snmptable's default GETBULK mode walks column by column, each column
  starting afresh at its column's OID: there each column is one scrape.

Threading: `run()` owns the socket and runs on the caller's thread. The only
shared state is the served table, replaced whole by `publish()` (one
reference assignment); each PDU is answered from one table.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

import pyagentx3
from pyagentx3.network import Network
from pyagentx3.pdu import PDU

from agentx_lb.oids import Oid, format_oid
from agentx_lb.table import Table, is_known_object, pack_oid

log = logging.getLogger(__name__)

HDR_LEN = pyagentx3.AX_PDU_HDR_LEN
FLAG_NBO = pyagentx3.AX_PDU_FLAG_BYTE_ORDER
FLAG_CONTEXT = pyagentx3.AX_PDU_FLAG_CONTEXT
MAX_PAYLOAD = 1 << 20  # a larger length means a desynchronised stream
POLL_S = 0.1  # every wait is at most this long, so stop is noticed quickly
HANDSHAKE_TIMEOUT_S = 3.0
BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 1.0
MAX_BULK_VARBINDS = 2048  # GETBULK answer cap (snmpd 5.9 never sends GETBULK)
SEND_TIMEOUT_S = 2  # kernel SO_SNDTIMEO while serving: a wedged master cannot hang us
# How long the loop polls for the next request after an answer (see above).
SPIN_S = 50e-6
# Walk heads kept besides the cursor (walks interleaved through one snmpd),
# and how long one may go without being continued (a client that gave up).
MAX_HEADS = 64
HEAD_IDLE_S = 10.0
# Default age limit of a walk's table (LbAgent(pin_max_s=...); cli passes the staleness limit).
PIN_MAX_S = 15.0
# The GIL hand-over interval while serving. A request arriving during a table
# build waits for the scrape thread to yield the GIL: 5 ms by default, per PDU.
GIL_SWITCH_S = 0.0005

CLOSE_OTHER, CLOSE_PARSE_ERROR, CLOSE_SHUTDOWN = 1, 2, 5

_HDR_BE = struct.Struct("!BBBBIIII")
_HDR_LE = struct.Struct("<BBBBIIII")
_RESP_HDR = struct.Struct("!BBBBIIII")
_RESP_FIELDS = struct.Struct("!IHH")
_VB_TYPE = struct.Struct("!HH")
_U16_BE, _U16_LE = struct.Struct("!H"), struct.Struct("<H")
_U32_BE, _U32_LE = struct.Struct("!I"), struct.Struct("<I")
_INTERNET_CANON = struct.pack("!4I", 1, 3, 6, 1)
# Response prefix (version 1, Response, network byte order) and the zeroed
# sysUpTime/error/index fields of a successful answer.
_RESP_START = bytes((1, pyagentx3.AGENTX_RESPONSE_PDU, FLAG_NBO, 0))
_RESP_OK = bytes(8)
_GETNEXT = pyagentx3.AGENTX_GETNEXT_PDU
_PARSE_ERROR = pyagentx3.ERROR_PARSEERROR
_NOT_WRITABLE = pyagentx3.ERROR_NOTWRITABLE


class ProtocolError(Exception):
    """The AgentX stream or a response is unusable: drop the session and reconnect."""


class _ParseError(Exception):
    """One request PDU is malformed: answer it with parseError."""


# ---------------------------------------------------------------- pyagentx3 subclasses


class _Pdu(PDU):
    """pyagentx3's PDU with our own Open/Register/Close payloads and no hexdump."""

    def __init__(self, pdu_type: int, agent_id: str, *, timeout_s: int = 0) -> None:
        super().__init__(pdu_type, agent_id=agent_id)
        self.timeout_s = timeout_s
        self.priority = 127
        self.oid = ""
        self.reason = CLOSE_SHUTDOWN

    def encode(self) -> bytes:
        # pyagentx3's encode() hard-codes timeouts/priority and hexdumps every PDU.
        if self.type == pyagentx3.AGENTX_OPEN_PDU:
            body = struct.pack("!BBBB", self.timeout_s, 0, 0, 0) + struct.pack("!L", 0)
            body += self.encode_octet(self.agent_id.encode("ascii", "replace"))
        elif self.type == pyagentx3.AGENTX_REGISTER_PDU:
            body = struct.pack("BBBB", self.timeout_s, self.priority, 0, 0)
            body += self.encode_oid(self.oid)
        elif self.type == pyagentx3.AGENTX_CLOSE_PDU:
            body = struct.pack("BBBB", self.reason, 0, 0, 0)
        else:
            raise ValueError(f"pdu type {self.type} is not sent by this agent")
        return self.encode_header(self.type, len(body)) + body

    @staticmethod
    def decode_response(buf: bytes) -> tuple[int, int, int]:
        """(session_id, packet_id, error) of a Response PDU; raises ProtocolError."""
        if len(buf) < HDR_LEN + 8 or buf[1] != pyagentx3.AGENTX_RESPONSE_PDU:
            raise ProtocolError("not a response")
        nbo = buf[2] & FLAG_NBO
        _, _, _, _, session_id, _, packet_id, _ = (_HDR_BE if nbo else _HDR_LE).unpack_from(buf)
        error = (_U16_BE if nbo else _U16_LE).unpack_from(buf, HDR_LEN + 4)[0]
        return session_id, packet_id, error


class _Session(Network):
    """One AgentX connection: socket, reassembly buffer, ids.

    pyagentx3's `Network` supplies the state it keeps (socket path, agent id,
    session/transaction ids); its loop (`start`), `_connect` (retries every
    2 s forever), `send_pdu` (`send`, dump) and `recv_pdu` (partial read = EOF,
    buffer kept across connections) are replaced.
    """

    def __init__(self, socket_path: str, agent_id: str, root: Oid) -> None:
        super().__init__(None, [format_oid(root)], {}, agent_id, socket_path)
        self.debug = 0
        self._recv_buf = bytearray()  # fresh per connection: a session owns its buffer
        self._packet_id = 0

    def _connect(self) -> None:
        """One attempt; raises OSError."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Bounded sends; reads wait in select() with POLL_S.
            sock.settimeout(2.0)
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.socket = sock

    def start(self) -> None:  # pragma: no cover - guard against pyagentx3's loop
        raise RuntimeError("pyagentx3's protocol loop is not used; call LbAgent.run()")

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def new_pdu(self, pdu_type: int, timeout_s: int = 0) -> _Pdu:  # type: ignore[override]
        pdu = _Pdu(pdu_type, self._agent_id, timeout_s=timeout_s)
        pdu.session_id = self.session_id
        pdu.transaction_id = self.transaction_id
        self._packet_id += 1
        pdu.packet_id = self._packet_id
        return pdu

    def send_pdu(self, pdu: PDU, force: bool = False) -> None:  # noqa: ARG002
        self.socket.sendall(pdu.encode())

    def send_bytes(self, buf: bytes) -> None:
        self.socket.sendall(buf)

    def to_blocking(self) -> None:
        """Serving mode: plain blocking calls, so each is one syscall.

        Python polls before every call on a socket with a timeout; the kernel's
        SO_SNDTIMEO bounds a send instead (raises OSError when it expires).
        """
        self.socket.settimeout(None)
        self.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0)
        )

    def recv_blocking(self, spin_ns: int = 0) -> bytes:
        """The next complete PDU; raises ConnectionError on EOF (or read shutdown).

        `spin_ns`: poll this long for a PDU already on its way before blocking.
        """
        if not self._recv_buf:
            # Usual case: one read is exactly one PDU; hand it on without copies.
            data = self._recv_soon(spin_ns) if spin_ns else None
            if data is None:
                data = self.socket.recv(65536)
            if not data:
                raise ConnectionError("closed by master")
            if len(data) >= HDR_LEN:
                length = (_U32_BE if data[2] & FLAG_NBO else _U32_LE).unpack_from(data, 16)[0]
                if length + HDR_LEN == len(data):
                    return data
            self._recv_buf += data
        while True:
            pdu = self._next_buffered()
            if pdu is not None:
                return pdu
            data = self.socket.recv(65536)
            if not data:
                raise ConnectionError("closed by master")
            self._recv_buf += data

    def _recv_soon(self, spin_ns: int) -> bytes | None:
        """What one read returns if data arrives within `spin_ns`, else None."""
        recv = self.socket.recv
        deadline = time.perf_counter_ns() + spin_ns
        while True:
            try:
                return recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter_ns() >= deadline:
                    return None
                os.sched_yield()  # let a peer on this CPU (snmpd) run first

    def recv_pdu(self, timeout: float = POLL_S) -> bytes | None:  # type: ignore[override]
        """The next complete PDU, or None if none arrived within `timeout`.

        Raises ConnectionError on EOF and ProtocolError on an impossible length.
        """
        pdu = self._next_buffered()
        if pdu is not None:
            return pdu
        readable, _, _ = select.select([self.socket], [], [], timeout)
        if not readable:
            return None
        data = self.socket.recv(65536)
        if not data:
            raise ConnectionError("closed by master")
        self._recv_buf += data
        return self._next_buffered()

    def _next_buffered(self) -> bytes | None:
        buf = self._recv_buf
        if len(buf) < HDR_LEN:
            return None
        length = (_U32_BE if buf[2] & FLAG_NBO else _U32_LE).unpack_from(buf, 16)[0]
        if length > MAX_PAYLOAD:
            raise ProtocolError(f"payload length {length} too large")
        total = HDR_LEN + length
        if len(buf) < total:
            return None  # partial PDU: wait for the rest
        if len(buf) == total:
            pdu = bytes(buf)
            buf.clear()
        else:
            pdu = bytes(buf[:total])
            del buf[:total]
        return pdu


# ---------------------------------------------------------------- request parsing


def _parse_oid(p: bytes, pos: int, nbo: int) -> tuple[bytes, int, bytes, int]:
    """(canonical OID bytes, include, AgentX OID echo with include=0, next pos)."""
    if pos + 4 > len(p):
        raise _ParseError("truncated OID header")
    n, prefix, include = p[pos], p[pos + 1], p[pos + 2]
    end = pos + 4 + 4 * n
    if end > len(p) or n > 128:
        raise _ParseError("truncated OID")
    if nbo:
        raw = p[pos + 4 : end]
        echo = bytes((n, prefix, 0, 0)) + raw
    else:
        raw = struct.pack(f"!{n}I", *struct.unpack_from(f"<{n}I", p, pos + 4))
        echo = bytes((n, prefix, 0, 0)) + raw
    canon = _INTERNET_CANON + _U32_BE.pack(prefix) + raw if prefix else raw
    return canon, include, echo, end


def _parse_ranges(p: bytes, pos: int, nbo: int) -> list[tuple[bytes, int, bytes, bytes | None]]:
    """SearchRangeList: [(start canon, include, start echo, end canon or None)]."""
    ranges = []
    while pos < len(p):
        start, include, echo, pos = _parse_oid(p, pos, nbo)
        end, _, _, pos = _parse_oid(p, pos, nbo)
        ranges.append((start, include, echo, end or None))
    return ranges


def _skip_context(p: bytes, flags: int, nbo: int) -> int:
    if not flags & FLAG_CONTEXT:
        return 0
    if len(p) < 4:
        raise _ParseError("truncated context")
    n = (_U32_BE if nbo else _U32_LE).unpack_from(p, 0)[0]
    pos = 4 + n + (-n % 4)
    if pos > len(p):
        raise _ParseError("truncated context")
    return pos


# ---------------------------------------------------------------- the agent


class LbAgent:
    """AgentX subagent serving one registered subtree (`root`) from a `Table`."""

    def __init__(
        self,
        socket_path: str,
        root: Oid,
        *,
        agent_id: str = "agentx-lb",
        timeout_s: int = 3,
        priority: int = 127,
        spin_s: float = SPIN_S,
        pin_max_s: float = PIN_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socket_path = socket_path
        self.root: Oid = tuple(root)
        self.agent_id = agent_id
        self.timeout_s = timeout_s
        self.priority = priority
        self.spin_ns = int(spin_s * 1e9)
        self.pin_max_s = pin_max_s
        self._clock = clock
        # The served table and when it was published, replaced as one pair.
        self._served: tuple[Table, float] = (Table.empty(self.root), clock())
        self._connected = False
        # Sequential-walk shortcut: (table, canonical OID last answered, its index).
        self._hint: tuple[Table, bytes, int] | None = None
        # The head of the latest GetNext answer: (table, AgentX wire OID of
        # the answer as it comes back in the walk's next request, its index,
        # the table's publish time). Also the GetNext fast path's state.
        self._cursor: _Head | None = None
        # Other walks' heads: wire OID -> (table, index, publish time, parked
        # at), oldest parked first.
        self._heads: dict[bytes, tuple[Table, int, float, float]] = {}
        # The last search range end seen on the fast path: (wire, canonical
        # end or None when it lies beyond every OID under the root).
        self._end: tuple[bytes, bytes | None] = (b"", None)
        self._root_end = pack_oid(self.root[:-1] + (self.root[-1] + 1,))
        self.fast_answers = 0  # GetNext PDUs answered by the fast path (tests, profiling)
        self.sessions = 0  # successful registrations since start (tests, health)
        self._live: _Session | None = None  # the session the watcher must wake on stop
        self._live_lock = threading.Lock()
        # pyagentx3 logs every GET at INFO; only its warnings are useful.
        logging.getLogger("pyagentx3").setLevel(logging.WARNING)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def table(self) -> Table:
        return self._served[0]

    def publish(self, table: Table) -> None:
        """Serve `table` from the next PDU on (thread-safe: one reference swap)."""
        if table.root != self.root:
            raise ValueError(f"table root {table.root} is not the agent root {self.root}")
        self._served = (table, self._clock())

    # ---- lifecycle

    def run(self, stop: threading.Event) -> None:
        """Connect, register, answer requests and reconnect until `stop` is set."""
        backoff = BACKOFF_START_S
        failures = 0
        if sys.getswitchinterval() > GIL_SWITCH_S:
            sys.setswitchinterval(GIL_SWITCH_S)
        threading.Thread(
            target=self._wake_on_stop, args=(stop,), name="agentx-stop", daemon=True
        ).start()
        while not stop.is_set():
            session = _Session(self.socket_path, self.agent_id, self.root)
            registered = False
            try:
                session._connect()
                self._handshake(session, stop)
                registered = True
                if failures:
                    log.info("agentx connected socket=%s after_failures=%d", self.socket_path, failures)
                else:
                    log.info("agentx connected socket=%s", self.socket_path)
                failures = 0
                backoff = BACKOFF_START_S
                self._connected = True
                self.sessions += 1
                self._serve(session, stop)
                if stop.is_set():
                    self._send_close(session, CLOSE_SHUTDOWN)
            except (OSError, ProtocolError) as exc:
                failures += 1
                level = logging.WARNING if failures == 1 or registered else logging.DEBUG
                log.log(level, "agentx session lost socket=%s err=%s", self.socket_path, exc)
            finally:
                self._connected = False
                self._hint = self._cursor = None
                self._heads.clear()  # walks do not survive a new session
                with self._live_lock:
                    self._live = None
                    session.close()
            if registered:
                backoff = BACKOFF_START_S
            if stop.wait(backoff):
                break
            backoff = min(backoff * 2, BACKOFF_CAP_S)

    def _wake_on_stop(self, stop: threading.Event) -> None:
        """Watcher: on stop, end the serving loop's blocking read (no polling)."""
        stop.wait()
        with self._live_lock:
            live = self._live
            if live is not None and live.socket is not None:
                try:
                    live.socket.shutdown(socket.SHUT_RD)
                except OSError as exc:  # already closed by the peer
                    log.debug("agentx read shutdown failed err=%s", exc)

    def _await_response(self, session: _Session, packet_id: int, stop: threading.Event) -> int:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while not stop.is_set():
            if time.monotonic() > deadline:
                raise ProtocolError("no response from master")
            buf = session.recv_pdu(POLL_S)
            if buf is None:
                continue
            if buf[1] != pyagentx3.AGENTX_RESPONSE_PDU:
                continue  # nothing else is expected before registration
            session_id, pid, error = _Pdu.decode_response(buf)
            if pid == packet_id:
                session.session_id = session_id
                return error
        raise ProtocolError("stopped during handshake")

    def _handshake(self, session: _Session, stop: threading.Event) -> None:
        pdu = session.new_pdu(pyagentx3.AGENTX_OPEN_PDU, self.timeout_s)
        session.send_pdu(pdu)
        error = self._await_response(session, pdu.packet_id, stop)
        if error:
            raise ProtocolError(f"open refused: {pyagentx3.ERROR_NAMES.get(error, error)}")
        pdu = session.new_pdu(pyagentx3.AGENTX_REGISTER_PDU, self.timeout_s)
        pdu.oid = format_oid(self.root)
        pdu.priority = self.priority
        session.send_pdu(pdu)
        error = self._await_response(session, pdu.packet_id, stop)
        if error:
            self._send_close(session, CLOSE_OTHER)
            raise ProtocolError(
                f"register refused oid={pdu.oid}: {pyagentx3.ERROR_NAMES.get(error, error)}"
            )

    def _send_close(self, session: _Session, reason: int) -> None:
        pdu = session.new_pdu(pyagentx3.AGENTX_CLOSE_PDU)
        pdu.reason = reason
        try:
            session.send_pdu(pdu)
        except OSError as exc:
            log.debug("agentx close not sent err=%s", exc)

    def _serve(self, session: _Session, stop: threading.Event) -> None:
        """Answer requests until stop (returns) or the connection fails (raises)."""
        errors = 0
        session.to_blocking()
        with self._live_lock:
            self._live = session
        recv, send, handle = session.recv_blocking, session.send_bytes, self.handle
        spin_ns = self.spin_ns
        while not stop.is_set():  # checked before the first read: stop may predate _live
            try:
                pdu = recv(spin_ns)
            except OSError:
                if stop.is_set():
                    return  # our own read shutdown: the caller sends Close
                raise
            if pdu[1] == pyagentx3.AGENTX_CLOSE_PDU:
                raise ProtocolError("closed by master (close pdu)")
            try:
                answer = handle(pdu)
            except Exception:  # a bug must not kill the session: answer genError, log
                errors += 1
                if errors == 1:
                    log.exception("agentx request failed type=%d", pdu[1])
                answer = _response(pdu, pyagentx3.ERROR_GENERR, 0, b"")
            if answer is not None:
                send(answer)

    # ---- request handling (pure: bytes in, bytes out)

    def handle(self, pdu: bytes) -> bytes | None:
        """The response to one complete request PDU, or None when none is due."""
        if pdu[1] == _GETNEXT and pdu[2] == FLAG_NBO and pdu[0] == 1:
            answer = self._getnext_continued(pdu)
            if answer is not None:
                return answer
        version, ptype, flags = pdu[0], pdu[1], pdu[2]
        if version != 1:
            log.debug("agentx pdu dropped version=%d", version)
            return None
        table, published = self._served  # one table for the whole PDU
        nbo = flags & FLAG_NBO
        payload = pdu[HDR_LEN:]
        try:
            if ptype == pyagentx3.AGENTX_GETNEXT_PDU:
                pos = _skip_context(payload, flags, nbo)
                ranges = _parse_ranges(payload, pos, nbo)
                table, published = self._walk_table(ranges, table, published)
                answers, first = self._getnext(table, ranges)
                if first >= 0:  # the walk's new head (`_walk_table` let go of the old)
                    self._move_cursor(table, first, published)
                return _response(pdu, 0, 0, answers)
            if ptype == pyagentx3.AGENTX_GET_PDU:
                pos = _skip_context(payload, flags, nbo)
                return _response(pdu, 0, 0, self._get(table, _parse_ranges(payload, pos, nbo)))
            if ptype == pyagentx3.AGENTX_GETBULK_PDU:
                pos = _skip_context(payload, flags, nbo)
                if pos + 4 > len(payload):
                    raise _ParseError("truncated getbulk")
                u16 = _U16_BE if nbo else _U16_LE
                non_rep = u16.unpack_from(payload, pos)[0]
                max_rep = u16.unpack_from(payload, pos + 2)[0]
                ranges = _parse_ranges(payload, pos + 4, nbo)
                return _response(pdu, 0, 0, self._getbulk(table, ranges, non_rep, max_rep))
        except _ParseError as exc:
            log.debug("agentx parse error type=%d err=%s", ptype, exc)
            return _response(pdu, _PARSE_ERROR, 0, b"")
        if ptype == pyagentx3.AGENTX_TESTSET_PDU:
            return _response(pdu, _NOT_WRITABLE, 1, b"")
        if ptype in (pyagentx3.AGENTX_COMMITSET_PDU, pyagentx3.AGENTX_UNDOSET_PDU):
            return _response(pdu, pyagentx3.ERROR_PROCESSINGERROR, 0, b"")
        if ptype == pyagentx3.AGENTX_PING_PDU:
            return _response(pdu, 0, 0, b"")
        # Responses (to our Close/Ping), CleanupSet and unknown types: no answer.
        log.debug("agentx pdu ignored type=%d", ptype)
        return None

    def _getnext_continued(self, pdu: bytes) -> bytes | None:
        """The answer when `pdu` is a one-range GetNext (network byte order, no
        context) starting exactly at the OID answered last from the current
        table; None otherwise (the general path then answers it).
        """
        cursor = self._cursor
        if cursor is None:
            return None
        table = cursor[0]
        if table is not self._served[0] and not self._may_continue(table, cursor[3]):
            return None  # the walk's table is too old: the general path moves it on
        n = len(pdu)
        mid = HDR_LEN + 4 + 4 * pdu[HDR_LEN] if n > HDR_LEN else n
        # One SearchRange exactly: start OID, end OID, nothing after.
        if mid + 4 > n or mid + 4 + 4 * pdu[mid] != n or pdu[HDR_LEN:mid] != cursor[1]:
            return None
        i = cursor[2] + 1
        if i >= len(table):
            return None  # endOfMibView: the general path
        end_wire = pdu[mid:]
        end = self._end
        if end[0] != end_wire:
            end = self._end = (end_wire, self._end_canon(pdu, mid))
        if end[1] is not None and table.root_key + table.key(i) >= end[1]:
            return None
        vb = self._move_cursor(table, i, cursor[3])
        self.fast_answers += 1
        return b"".join((_RESP_START, pdu[4:16], _U32_BE.pack(8 + len(vb)), _RESP_OK, vb))

    # ---- walks and their tables

    def _walk_table(
        self, ranges: list, table: Table, published: float
    ) -> tuple[Table, float]:
        """The table a general-path GetNext is answered from, and its publish time.

        A request (include 0) whose first range starts at a walk's head
        continues on that walk's table unless the table is older than
        `pin_max_s`; any other request is answered from the newest. The latest
        answer's head (the cursor) is parked unless this request continues it.
        """
        now = self._clock()
        # A walk's next request starts at its last answer; snmptable asks a row
        # per request (one range per column) and its first range starts at the
        # last row's first column (later columns may skip holes): the head.
        key = ranges[0][2] if ranges and not any(r[1] for r in ranges) else None
        cursor, heads = self._cursor, self._heads
        head: tuple[Table, float] | None = None
        if cursor is not None:
            if cursor[1] == key:
                head = (cursor[0], cursor[3])
            else:
                self._park(cursor, now)
            self._cursor = None
        if head is None and key is not None:
            parked = heads.pop(key, None)
            if parked is not None:
                head = (parked[0], parked[2])
        self._expire_heads(now)
        if head is not None and self._may_continue(*head):
            return head
        return table, published

    def _may_continue(self, table: Table, published: float) -> bool:
        """A walk may go on in `table`: it is the served one, or not too old."""
        return table is self._served[0] or self._clock() - published <= self.pin_max_s

    def _move_cursor(self, table: Table, i: int, published: float) -> bytes:
        """Cell i of `table` is a walk's new head: the cursor; returns its varbind."""
        vb = table.varbind(i)
        self._cursor = (table, vb[4 : 8 + 4 * vb[4]], i, published)
        if self._heads:
            self._merge_cursor()
        return vb

    def _park(self, cursor: _Head, now: float) -> None:
        """Keep the cursor's walk as a head (no head has its OID: `_merge_cursor`)."""
        table, key, i, published = cursor
        heads = self._heads
        heads[key] = (table, i, published, now)
        if len(heads) > MAX_HEADS:
            del heads[next(iter(heads))]

    def _merge_cursor(self) -> None:
        """When the new cursor names a parked head's OID, two walks meet there:
        both go on from the newer of their tables (one head), so neither ever
        steps back to an older scrape."""
        cursor = self._cursor
        assert cursor is not None
        other = self._heads.pop(cursor[1], None)
        if other is not None and other[2] > cursor[3]:
            self._cursor = (other[0], cursor[1], other[1], other[2])

    def _expire_heads(self, now: float) -> None:
        """Forget heads not continued for HEAD_IDLE_S (oldest parked first)."""
        heads = self._heads
        while heads:
            key = next(iter(heads))
            if now - heads[key][3] <= HEAD_IDLE_S:
                return
            del heads[key]

    def _end_canon(self, pdu: bytes, mid: int) -> bytes | None:
        """Canonical range end at `mid`; None when no end or it is past the root's subtree."""
        try:
            end, _, _, _ = _parse_oid(pdu, mid, FLAG_NBO)
        except _ParseError:
            return b""  # unreachable after the length check; b"" sends all to the general path
        if not end or end >= self._root_end:
            return None
        return end

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

    def _getnext(self, table: Table, ranges: list) -> tuple[bytes, int]:
        """The answers to `ranges`, and the index of the first range's answer
        (-1 when it is endOfMibView or there is no range)."""
        out = []
        first = -1
        for k, (start, include, echo, end) in enumerate(ranges):
            i, _ = self._next(table, start, include, end)
            if i >= 0:
                out.append(table.varbind(i))
                if k == 0:
                    first = i
            else:
                out.append(_END_OF_MIB + echo)
        return b"".join(out), first

    def _get(self, table: Table, ranges: list) -> bytes:
        out = []
        rk = table.root_key
        for start, _, echo, _ in ranges:
            i = table.locate(start, True)
            if i < len(table) and rk + table.key(i) == start:
                out.append(table.varbind(i))
                continue
            oid = struct.unpack(f"!{len(start) // 4}I", start)
            missing = _NO_SUCH_INSTANCE if is_known_object(table.root, oid) else _NO_SUCH_OBJECT
            out.append(missing + echo)
        return b"".join(out)

    def _getbulk(self, table: Table, ranges: list, non_rep: int, max_rep: int) -> bytes:
        out = [self._getnext(table, ranges[:non_rep])[0]]
        repeaters = [[s, inc, echo, end] for s, inc, echo, end in ranges[non_rep:]]
        if not repeaters:
            return out[0]
        reps = min(max_rep, MAX_BULK_VARBINDS // len(repeaters))
        for _ in range(reps):
            all_end = True
            for r in repeaters:
                i, canon = self._next(table, r[0], r[1], r[3]) if r[0] is not None else (-1, b"")
                if i >= 0:
                    out.append(table.varbind(i))
                    r[0], r[1], r[2] = canon, 0, _echo(canon)
                    all_end = False
                else:
                    out.append(_END_OF_MIB + r[2])
                    r[0] = None  # stays at endOfMibView
            if all_end:
                break
        return b"".join(out)


# (table, AgentX wire OID of an answer, its index, the table's publish time)
_Head = tuple[Table, bytes, int, float]


def _echo(canon: bytes) -> bytes:
    """AgentX OID (network order, uncompressed) for a canonical OID."""
    return bytes((len(canon) // 4, 0, 0, 0)) + canon


_END_OF_MIB = _VB_TYPE.pack(pyagentx3.TYPE_ENDOFMIBVIEW, 0)
_NO_SUCH_OBJECT = _VB_TYPE.pack(pyagentx3.TYPE_NOSUCHOBJECT, 0)
_NO_SUCH_INSTANCE = _VB_TYPE.pack(pyagentx3.TYPE_NOSUCHINSTANCE, 0)


def _response(request: bytes, error: int, index: int, varbinds: bytes) -> bytes:
    """A Response PDU echoing the request's ids (always network byte order)."""
    nbo = request[2] & FLAG_NBO
    _, _, _, _, session_id, transaction_id, packet_id, _ = (
        _HDR_BE if nbo else _HDR_LE
    ).unpack_from(request)
    body = _RESP_FIELDS.pack(0, error, index) + varbinds
    return (
        _RESP_HDR.pack(
            1,
            pyagentx3.AGENTX_RESPONSE_PDU,
            FLAG_NBO,
            0,
            session_id,
            transaction_id,
            packet_id,
            len(body),
        )
        + body
    )
