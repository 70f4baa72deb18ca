"""VPP's api.sock: msgbuf framing, the sockclnt handshake and dispatch.

See docs/vpp.md, "Socket framing and the handshake".

Messages are packed and unpacked with vpp_papi's own serializer over the
project's ``api/*.api.json``.  memclnt messages are numbered 1.. in file order
(so ``sockclnt_create``/``_reply`` are 15/16); every other message gets an id
from ``first_dynamic`` on, which the owner changes on restart.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from vpp_papi.vpp_papi import VPPApiJSONFiles

from agentx_lb.emulator.faults import Faults
from agentx_lb.emulator.listener import UnixListener

log = logging.getLogger(__name__)

MSGBUF = struct.Struct(">QII")
REPLY_HEAD = struct.Struct(">HI")  # every reply starts with its message id and context
# ip_route_lookup 710d6471: id, client_index, context, table_id, exact, prefix{af, 16 bytes, len}
ROUTE_LOOKUP = struct.Struct(">HIIIBB16sB")


class RouteLookupRequest(NamedTuple):
    msg_id: int
    client_index: int
    context: int
    table_id: int
    exact: int
    af: int  # 0 IPv4, 1 IPv6
    address: bytes
    prefix_len: int


MODULE_ORDER = ("memclnt", "vlib", "vpe", "ip_types", "ip", "lb")
SOCKCLNT_CREATE_ID = 15
SOCKCLNT_CREATE_REPLY_ID = 16

# handler(name, request) -> [(reply_name, fields)], or None for "never answer"
Handler = Callable[[str, Any], "Sequence[tuple[str, dict[str, Any] | bytes]] | None"]


class ApiCodec:
    """The message set of one emulated VPP build, from the project's JSON files."""

    def __init__(self, api_dir: str | Path) -> None:
        self.api_dir = Path(api_dir)
        self.documents: dict[str, str] = {}
        self.messages: dict[str, Any] = {}
        self.module_of: dict[str, str] = {}
        self.order: list[str] = []
        for module in MODULE_ORDER:
            text = (self.api_dir / f"{module}.api.json").read_text()
            self.documents[module] = text
            msgs, _ = VPPApiJSONFiles.process_json_str(text)
            for entry in json.loads(text)["messages"]:
                name = entry[0]
                self.messages[name] = msgs[name]
                self.module_of[name] = module
                self.order.append(name)

    def unpack_request(self, name: str, data: bytes) -> Any:
        """A request's fields, raw (no ipaddress conversion).

        vpp_papi keeps a conversion flag on its process-wide type objects, so
        a client under test converting a prefix in another thread can flip it
        under us; `ip_route_lookup` (the hot one) is read with a struct.
        """
        if name == "ip_route_lookup":
            return RouteLookupRequest._make(ROUTE_LOOKUP.unpack_from(data))
        req, _ = self.messages[name].unpack(data, ntc=True)
        return req

    def api_json_array(self) -> str:
        """``get_api_json``'s reply: a JSON array of every module document."""
        return "[" + ",".join(self.documents[m] for m in MODULE_ORDER) + "]"

    def assign_ids(self, first_dynamic: int) -> dict[str, int]:
        ids: dict[str, int] = {}
        n_memclnt = 0
        for name in self.order:
            if self.module_of[name] == "memclnt":
                n_memclnt += 1
                ids[name] = n_memclnt
        next_id = max(first_dynamic, n_memclnt + 1)
        for name in self.order:
            if name not in ids:
                ids[name] = next_id
                next_id += 1
        return ids

    def crc_name(self, name: str, *, wrong: bool = False) -> str:
        crc = int(self.messages[name].crc, 16)
        if wrong:
            crc ^= 0xFFFFFFFF
        return f"{name}_{crc:08x}"


