"""vpp_papi's API client with what it gets wrong for a long-running agent fixed.

The only other vpp_papi importers are `source.py` and `stats.py`. vpp_papi 2.4
is used as published; `ApiClient` (a `VPPApiClient`) changes three things, each
of which mattered at 10,000 VIPs, where one `show lb vips verbose` reply is
several MB:

* replies go from vpp_papi's reader thread to the caller through a plain
  thread queue, not a `multiprocessing.Queue` (which pickles each message into
  a pipe and unpickles it, in the same process, with the GIL held);
* `has_context` does not build a namedtuple class per received message;
* `cli_inband_reply` gets a short repr and decodes its text with one copy;

and adds `call_many`: thousands of requests of one kind back to back on the
socket (vpp_papi makes one round trip per call, which at thousands of VIPs is
seconds of waiting), where a late answer costs only itself.
"""

from __future__ import annotations

import json
import queue
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from vpp_papi import VPPApiClient
from vpp_papi.vpp_papi import VPPApiError, VPPApiJSONFiles, VPPIOError, VPPValueError
from vpp_papi.vpp_serializer import String, VPPType
from vpp_papi.vpp_transport_socket import VppTransport

__all__ = [
    "ROUTE_LOOKUP_CRC",
    "ROUTE_LOOKUP_REPLY_CRC",
    "ApiClient",
    "RouteLookup",
    "decode_route_lookup_reply",
    "encode_route_lookup",
    "route_prefix",
]

_HEADER = struct.Struct(">HI")  # a reply's message id and context

# `ip_route_lookup_reply` as its CRC pins it (ip.api 3.x, VPP 20.05 to master):
# id, context, retval, then route{table_id, stats_index, prefix{af, 16 address
# bytes, len}, n_paths, paths[...]}. vpp_papi decodes every path with its
# 16-entry label stack, ~0.5 ms a reply: 5 s for 10,000 VIPs, for three fields.
ROUTE_LOOKUP_REPLY_CRC = "0x5d8febcb"
_ROUTE_LOOKUP_HEAD = struct.Struct(">HIiIIB16sB")
# `ip_route_lookup` 710d6471: id, client_index, context, table_id, exact,
# prefix{af, 16 address bytes, len}. vpp_papi's packer parses the prefix
# string with ipaddress each time: 0.9 s for 10,000 requests.
ROUTE_LOOKUP_CRC = "0x710d6471"
_ROUTE_LOOKUP = struct.Struct(">HIIIBB16sB")


RoutePrefix = tuple[int, bytes, int]  # (af: 0 IPv4 / 1 IPv6, 16 address bytes, length)


def route_prefix(text: str) -> RoutePrefix:
    """`"192.0.2.0/24"` as a `vl_api_prefix_t`'s fields, host bits cleared.

    inet_pton, not ipaddress: 10,000 of these per resolution."""
    address, _, length = text.partition("/")
    af, family = (1, socket.AF_INET6) if ":" in address else (0, socket.AF_INET)
    packed = socket.inet_pton(family, address)
    bits = 8 * len(packed)
    plen = int(length) if length else bits
    if not 0 <= plen <= bits:
        raise ValueError(f"bad prefix length in {text!r}")
    value = int.from_bytes(packed, "big") & (((1 << plen) - 1) << (bits - plen))
    return af, value.to_bytes(len(packed), "big").ljust(16, b"\0"), plen


def encode_route_lookup(
    msg_id: int, client_index: int, context: int, request: Mapping[str, Any]
) -> bytes:
    """An `ip_route_lookup` from `{"table_id", "exact", "prefix": RoutePrefix}`."""
    af, address, length = request["prefix"]
    return _ROUTE_LOOKUP.pack(
        msg_id, client_index, context, request["table_id"], request["exact"], af, address, length
    )


class RouteLookup(NamedTuple):
    """What the agent reads of an `ip_route_lookup_reply`."""

    context: int
    retval: int
    stats_index: int
    af: int  # 0 IPv4, 1 IPv6
    address: bytes  # 16 bytes; IPv4 in the first 4
    prefix_len: int


def decode_route_lookup_reply(msg: bytes) -> RouteLookup:
    """The fixed head of an `ip_route_lookup_reply` (struct.error if it is short)."""
    _id, context, retval, _table, stats_index, af, address, length = _ROUTE_LOOKUP_HEAD.unpack_from(
        msg
    )
    return RouteLookup(context, retval, stats_index, af, address, length)


