"""VppSource: one scrape of VPP's lb plugin over the binary API and the stats segment.

With `vpp/papi.py` and `vpp/stats.py` the only modules importing vpp_papi.
Everything it returns is a `RawScrape` of plain ints, strings and tuples;
everything it raises is a `SourceError` (`raise ... from exc`), per docs/vpp.md:

* API (`VPPApiClient`, one per VppSource): `cli_inband("show lb vips verbose")`
  for the VIPs (the only source of the pool index), `cli_inband("show lb")` for
  the settings and to tell an empty VIP list from a broken reply,
  `show_version` once per connection, `ip_route_lookup(exact=1)` per VIP
  prefix, pipelined (`ApiClient.call_many`) and cached per VPP instance
  (`RouteCache`: new prefixes, and each one again once per `route_refresh_s`,
  spread out; a reconnect to the same VPP keeps them). A lookup that gets no
  answer in time leaves that prefix's route counters unknown until the next
  scrape asks again; it does not drop the connection.
  Every call carries `_timeout`; on any OSError the client is disconnected and
  reconnected on the next read (a stale connection is retried once at once,
  which is what a VPP restart looks like).
* Stats (`BulkStats`, vpp/stats.py): the busy-spins of vpp_papi are replaced
  by a bounded wait on `in_progress`; ONE bulk `dump(names)` per scrape under
  one optimistic lock, with a few retries; the directory is refreshed only
  when the epoch moved. The segment is re-mapped when
  `os.stat(stats_socket)` changes `(st_ino, st_ctime_ns)` (VPP re-bound it:
  the old mapping is frozen forever) or after any failed read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import warnings
from array import array
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from vpp_papi.vpp_papi import VPPApiError, VPPIOError, VPPRuntimeError, VPPValueError

from agentx_lb.errors import SourceDataError, SourceError, SourceUnavailableError
from agentx_lb.model import LB_COUNTER_NAMES, CombinedRow, RawScrape, Vip
from agentx_lb.vpp.cli_parse import VipParser, parse_lb_settings, parse_lb_vip_count
from agentx_lb.vpp.papi import (
    ROUTE_LOOKUP_CRC,
    ROUTE_LOOKUP_REPLY_CRC,
    ApiClient,
    RouteLookup,
    decode_route_lookup_reply,
    encode_route_lookup,
    route_prefix,
)
from agentx_lb.vpp.routes import RouteCache
from agentx_lb.vpp.stats import BulkStats, StatsChangingError, StatsLockedError

__all__ = ["DEFAULT_API_DIR", "ROUTE_TO", "VppSource"]

log = logging.getLogger(__name__)

DEFAULT_API_DIR = "/usr/share/vpp/api"
ROUTE_TO = "/net/route/to"
_BOOTTIME = "/sys/boottime"
_CLIENT_NAME = "agentx-lb"
_NO_SUCH_ENTRY = -6  # VNET_API_ERROR_NO_SUCH_ENTRY
# The .api.json modules that define what we call (plus the types they use).
_API_MODULES = frozenset(
    {"memclnt", "vlib", "vpe", "ip", "ip_types", "fib_types", "interface_types"}
)
# How many timeouts a scrape sits out for late route lookup replies in all.
_ROUTE_PATIENCE_TIMEOUTS = 3
# The modules VPP's get_api_json sends that the agent keeps: those defining these.
_BOOTSTRAP_MESSAGES = frozenset(
    {"sockclnt_create", "control_ping", "cli_inband", "show_version", "ip_route_lookup"}
)
_REQUIRED_MESSAGES = (
    "control_ping",
    "control_ping_reply",
    "cli_inband",
    "cli_inband_reply",
    "ip_route_lookup",
    "ip_route_lookup_reply",
)


def _socket_signature(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_ctime_ns)


def _unavailable_reason(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such socket (VPP not running?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (stale socket, VPP not running?)"
    if isinstance(exc, PermissionError):
        return "permission denied (is the agent's user in group vpp?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    if isinstance(exc, VPPIOError):
        return f"no reply within {timeout_s:g}s or connection lost ({exc})"
    return str(exc) or type(exc).__name__


def _from_vpp_papi(exc: BaseException) -> bool:
    """Whether `exc` was raised inside vpp_papi (decoding what VPP sent)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("vpp_papi"):
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def _mapped(kind: str, path: str, timeout_s: float) -> Iterator[None]:
    """Translate what vpp_papi and the socket layer raise into SourceErrors.

    Python's own exceptions count only when they come out of vpp_papi (an
    answer it cannot decode); raised by our code, they are bugs and propagate:
    the agent exits with a traceback and systemd restarts it.
    """
    try:
        yield
    except SourceError:
        raise
    except (StatsLockedError, StatsChangingError) as exc:
        raise SourceUnavailableError(f"{kind} socket {path}: {exc}") from exc
    except OSError as exc:
        if "overruns stats segment" in str(exc):
            raise SourceDataError(f"{kind} socket {path}: corrupt stats segment ({exc})") from exc
        reason = _unavailable_reason(exc, timeout_s)
        raise SourceUnavailableError(f"{kind} socket {path}: {reason}") from exc
    except (VPPApiError, VPPValueError, VPPRuntimeError) as exc:
        raise SourceDataError(f"{kind} socket {path}: unusable answer ({exc!r})") from exc
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, struct.error) as exc:
        if not _from_vpp_papi(exc):
            raise
        raise SourceDataError(f"{kind} socket {path}: unusable answer ({exc!r})") from exc


