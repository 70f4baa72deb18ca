"""Our AgentX session to snmpd: connect, Open, Register, serve, Ping, reconnect, Close.

* PDUs split over several reads are reassembled (the buffer belongs to one
  connection), answers go out with `sendall`, nothing is hexdumped.
* Open and Register responses are checked; a refused one is retried after a
  short capped backoff, as is a lost connection (snmpd restarted).
* Every Response from the master (Open, Register, our periodic Ping) carries
  its sysUpTime: handed to `on_uptime`, the clock of every served TimeStamp.
  A Ping unanswered by the time the next is due means the master is gone:
  the session is dropped and opened again.
* Per request one recv() and one send(): no select/poll per PDU. After each
  answer the loop polls the socket for up to `spin_s` (non-blocking reads,
  yielding the CPU between them) before it blocks: snmpd sends a walk's next
  GetNext within tens of microseconds, and being put to sleep and woken for
  each one costs more than that on a VM (the wake-up of an idle vCPU is an
  IPI and a VM exit; figures in bench/results). The yield keeps snmpd running when both share a CPU.
* Stop: a watcher thread waiting on the stop event shuts the read side of the
  live socket down, which ends the blocking read at once; a registered
  session ends with a Close PDU. Idle, the loop wakes once per Ping interval.
* Notifications (with an `Outbox`): sent as Notify PDUs by this loop only,
  after a request is answered or when the outbox wakes the idle wait (then
  the blocking read is a poll() on the socket and the outbox's eventfd; a
  walk's GetNexts, which arrive within the spin, never pay for it). snmpd's
  Response to a Notify arrives in the same stream as the requests and is
  matched by packetID. Notifications queue while no session is registered;
  those unanswered when a session is lost go back to the front of the queue
  (sent again after the next registration: at least once, not at most once).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from agentx_lb.agentx import codec
from agentx_lb.agentx.codec import (
    CLOSE_OTHER,
    CLOSE_SHUTDOWN,
    HDR_LEN,
    Pdu,
    ProtocolError,
    decode_response,
    payload_length,
    response,
)
from agentx_lb.agentx.outbox import Outbox
from agentx_lb.oids import Oid, format_oid

__all__ = ["Connection", "Session"]

log = logging.getLogger(__name__)

MAX_PAYLOAD = 1 << 20  # a larger length means a desynchronised stream
POLL_S = 0.1  # every wait during the handshake is at most this long
HANDSHAKE_TIMEOUT_S = 3.0
BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 1.0
SEND_TIMEOUT_S = 2  # kernel SO_SNDTIMEO while serving: a wedged master cannot hang us
SPIN_S = 50e-6
PING_S = 5.0
NOTIFY_WINDOW = 64  # Notify PDUs sent and not yet answered, at most


class Connection:
    """One AgentX connection: socket, reassembly buffer, ids."""

    def __init__(self, socket_path: str, agent_id: str) -> None:
        self.socket_path = socket_path
        self.agent_id = agent_id
        self.socket: socket.socket | None = None
        self.session_id = 0
        self._recv_buf = bytearray()  # fresh per connection
        self._packet_id = 0
        self._idle_ms = -1  # the serving read's idle timeout (poll)
        self._poller: select.poll | None = None

    def connect(self) -> None:
        """One attempt; raises OSError."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(2.0)  # bounded during the handshake
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.socket = sock

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def new_pdu(self, pdu_type: int, timeout_s: int = 0) -> Pdu:
        self._packet_id += 1
        pdu = Pdu(pdu_type, self.agent_id, timeout_s=timeout_s, packet_id=self._packet_id)
        pdu.session_id = self.session_id
        return pdu

    def send_pdu(self, pdu: Pdu) -> None:
        assert self.socket is not None
        self.socket.sendall(pdu.encode())

    def send_bytes(self, buf: bytes) -> None:
        assert self.socket is not None
        self.socket.sendall(buf)

    def to_serving(self, idle_s: float) -> None:
        """Serving mode: plain blocking calls, so each is one syscall.

        Python polls before every call on a socket with a timeout; the kernel
        bounds a send instead (SO_SNDTIMEO) and ends a read idle for `idle_s`
        (SO_RCVTIMEO: BlockingIOError), so the loop can ping the master.
        """
        sock = self.socket
        assert sock is not None
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))
        sec = int(idle_s)
        usec = int((idle_s - sec) * 1e6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", sec, usec))
        self._idle_ms = max(1, int(idle_s * 1000)) if idle_s > 0 else -1

    # Earlier name, kept for callers that only want blocking reads.
    def to_blocking(self) -> None:
        self.to_serving(0.0)

    def recv_blocking(self, spin_ns: int = 0, wake_fd: int = -1) -> bytes:
        """The next complete PDU; raises ConnectionError on EOF (or read shutdown),
        BlockingIOError when the read was idle for the serving timeout or
        `wake_fd` (an eventfd, drained here) became readable first.

        `spin_ns`: poll this long for a PDU already on its way before blocking.
        """
        sock = self.socket
        assert sock is not None
        if not self._recv_buf:
            # Usual case: one read is exactly one PDU; hand it on without copies.
            data = self._recv_soon(spin_ns) if spin_ns else None
            if data is None:
                data = sock.recv(65536) if wake_fd < 0 else self._recv_or_wake(wake_fd)
            if not data:
                raise ConnectionError("closed by master")
            if len(data) >= HDR_LEN and payload_length(data) + HDR_LEN == len(data):
                return data
            self._recv_buf += data
        while True:
            pdu = self._next_buffered()
            if pdu is not None:
                return pdu
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed by master")
            self._recv_buf += data

    def _recv_or_wake(self, wake_fd: int) -> bytes:
        """One read once the socket is readable; BlockingIOError when idle or woken."""
        sock = self.socket
        assert sock is not None
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)
            self._poller.register(wake_fd, select.POLLIN)
        events = self._poller.poll(self._idle_ms)
        sock_fd = sock.fileno()
        for fd, _ev in events:
            if fd == wake_fd:
                try:
                    os.eventfd_read(wake_fd)
                except OSError:
                    pass
        if any(fd == sock_fd for fd, _ev in events):
            return sock.recv(65536, socket.MSG_DONTWAIT)  # EOF (b"") included
        raise BlockingIOError("idle or woken")

    def _recv_soon(self, spin_ns: int) -> bytes | None:
        """What one read returns if data arrives within `spin_ns`, else None."""
        assert self.socket is not None
        recv = self.socket.recv
        deadline = time.perf_counter_ns() + spin_ns
        while True:
            try:
                return recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter_ns() >= deadline:
                    return None
                os.sched_yield()  # let a peer on this CPU (snmpd) run first

    def recv_pdu(self, timeout: float = POLL_S) -> bytes | None:
        """The next complete PDU, or None if none arrived within `timeout`.

        Raises ConnectionError on EOF and ProtocolError on an impossible length.
        """
        pdu = self._next_buffered()
        if pdu is not None:
            return pdu
        assert self.socket is not None
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
        length = payload_length(buf)
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