class _ThreadQueue(queue.Queue):  # type: ignore[type-arg]
    """A `multiprocessing.Queue` stand-in for two threads of one process."""

    def close(self) -> None:
        """Nothing to close: no pipe, no feeder thread."""

    def join_thread(self) -> None:
        """Nothing to join: no feeder thread."""


class _Transport(VppTransport):  # type: ignore[misc]
    """vpp_papi's socket transport, handing received messages over by reference.

    vpp_papi's reader thread puts every message into `self.q`, a
    `multiprocessing.Queue`: a feeder thread pickles it into a pipe, and the
    caller reads it back and unpickles it. For a multi-MB `cli_inband` reply
    that is three more copies, made with the GIL held (tens of ms in which
    the AgentX loop cannot answer), and a multi-MB peak of memory, between two
    threads of one process. `connect()` assigns a new queue each time; every
    one assigned becomes a thread queue.
    """

    @property
    def q(self) -> _ThreadQueue:
        return self._thread_q

    @q.setter
    def q(self, _multiprocessing_queue: object) -> None:
        self._thread_q = _ThreadQueue()

    def write_many(self, messages: Sequence[bytes]) -> None:
        """Send packed messages with one `sendall` (vpp_papi's `write` makes two each)."""
        if not self.connected:
            raise VPPIOError(1, "Not connected")
        frames = []
        for msg in messages:
            frames.append(self.header.pack(0, len(msg), 0))
            frames.append(msg)
        self.socket.sendall(b"".join(frames))

    def receive(self, timeout: float) -> list[bytes]:
        """The messages with a context that are in, waiting up to `timeout` for
        the first ([] if none came); one wake-up for as many as arrived.

        Raises VPPIOError when the connection is gone (the reader thread queues
        None when it ends).
        """
        q = self._thread_q
        try:
            msgs = [q.get(True, timeout)]
        except queue.Empty:
            return []
        try:
            while True:
                msgs.append(q.get_nowait())
        except queue.Empty:
            pass
        if not all(msgs):
            raise VPPIOError(2, "VPP API client: connection lost")
        return msgs


class _OneCopyString(String):  # type: ignore[misc]
    """vpp_papi's variable-length string, decoded straight from the received buffer.

    vpp_papi copies the bytes out with `struct` and then decodes the copy: for
    a multi-MB `cli_inband` reply that is one more fresh buffer to fault in,
    with the GIL held, while the AgentX loop waits. Same result otherwise.
    """

    def unpack(
        self, data: bytes, offset: int = 0, result: object = None, ntc: bool = False
    ) -> tuple[str, int]:
        if self.fixed:
            return super().unpack(data, offset, result, ntc)  # type: ignore[no-any-return]
        length, length_size = self.length_field_packer.unpack(data, offset)
        if length == 0:
            return "", 0  # sic: vpp_papi's own size for an empty string
        start = offset + length_size
        if start + length > len(data):
            raise struct.error(
                f"string of {length} bytes past the end of a {len(data)}-byte message"
            )
        return str(
            memoryview(data)[start : start + length], "ascii", "replace"
        ), length_size + length