class ApiServer(UnixListener):
    """Serve the binary API on ``path``; one thread per client connection."""

    def __init__(self, path: str | Path, codec: ApiCodec, handler: Handler, faults: Faults) -> None:
        super().__init__(path, socket.SOCK_STREAM, "emu-api-sock")
        self.codec = codec
        self.handler = handler
        self.faults = faults
        self.ids: dict[str, int] = codec.assign_ids(1000)
        self.names: dict[int, str] = {v: k for k, v in self.ids.items()}
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._next_client = 0

    @property
    def handshakes(self) -> int:
        """Client connections accepted so far (`sockclnt_create` answered)."""
        return self._next_client

    def set_first_dynamic(self, first_dynamic: int) -> None:
        self.ids = self.codec.assign_ids(first_dynamic)
        self.names = {v: k for k, v in self.ids.items()}

    # ---------------------------------------------------------- lifecycle --
    def handle(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
            self._threads = [t for t in self._threads if t.is_alive()]
            t = threading.Thread(target=self._serve, args=(conn,), name="emu-api-conn", daemon=True)
            self._threads.append(t)
        t.start()

    def stop(self, *, stale: bool = False) -> None:
        super().stop(stale=stale)
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every client connection (VPP died); the listener is untouched."""
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            self._kill(conn)
        for t in threads:
            t.join()

    def _kill(self, conn: socket.socket) -> None:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer; nothing left to shut down

    # ------------------------------------------------------------ framing --
    @staticmethod
    def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _send(self, conn: socket.socket, name: str, fields: dict[str, Any]) -> None:
        fields = dict(fields)
        fields["_vl_msg_id"] = self.ids[name]
        data = self.codec.messages[name].pack(fields)
        if name in self.faults.truncate:
            data = data[: len(data) // 2]
        conn.sendall(MSGBUF.pack(0, len(data), 0) + data)

    def _send_packed(self, conn: socket.socket, name: str, packed: bytes, context: int) -> None:
        """A reply the handler packed once (id and context 0): both filled in here."""
        data = bytearray(packed)
        REPLY_HEAD.pack_into(data, 0, self.ids[name], context)
        if name in self.faults.truncate:
            data = data[: len(data) // 2]
        conn.sendall(MSGBUF.pack(0, len(data), 0) + data)

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._serve_loop(conn)
        except OSError as exc:
            log.debug("api connection ended err=%s", exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _serve_loop(self, conn: socket.socket) -> None:
        while True:
            hdr = self._recv_exact(conn, MSGBUF.size)
            if hdr is None:
                return
            _, length, _ = MSGBUF.unpack(hdr)
            data = self._recv_exact(conn, length)
            if data is None:
                return
            msg_id = struct.unpack_from(">H", data)[0]
            if msg_id == SOCKCLNT_CREATE_ID:
                self._handshake(conn, data)
                continue
            name = self.names.get(msg_id)
            if name is None or (not self.faults.lb_plugin and self.codec.module_of[name] == "lb"):
                log.warning("api unknown message id=%d", msg_id)
                continue
            req = self.codec.unpack_request(name, data)
            if name in self.faults.die_on:
                return
            if name in self.faults.hang:
                continue
            delay = self.faults.delay_s(name)
            if delay:
                time.sleep(delay)
            if name == "sockclnt_delete":
                self._send(conn, "sockclnt_delete_reply", {"context": req.context, "response": 0})
                return
            replies = self.handler(name, req)
            for reply_name, fields in replies or ():
                if isinstance(fields, bytes):
                    self._send_packed(conn, reply_name, fields, req.context)
                else:
                    self._send(conn, reply_name, {"context": req.context, **fields})

    def _handshake(self, conn: socket.socket, data: bytes) -> None:
        req, _ = self.codec.messages["sockclnt_create"].unpack(data)
        if self.faults.handshake_hang:
            return
        table = []
        for name, index in self.ids.items():
            if not self.faults.lb_plugin and self.codec.module_of[name] == "lb":
                continue
            if name in self.faults.absent:
                continue
            wrong = name in self.faults.bad_crc
            table.append({"index": index, "name": self.codec.crc_name(name, wrong=wrong)})
        with self._lock:
            client = self._next_client
            self._next_client += 1
        fields = {
            "_vl_msg_id": SOCKCLNT_CREATE_REPLY_ID,
            "client_index": 0,
            "context": req.context,
            "response": 0,
            "index": client | 1 << 31,
            "count": len(table),
            "message_table": table,
        }
        data = self.codec.messages["sockclnt_create_reply"].pack(fields)
        conn.sendall(MSGBUF.pack(0, len(data), 0) + data)