class Session:
    """Keeps one registration of `root` alive until stopped; requests go to `answer`."""

    def __init__(
        self,
        socket_path: str,
        root: Oid,
        answer: Callable[[bytes, float], bytes | None],
        *,
        on_uptime: Callable[[int], object] = lambda _cs: None,
        on_new_session: Callable[[], object] = lambda: None,
        agent_id: str = "agentx-lb",
        timeout_s: int = 3,
        priority: int = 127,
        spin_s: float = SPIN_S,
        ping_s: float = PING_S,
        clock: Callable[[], float] = time.monotonic,
        outbox: Outbox | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.outbox = outbox
        self.notifications_sent = 0  # Notify PDUs answered without error (tests, health)
        self.notification_errors = 0  # answered with an error
        self.root: Oid = tuple(root)
        self.answer = answer
        self.on_uptime = on_uptime
        self.on_new_session = on_new_session
        self.agent_id = agent_id
        self.timeout_s = timeout_s
        self.priority = priority
        self.spin_ns = int(spin_s * 1e9)
        self.ping_s = ping_s
        self.clock = clock
        self.connected = False
        self.sessions = 0  # successful registrations since start (tests, health)
        self._live: Connection | None = None  # the connection the watcher must wake on stop
        self._live_lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Connect, register, answer requests and reconnect until `stop` is set."""
        backoff = BACKOFF_START_S
        failures = 0
        threading.Thread(
            target=self._wake_on_stop, args=(stop,), name="agentx-stop", daemon=True
        ).start()
        while not stop.is_set():
            conn = Connection(self.socket_path, self.agent_id)
            registered = False
            try:
                conn.connect()
                self._handshake(conn, stop)
                registered = True
                if failures:
                    log.info(
                        "agentx connected socket=%s after_failures=%d", self.socket_path, failures
                    )
                else:
                    log.info("agentx connected socket=%s", self.socket_path)
                failures = 0
                backoff = BACKOFF_START_S
                self.connected = True
                self.sessions += 1
                self._serve(conn, stop)
                if stop.is_set():
                    self._send_close(conn, CLOSE_SHUTDOWN)
            except (OSError, ProtocolError) as exc:
                failures += 1
                level = logging.WARNING if failures == 1 or registered else logging.DEBUG
                log.log(level, "agentx session lost socket=%s err=%s", self.socket_path, exc)
            finally:
                self.connected = False
                self.on_new_session()  # walks do not survive a session
                with self._live_lock:
                    self._live = None
                    conn.close()
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

    def _await_response(self, conn: Connection, packet_id: int, stop: threading.Event) -> int:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while not stop.is_set():
            if time.monotonic() > deadline:
                raise ProtocolError("no response from master")
            buf = conn.recv_pdu(POLL_S)
            if buf is None or buf[1] != codec.RESPONSE:
                continue  # nothing else is expected before registration
            res = decode_response(buf)
            if res.packet_id == packet_id:
                conn.session_id = res.session_id
                self.on_uptime(res.sys_uptime_cs)
                return res.error
        raise ProtocolError("stopped during handshake")

    def _handshake(self, conn: Connection, stop: threading.Event) -> None:
        pdu = conn.new_pdu(codec.OPEN, self.timeout_s)
        conn.send_pdu(pdu)
        error = self._await_response(conn, pdu.packet_id, stop)
        if error:
            raise ProtocolError(f"open refused: {codec.ERROR_NAMES.get(error, error)}")
        pdu = conn.new_pdu(codec.REGISTER, self.timeout_s)
        pdu.subtree = self.root
        pdu.priority = self.priority
        conn.send_pdu(pdu)
        error = self._await_response(conn, pdu.packet_id, stop)
        if error:
            self._send_close(conn, CLOSE_OTHER)
            raise ProtocolError(
                f"register refused oid={format_oid(self.root)}: "
                f"{codec.ERROR_NAMES.get(error, error)}"
            )

    def _send_close(self, conn: Connection, reason: int) -> None:
        pdu = conn.new_pdu(codec.CLOSE)
        pdu.reason = reason
        try:
            conn.send_pdu(pdu)
        except OSError as exc:
            log.debug("agentx close not sent err=%s", exc)

    def _serve(self, conn: Connection, stop: threading.Event) -> None:
        """Answer requests until stop (returns) or the connection fails (raises)."""
        conn.to_serving(self.ping_s)
        with self._live_lock:
            self._live = conn
        outbox = self.outbox
        inflight: dict[int, bytes] = {}  # Notify packetID -> its varbinds
        if outbox is not None:
            dropped = outbox.unreported_drops()
            if dropped:
                log.warning("notifications dropped count=%d (queue full while not registered)",
                            dropped)  # fmt: skip
        try:
            self._serve_loop(conn, stop, inflight)
        finally:
            if inflight and outbox is not None:
                # Unanswered: snmpd may not have forwarded them. Sent again after
                # the next registration (a duplicate beats a lost notification).
                outbox.requeue(list(inflight.values()))
                log.info(
                    "notifications unanswered count=%d (%s)", len(inflight),
                    "stopping" if stop.is_set() else "requeued, session lost",
                )  # fmt: skip

    def _serve_loop(
        self, conn: Connection, stop: threading.Event, inflight: dict[int, bytes]
    ) -> None:
        recv, send, answer, clock = conn.recv_blocking, conn.send_bytes, self.answer, self.clock
        spin_ns = self.spin_ns
        next_ping = clock() + self.ping_s
        ping_id = 0  # the Ping awaiting its Response (0: none)
        outbox = self.outbox
        queue = outbox.queue if outbox is not None else None
        wake_fd = outbox.wake_fd if outbox is not None else -1
        errors = 0
        if queue:
            self._send_notifications(conn, inflight)
        while not stop.is_set():  # checked before the first read: stop may predate _live
            try:
                pdu = recv(spin_ns, wake_fd)
            except BlockingIOError:
                pdu = None  # idle for a ping interval
            except OSError:
                if stop.is_set():
                    return  # our own read shutdown: the caller sends Close
                raise
            now = clock()
            if pdu is not None:
                ptype = pdu[1]
                if ptype == codec.RESPONSE:
                    res = decode_response(pdu)
                    if res.packet_id == ping_id:
                        ping_id = 0
                        self.on_uptime(res.sys_uptime_cs)
                    elif res.packet_id in inflight:
                        self._notify_answered(inflight.pop(res.packet_id), res.error)
                    if queue:
                        self._send_notifications(conn, inflight)
                    continue
                if ptype == codec.CLOSE:
                    raise ProtocolError("closed by master (close pdu)")
                try:
                    out = answer(pdu, now)
                except Exception:  # a bug must not kill the session: answer genError, log
                    errors += 1
                    if errors == 1:
                        log.exception("agentx request failed type=%d", ptype)
                    out = response(pdu, codec.GEN_ERR, 0, b"")
                if out is not None:
                    send(out)
            if queue:
                self._send_notifications(conn, inflight)
            if now >= next_ping:
                if ping_id:
                    raise ProtocolError(f"master did not answer a ping in {self.ping_s:g} s")
                ping = conn.new_pdu(codec.PING)
                conn.send_pdu(ping)
                ping_id = ping.packet_id
                next_ping = now + self.ping_s

    def _send_notifications(self, conn: Connection, inflight: dict[int, bytes]) -> None:
        """Send queued notifications, up to NOTIFY_WINDOW unanswered."""
        outbox = self.outbox
        assert outbox is not None
        while len(inflight) < NOTIFY_WINDOW:
            varbinds = outbox.take()
            if varbinds is None:
                return
            pdu = conn.new_pdu(codec.NOTIFY)
            pdu.varbinds = varbinds
            inflight[pdu.packet_id] = varbinds  # before sending: requeued if the send fails
            conn.send_pdu(pdu)

    def _notify_answered(self, varbinds: bytes, error: int) -> None:
        if not error:
            self.notifications_sent += 1
            return
        self.notification_errors += 1
        # Not sent again: snmpd refused this one, and would refuse it again.
        log.warning("notification refused by master err=%s", codec.ERROR_NAMES.get(error, error))