class VppSource:
    """Reads VPP's lb VIPs, routes and counters; `.read()` raises only SourceErrors."""

    def __init__(
        self,
        stats_socket: str,
        api_socket: str,
        api_dir: str | None = None,
        *,
        timeout_s: float = 1.0,
        route_refresh_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats_socket = stats_socket
        self.api_socket = api_socket
        self.api_dir = api_dir
        self.timeout_s = timeout_s
        self._clock = clock
        self._client: Any = None  # VPPApiClient, created at the first read
        self._bootstrap = api_dir is None
        self._api_connected = False
        self._api_generation = 0  # connections made so far
        self._vpp_version = ""
        self._stats: BulkStats | None = None
        self._stats_signature: tuple[int, int] | None = None
        self._vip_parser = VipParser()  # reuses the VIP blocks that did not change
        self._route_vips: tuple[Vip, ...] = ()  # the VIPs _route_prefixes was made from
        self._route_prefixes: frozenset[str] = frozenset()
        self._routes = RouteCache(route_refresh_s)
        self.route_lookups = 0  # ip_route_lookup requests sent (observability, tests)
        self.route_late = 0  # of which no answer came in time
        self.stats_connects = 0

    # ------------------------------------------------------------ public ---
    @property
    def route_refresh_s(self) -> float:
        return self._routes.refresh_s

    @route_refresh_s.setter
    def route_refresh_s(self, seconds: float) -> None:
        self._routes.refresh_s = seconds

    @property
    def connected(self) -> bool:
        return self._api_connected and self._stats is not None

    def read(self) -> RawScrape:
        """One scrape. Raises SourceUnavailableError / SourceDataError only."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        text, show_lb = self._api_read(self._read_cli)
        t_stats = time.perf_counter()
        timings["cli"] = (t_stats - t0) * 1000
        # The counters right after the text, before parsing it: a VIP VPP
        # replaced between the two reads would show the new VIP's zeroed
        # counters under the old one's identity (a false reset), and at 50,000
        # VIPs the parse takes a second. Also before the route lookups: the
        # FIB stats indexes belong to the VPP instance the stats segment names.
        lb_counters, route_to, instance = self._read_stats()
        t_parse = time.perf_counter()
        timings["stats"] = (t_parse - t_stats) * 1000
        parsed = self._vip_parser.parse(text)
        # (Asked only when nothing parsed: strip() copies megabytes of text.)
        if not parsed.vips and not parsed.problems and not text.strip():
            expected = parse_lb_vip_count(show_lb)
            if expected:
                raise SourceDataError(
                    f"api socket {self.api_socket}: `show lb vips verbose` is empty"
                    f" but `show lb` counts {expected} VIP(s)"
                )
        settings = parse_lb_settings(show_lb)
        t2 = time.perf_counter()
        timings["parse"] = (t2 - t_parse) * 1000
        stats_index = self._resolve_routes(parsed.vips, instance)
        timings["route_lookup"] = (time.perf_counter() - t2) * 1000
        for problem in parsed.problems:
            log.debug("cli line skipped line_no=%d reason=%s", problem.line_no, problem.reason)
        return RawScrape(
            vips=parsed.vips,
            problems=parsed.problems,
            lb_counters=lb_counters,
            route_to=route_to,
            stats_index=stats_index,
            vpp_instance=instance,
            vpp_version=self._vpp_version,
            flows=parsed.flows,
            settings=settings,
            timings_ms=timings,
        )

    def close(self) -> None:
        """Disconnect both sockets; the source can be read again afterwards."""
        self._disconnect_api()
        self._disconnect_stats()

    # --------------------------------------------------------------- API ---
    def _new_client(self, *, bootstrap: bool) -> Any:
        kwargs: dict[str, Any] = {
            "server_address": self.api_socket,
            "read_timeout": self.timeout_s,
            "logger": logging.getLogger("vpp_papi.agentx_lb"),
        }
        if bootstrap:
            kwargs["bootstrapapi"] = True
            kwargs["wanted"] = _BOOTSTRAP_MESSAGES
        else:
            kwargs["apifiles"] = self._api_files(self.api_dir or DEFAULT_API_DIR)
        with _mapped("api", self.api_socket, self.timeout_s), warnings.catch_warnings():
            # vpp_papi 2.4.2 bootstraps with the deprecated importlib.resources.open_text.
            warnings.simplefilter("ignore", DeprecationWarning)
            return ApiClient(**kwargs)

    def _api_files(self, api_dir: str) -> list[str]:
        found: dict[str, str] = {}
        for path in sorted(Path(api_dir).rglob("*.api.json")):
            module = path.name[: -len(".api.json")]
            if module in _API_MODULES:
                found.setdefault(module, str(path))
        missing = {"memclnt", "vlib", "ip"} - found.keys()
        if missing:
            raise SourceDataError(
                f"api dir {api_dir}: no {', '.join(sorted(m + '.api.json' for m in missing))}"
            )
        return list(found.values())

    def _connect_api(self) -> None:
        if self._client is None:
            self._client = self._new_client(bootstrap=self._bootstrap)
        try:
            with _mapped("api", self.api_socket, self.timeout_s):
                try:
                    self._client.connect(_CLIENT_NAME)
                except (AttributeError, VPPApiError) as exc:
                    if not self._bootstrap:
                        raise
                    # VPP < 24.06 has no get_api_json: use the installed .api.json.
                    log.info("api bootstrap unsupported api_dir=%s err=%s", DEFAULT_API_DIR, exc)
                    self._safe_disconnect()
                    self._bootstrap = False
                    self._client = self._new_client(bootstrap=False)
                    self._client.connect(_CLIENT_NAME)
        except SourceError:
            # A half-done handshake must be undone, or the next connect() fails
            # with "Need to disconnect first".
            self._safe_disconnect()
            raise
        self._api_connected = True
        self._api_generation += 1
        try:
            self._validate_messages()
            self._client.tune_cli_reply()
            self._vpp_version = self._read_version()
        except BaseException:
            self._disconnect_api()
            raise

    def _validate_messages(self) -> None:
        client = self._client
        wanted: list[str] = []
        absent: list[str] = []
        for name in _REQUIRED_MESSAGES:
            msg = client.messages.get(name)
            if msg is None:
                absent.append(name)
            else:
                wanted.append(f"{name}_{msg.crc[2:]}")
        absent += client.validate_message_table(wanted)
        if absent:
            raise SourceDataError(
                f"api socket {self.api_socket}: VPP lacks or has other CRCs for"
                f" {', '.join(absent)} (api definitions do not match this VPP)"
            )

    def _read_version(self) -> str:
        api = self._client.api
        with _mapped("api", self.api_socket, self.timeout_s):
            if hasattr(api, "show_version"):
                reply = api.show_version(_timeout=self.timeout_s)
                if reply.retval == 0:
                    return str(reply.version).rstrip("\x00")
            # `vpp v25.10-release built by ...`
            reply = api.cli_inband(cmd="show version", _timeout=self.timeout_s)
        words = str(reply.reply).split()
        if reply.retval == 0 and len(words) > 1 and words[0] == "vpp":
            return words[1].removeprefix("v")
        return ""

    def _safe_disconnect(self) -> None:
        if self._client is None:
            return
        # disconnect() swallows its own sockclnt_delete errors; a closed socket
        # or a half-done handshake may still raise OSError here.
        try:
            self._client.disconnect()
        except OSError as exc:
            log.debug("api disconnect failed socket=%s err=%s", self.api_socket, exc)

    def _disconnect_api(self) -> None:
        if self._api_connected or self._client is not None:
            self._safe_disconnect()
        self._api_connected = False

    def _api_read(self, fn: Callable[[], Any]) -> Any:
        """Run API calls; on a stale connection (VPP restarted) reconnect and retry once."""
        fresh = False
        if not self._api_connected:
            self._connect_api()
            fresh = True
        try:
            with _mapped("api", self.api_socket, self.timeout_s):
                return fn()
        except SourceUnavailableError:
            self._disconnect_api()
            if fresh:
                raise
            log.info("api connection lost, reconnecting socket=%s", self.api_socket)
        self._connect_api()
        try:
            with _mapped("api", self.api_socket, self.timeout_s):
                return fn()
        except SourceUnavailableError:
            self._disconnect_api()
            raise

    def _cli(self, cmd: str) -> str:
        reply = self._client.api.cli_inband(cmd=cmd, _timeout=self.timeout_s)
        text = str(reply.reply)
        if reply.retval != 0:
            first = text.strip().splitlines()[0] if text.strip() else ""
            if cmd.startswith("show lb"):
                raise SourceDataError(
                    f"api socket {self.api_socket}: `{cmd}` failed (retval {reply.retval}):"
                    f" lb plugin not loaded? {first}".rstrip()
                )
            raise SourceDataError(
                f"api socket {self.api_socket}: `{cmd}` failed (retval {reply.retval}) {first}"
            )
        return text

    def _read_cli(self) -> tuple[str, str]:
        text = self._cli("show lb vips verbose")
        show_lb = self._cli("show lb")
        if not show_lb.strip():
            # With the plugin loaded `show lb` always prints `lb_main ...`.
            raise SourceDataError(f"api socket {self.api_socket}: `show lb` returned nothing")
        return text, show_lb

    def _resolve_routes(self, vips: tuple[Vip, ...], instance: str) -> dict[str, int | None]:
        routes = self._routes
        routes.use_instance(instance)
        now = self._clock()
        if vips != self._route_vips:  # the parser's same Vip objects: one identity check each
            self._route_vips = vips
            self._route_prefixes = frozenset(v.prefix for v in vips if not v.removed)
        due = routes.due(self._route_prefixes, now)
        if not due:
            return routes.view()
        fast = self._route_layout_known()
        keys = [route_prefix(prefix) for prefix in due]
        requests = [
            {"table_id": 0, "exact": 1, "prefix": key if fast else prefix}
            for prefix, key in zip(due, keys, strict=True)
        ]
        replies, sent = self._api_read(
            lambda: self._client.call_many(
                "ip_route_lookup",
                requests,
                self.timeout_s,
                # VPP answers in order: a stall delays every reply behind it.
                patience_s=_ROUTE_PATIENCE_TIMEOUTS * self.timeout_s,
                encode=encode_route_lookup if fast else None,
                decode=decode_route_lookup_reply if fast else None,
            )
        )
        self.route_lookups += sent
        answers: dict[str, int | None] = {}
        for prefix, key, reply in zip(due, keys, replies, strict=True):
            if reply is not None:
                answers[prefix] = self._stats_index(prefix, key, reply)
        routes.resolved(answers, now)
        late = len(due) - len(answers)
        if late:
            self.route_late += late
            log.info("route lookups late, asked again next scrape count=%d", late)
        return routes.view()

    def _route_layout_known(self) -> bool:
        """Whether VPP's ip_route_lookup messages have the layout our struct codec
        was written for (their CRCs say so); else vpp_papi packs and decodes."""
        messages = self._client.messages
        return bool(
            messages["ip_route_lookup"].crc == ROUTE_LOOKUP_CRC
            and messages["ip_route_lookup_reply"].crc == ROUTE_LOOKUP_REPLY_CRC
        )

    @staticmethod
    def _stats_index(prefix: str, key: tuple[int, bytes, int], reply: Any) -> int | None:
        """The `/net/route/to` index in an `ip_route_lookup_reply`, or None."""
        if not isinstance(reply, RouteLookup):  # decoded by vpp_papi (raw fields)
            raw = reply.route.prefix
            reply = RouteLookup(
                reply.context, reply.retval, reply.route.stats_index, int(raw.address.af),
                bytes(raw.address.un.ip6), raw.len,
            )  # fmt: skip
        if reply.retval == _NO_SUCH_ENTRY:
            return None
        if reply.retval != 0:
            log.warning("route lookup failed prefix=%s retval=%d", prefix, reply.retval)
            return None
        af, address, length = key
        size = 4 if af == 0 else 16
        if reply.af != af or reply.prefix_len != length or reply.address[:size] != address[:size]:
            # exact=1 should never do this; an LPM answer would count other traffic.
            log.warning(
                "route lookup returned another prefix prefix=%s got_af=%d got_len=%d",
                prefix,
                reply.af,
                reply.prefix_len,
            )
            return None
        return int(reply.stats_index)

    # ------------------------------------------------------------- stats ---
    def _disconnect_stats(self) -> None:
        if self._stats is not None:
            self._stats.close()
        self._stats = None
        self._stats_signature = None

    def _connect_stats(self) -> BulkStats:
        for _ in range(2):
            before = _socket_signature(self.stats_socket)
            stats = BulkStats(self.stats_socket, self.timeout_s)
            try:
                stats.connect()
            except BaseException:
                stats.close()
                raise
            self.stats_connects += 1
            if _socket_signature(self.stats_socket) == before:
                self._stats, self._stats_signature = stats, before
                return stats
            stats.close()  # VPP re-bound the socket while we connected: again
        raise SourceUnavailableError(f"stats socket {self.stats_socket}: socket keeps changing")

    def _read_stats(self) -> tuple[dict[str, list[array[int]]], list[CombinedRow], str]:
        try:
            with _mapped("stats", self.stats_socket, self.timeout_s):
                return self._read_stats_once()
        except SourceError:
            self._disconnect_stats()
            raise

    def _read_stats_once(
        self,
    ) -> tuple[dict[str, list[array[int]]], list[CombinedRow], str]:
        signature = _socket_signature(self.stats_socket)
        if self._stats is not None and signature != self._stats_signature:
            log.info("stats socket changed, remapping socket=%s", self.stats_socket)
            self._disconnect_stats()
        stats = self._stats
        if stats is None:
            stats = self._connect_stats()
        values = self._dump(stats)
        lb = {name: _simple(name, values[name]) for name in LB_COUNTER_NAMES if name in values}
        route = _combined(values[ROUTE_TO]) if ROUTE_TO in values else []
        boottime = values.get(_BOOTTIME)
        # The VPP process, not the socket file: a chmod/chown of stats.sock
        # changes its ctime, and taking that for a new VPP would add every
        # counter's last value on top of itself.
        if isinstance(boottime, (int, float)) and boottime:
            instance = f"boot={int(boottime)}"
        elif self._stats_signature is not None:
            instance = f"{self._stats_signature[0]}:{self._stats_signature[1]}"
        else:
            instance = "?"
        return lb, route, instance

    def _dump(self, stats: BulkStats) -> Mapping[str, Any]:
        # ONE bulk dump per scrape; absent names (no VIP yet) are left out.
        return stats.dump((*LB_COUNTER_NAMES, ROUTE_TO, _BOOTTIME), missing_ok=True)


def _simple(name: str, value: Any) -> list[array[int]]:
    if not isinstance(value, list) or not all(isinstance(row, array) for row in value):
        raise SourceDataError(f"stats entry {name!r} is not a simple counter vector")
    return value  # already plain: BulkStats copied each row out of the segment


def _combined(value: Any) -> list[CombinedRow]:
    if not isinstance(value, list) or not all(isinstance(row, CombinedRow) for row in value):
        raise SourceDataError(f"stats entry {ROUTE_TO!r} is not a combined counter vector")
    return value