class ApiClient(VPPApiClient):  # type: ignore[misc]
    """`VPPApiClient` with the in-process message queue and `has_context` fixed.

    vpp_papi 2.4's `has_context` builds a new `VPPType` (a namedtuple class: a
    reference cycle of ~30 objects) for every message its reader thread
    receives. Only the cyclic GC frees those, and the agent keeps its
    long-lived objects out of the cyclic GC's reach (pipeline.py), so they
    would pile up. The header layout is fixed; it is built once here.
    """

    _header_with_context = VPPType(
        "header_with_context",
        [["u16", "msgid"], ["u32", "client_index"], ["u32", "context"]],
    )

    def __init__(self, *, wanted: frozenset[str] | None = None, **kwargs: Any) -> None:
        self._wanted = wanted
        super().__init__(**kwargs)
        self.transport = _Transport(
            self,
            read_timeout=kwargs.get("read_timeout", 5),
            server_address=kwargs["server_address"],
        )

    def get_api_definitions(self) -> None:
        """vpp_papi's bootstrap (`get_api_json`), keeping only the modules that
        define a message in `wanted` (each module embeds the types it uses):
        VPP sends all of its ~800 messages, and building vpp_papi's types and
        namedtuples for them all took a quarter of a second per connect."""
        if self._wanted is None:
            super().get_api_definitions()
            return
        self._register_functions(do_async=False)
        reply = self.api.get_api_json()
        if reply.retval != 0:
            raise VPPApiError("Failed to load API definitions from VPP")
        for module in json.loads(reply.json):
            if any(m[0] in self._wanted for m in module.get("messages", ())):
                messages, services = VPPApiJSONFiles._process_json(module)
                self.messages.update(messages)
                self.services.update(services)

    def has_context(self, msg: bytes) -> bool | None:
        if len(msg) < 10:
            return False
        (i, _ci, context), _size = self._header_with_context.unpack(msg, 0)
        if self.id_names[i] == "rx_thread_exit":
            return None
        return "context" in self.id_msgdef[i].field_by_name and context >= 0

    def call_many(
        self,
        name: str,
        requests: Sequence[Mapping[str, Any]],
        timeout_s: float,
        *,
        window: int = 512,
        patience_s: float | None = None,
        encode: Callable[[int, int, int, Mapping[str, Any]], bytes] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> tuple[list[Any], int]:
        """Replies to `requests` of message `name`, in order (None where none
        came), and how many requests were sent.

        At most `window` requests are unanswered at a time. A wait of
        `timeout_s` without a reply is a stall; VPP answers in order, so the
        replies behind a late one come after it: stalls are sat out until they
        add up to `patience_s` (default `timeout_s`), then the call returns
        what came so far. Replies arriving after that are dropped by later calls
        (vpp_papi hands replies it did not ask for to its event queue). Decoded
        by `decode` when given, else by vpp_papi without type conversion (plain
        ints and bytes, no ipaddress objects); packed by `encode(msg_id,
        client_index, context, request)` when given, else by vpp_papi.
        """
        msg = self.messages[name]
        msg_id = self.transport.get_msg_index(f"{name}_{msg.crc[2:]}")
        if not msg_id:
            raise VPPValueError(f"VPP does not know {name}_{msg.crc[2:]}")
        reply = self.messages[self.services[name]["reply"]]
        reply_id = self.transport.get_msg_index(f"{reply.name}_{reply.crc[2:]}")
        client_index = self.transport.socket_index
        replies: list[Any] = [None] * len(requests)
        waiting: dict[int, int] = {}  # context -> position in requests
        sent = 0
        stalled, patience = 0.0, timeout_s if patience_s is None else patience_s
        while True:
            if sent < len(requests) and len(waiting) <= window // 2:
                batch = []
                for i in range(sent, min(len(requests), sent + window - len(waiting))):
                    context = self.get_context()
                    waiting[context] = i
                    if encode is not None:
                        batch.append(encode(msg_id, client_index, context, requests[i]))
                        continue
                    fields = {
                        **requests[i],
                        "_vl_msg_id": msg_id,
                        "client_index": client_index,
                        "context": context,
                    }
                    batch.append(msg.pack(fields))
                self.transport.write_many(batch)
                sent += len(batch)
            if not waiting:
                return replies, sent
            received = self.transport.receive(timeout_s)
            if not received:
                stalled += timeout_s
                if stalled >= patience:
                    return replies, sent  # VPP is late: what came so far
                continue
            for raw in received:
                got_id, context = _HEADER.unpack_from(raw)
                if got_id != reply_id or context not in waiting:
                    continue  # a late reply to an earlier call: nobody waits for it
                position = waiting.pop(context)
                if decode is not None:
                    replies[position] = decode(raw)
                else:
                    replies[position] = self.decode_incoming_msg(raw, no_type_conversion=True)

    def tune_cli_reply(self) -> None:
        """Give `cli_inband_reply` a short repr and a one-copy `reply` decoder.

        Call after `connect()` (the message definitions may come from VPP).
        vpp_papi formats `"Return value: {!r}".format(reply)` after every call
        even with DEBUG off; for `show lb vips verbose` that is a repr of
        megabytes of text, one C call that holds the GIL for tens of ms and
        stalls the AgentX loop. The reply type is a namedtuple that vpp_papi
        matches by `__name__`, so a same-named subclass changes nothing else.
        """
        msg = self.messages.get("cli_inband_reply")
        if msg is None or getattr(msg.tuple, "_short_repr", False):
            return
        base = msg.tuple

        class _CliInbandReply(base):  # type: ignore[misc, valid-type]
            __slots__ = ()
            _short_repr = True

            def __repr__(self) -> str:
                return f"{base.__name__}(retval={self.retval}, reply=<{len(self.reply)} chars>)"

        _CliInbandReply.__name__ = _CliInbandReply.__qualname__ = base.__name__
        msg.tuple = _CliInbandReply
        for i, packer in enumerate(msg.packers):
            if type(packer) is String and not packer.fixed:
                msg.packers[i] = _OneCopyString(packer.name, 0, {"limit": packer.limit})
