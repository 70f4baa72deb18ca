"""Native Prometheus metrics (`metrics_listen`): the served snapshot as /metrics.

Everything is built from the snapshot the agent already publishes, when, and
only when, /metrics is requested: no VPP call, no second scrape, no work per
tick. The snapshot is read through a callable (`lambda: pipeline.snapshot`,
one attribute read; the pipeline replaces it whole), so a request sees one
scrape's rows.

* `HealthCollector` and `TableCollector` are prometheus_client collectors
  (`LbCollector` is both): the health scalars and LB settings, and the VIP
  and backend families.
* `encode_table()` writes TableCollector's samples as text directly, at a
  fraction of what prometheus_client's `generate_latest()` costs for a large
  table (figures: bench/bench_metrics.py, bench/results). A test holds the two
  outputs equal.
* `MetricsApp` (WSGI) answers /metrics with the health, process, platform and
  GC families from a registry of our own, plus the table text (encoded once
  per snapshot); gzip at level 1 when the client accepts it.
* `MetricsServer` binds at construction (so the CLI can refuse a bad address
  before anything starts) and serves from a daemon thread; the AgentX side
  never waits on it.

The rules are the agent's: counters are the reduced Counter64 values (resets
inside VPP already absorbed), a withdrawn table has no VIP or backend sample at
all (the health gauges say why), and an unknown route counter has no sample
(never 0).
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from agentx_lb.config import parse_listen
from agentx_lb.errors import AgentxLbError
from agentx_lb.model import PORT_ANY, PROTOCOL_ANY, Backend, Snapshot, Vip, VipRow

__all__ = [
    "HealthCollector",
    "LbCollector",
    "MetricsApp",
    "MetricsListenError",
    "MetricsServer",
    "TableCollector",
    "build_registry",
    "encode_table",
    "vip_labels",
]

log = logging.getLogger(__name__)

PREFIX = "agentx_lb"
VIP_LABELS = ("name", "prefix", "protocol", "port", "encap")
BACKEND_LABELS = ("name", "backend")

_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp", PROTOCOL_ANY: "any"}

# (metric, VipCounters field, help): the Counter64 columns of vppLbVipTable.
_VIP_COUNTERS = (
    (
        "vip_next_packets",
        "next_packets",
        "Packets of existing sessions"
        " (VPP lb 'packet from existing sessions'; vppLbVipNextPackets).",
    ),
    (
        "vip_first_packets",
        "first_packets",
        "First packets of new sessions (VPP lb 'first session packet'; vppLbVipFirstPackets).",
    ),
    (
        "vip_untracked_packets",
        "untracked_packets",
        "Untracked packets (VPP lb 'untracked packet'; vppLbVipUntrackedPackets).",
    ),
    (
        "vip_no_server_packets",
        "no_server_packets",
        "Packets dropped: no backend (VPP lb 'no server configured'; vppLbVipNoServerPackets).",
    ),
    (
        "vip_route_packets",
        "route_packets",
        "Packets to the VIP prefix's FIB entry (/net/route/to; shared by VIPs on one prefix).",
    ),
    (
        "vip_route_bytes",
        "route_octets",
        "Bytes to the VIP prefix's FIB entry (/net/route/to; shared by VIPs on one prefix).",
    ),
)


class MetricsListenError(AgentxLbError):
    """The /metrics server cannot listen where it was told to; ``str()`` is one line."""


def vip_labels(vip: Vip) -> dict[str, str]:
    """The labels of every VIP series: name, prefix, protocol, port, encap."""
    return {
        "name": vip.name,
        "prefix": vip.prefix,
        "protocol": _PROTOCOL_NAMES.get(vip.protocol, str(vip.protocol)),
        "port": "any" if vip.port == PORT_ANY else str(vip.port),
        "encap": vip.encap.name.lower(),
    }


def _add(family: Metric, name: str, labels: dict[str, str], value: float) -> None:
    # add_metric() builds a label dict per sample; one dict is shared by all
    # samples of a VIP (or backend).
    family.samples.append(Sample(name, labels, value))


# The VIP and backend families: (metric name, type, help). The collector and
# the fast encoder both build from these, so they cannot drift apart.
_VIP_GAUGES = (
    ("vip_backends", "Backends listed, removed ones included (vppLbVipBackendCount)."),
    ("vip_active_backends", "Backends flagged used (vppLbVipActiveBackendCount)."),
    ("vip_up", "1: the VIP has an active backend; 0: noActiveBackends (vppLbVipOperStatus)."),
    ("vip_flow_table_buckets", "Buckets of the VIP's new-flow table (vppLbVipFlowTableLength)."),
)
_VIP_INFO = ("vip", "The VIP's SNMP row (vppLbVipIndex) and src-ip-sticky flag.")
_BACKEND_GAUGES = (
    ("backend_used", "1: used; 0: removed, still draining its flows (vppLbBackendState)."),
    ("backend_weight", "Backend weight, where the VPP release prints it (vppLbBackendWeight)."),
    ("backend_buckets", "The backend's buckets of its VIP's new-flow table (vppLbBackendBuckets)."),
    ("backend_flows", "Current sticky-table entries (vppLbBackendFlows)."),
)


def _vip_values(row: VipRow) -> tuple[int, int, int, int]:
    """The four VIP gauges, in _VIP_GAUGES order."""
    vip = row.vip
    n_active = sum(1 for b in vip.backends if b.used)
    return (len(vip.backends), n_active, 1 if n_active else 0, vip.flow_table_length)


def _backend_values(backend: Backend) -> tuple[int | None, ...]:
    """The four backend gauges, in _BACKEND_GAUGES order (None: no sample)."""
    return (1 if backend.used else 0, backend.weight, backend.buckets, backend.flows)


def _info_labels(vip: Vip, labels: dict[str, str]) -> dict[str, str]:
    return {
        **labels,
        "index": str(vip.index),
        "src_ip_sticky": "true" if vip.src_ip_sticky else "false",
    }


class HealthCollector:
    """The agent's health scalars and the LB settings, from `snapshot()` per collect()."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        # Registering must not call collect(): the snapshot may not exist yet.
        return []

    def collect(self) -> Iterator[Metric]:
        return self.families(self._snapshot())

    @staticmethod
    def families(snap: Snapshot) -> Iterator[Metric]:
        h = snap.health
        yield GaugeMetricFamily(
            f"{PREFIX}_vpp_connected",
            "1 when the last scrape of VPP succeeded (vppLbAgentVppConnected).",
            value=1 if h.vpp_connected else 0,
        )
        if h.vpp_version:
            yield InfoMetricFamily(
                f"{PREFIX}_vpp",
                "The VPP release read (vppLbAgentVppVersion).",
                value={"version": h.vpp_version},
            )
        yield GaugeMetricFamily(
            f"{PREFIX}_vips",
            "VIPs served; 0 also while the table is withdrawn (vppLbAgentVipCount).",
            value=h.vip_count,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_table_age_seconds",
            "Age of the served table when it was published (vppLbAgentTableAge).",
            value=h.table_age_s,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_last_scrape_duration_seconds",
            "Duration of the last scrape of VPP (vppLbAgentLastScrapeDuration).",
            value=h.last_scrape_duration_ms / 1000,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_scrape_failures",
            "Failed scrapes of VPP since the agent started (vppLbAgentScrapeFailures).",
            value=h.scrape_failures,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_consecutive_scrape_failures",
            "Failed scrapes since the last good one (vppLbAgentConsecutiveFailures).",
            value=h.consecutive_failures,
        )
        if h.last_error:
            yield InfoMetricFamily(
                f"{PREFIX}_last_error",
                "Why the last failed scrape failed (vppLbAgentLastError).",
                value={"error": h.last_error},
            )
        s = snap.settings
        if s is None:
            return
        if s.flow_timeout_s is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_conf_flow_timeout_seconds",
                "LB flow timeout (show lb; vppLbConfFlowTimeout).",
                value=s.flow_timeout_s,
            )
        if s.sticky_buckets_per_core is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_conf_sticky_buckets_per_core",
                "LB sticky buckets per core (show lb; vppLbConfStickyBucketsPerCore).",
                value=s.sticky_buckets_per_core,
            )
        sources = {
            k: v
            for k, v in (
                ("ip4_src_address", s.ip4_src_address),
                ("ip6_src_address", s.ip6_src_address),
            )
            if v is not None
        }
        if sources:
            yield InfoMetricFamily(
                f"{PREFIX}_conf", "LB encap source addresses (show lb).", value=sources
            )


class TableCollector:
    """The VIP and backend families, from `snapshot()` per collect().

    The reference: `encode_table()` writes the same samples as text much
    faster, and a test holds the two equal.
    """

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return self.families(self._snapshot())

    @staticmethod
    def families(snap: Snapshot) -> Iterator[Metric]:
        counters = [
            (CounterMetricFamily(f"{PREFIX}_{metric}", help_, labels=VIP_LABELS), field)
            for metric, field, help_ in _VIP_COUNTERS
        ]
        gauges = [GaugeMetricFamily(f"{PREFIX}_{m}", h, labels=VIP_LABELS) for m, h in _VIP_GAUGES]
        info = InfoMetricFamily(
            f"{PREFIX}_{_VIP_INFO[0]}", _VIP_INFO[1], labels=(*VIP_LABELS, "index", "src_ip_sticky")
        )
        backend = [
            GaugeMetricFamily(f"{PREFIX}_{m}", h, labels=BACKEND_LABELS) for m, h in _BACKEND_GAUGES
        ]
        for row in snap.rows:
            vip = row.vip
            labels = vip_labels(vip)
            for family, field in counters:
                value = getattr(row.counters, field)
                if value is not None:  # unknown route counters: no sample, never 0
                    _add(family, family.name + "_total", labels, value)
            for gauge, value in zip(gauges, _vip_values(row), strict=True):
                _add(gauge, gauge.name, labels, value)
            _add(info, info.name + "_info", _info_labels(vip, labels), 1)
            for b in vip.backends:
                b_labels = {"name": vip.name, "backend": b.address}
                for b_gauge, b_value in zip(backend, _backend_values(b), strict=True):
                    if b_value is not None:
                        _add(b_gauge, b_gauge.name, b_labels, b_value)
        yield from (family for family, _ in counters)
        yield from gauges
        yield info
        yield from backend


class LbCollector:
    """Everything agentx-lb knows, as prometheus_client families (health + table),
    from one read of `snapshot()` per collect()."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from HealthCollector.families(snap)
        yield from TableCollector.families(snap)


# ---------------------------------------------------------------- the fast encoder


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _label_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def encode_table(snap: Snapshot) -> str:
    """The VIP and backend families in Prometheus' text format (0.0.4).

    The same samples as `TableCollector` through `generate_latest()`, at a
    fraction of the cost (10,000 VIPs x 8 backends are ~350,000 samples):
    each VIP's and backend's label text is built once and shared by its
    lines, and values are written as integers.
    """
    # family name -> lines, in the collector's family order
    counter_lines: list[list[str]] = [[] for _ in _VIP_COUNTERS]
    gauge_lines: list[list[str]] = [[] for _ in _VIP_GAUGES]
    info_lines: list[str] = []
    backend_lines: list[list[str]] = [[] for _ in _BACKEND_GAUGES]
    counter_names = [f"{PREFIX}_{m}_total " for m, _, _ in _VIP_COUNTERS]
    fields = [f for _, f, _ in _VIP_COUNTERS]
    gauge_names = [f"{PREFIX}_{m}" for m, _ in _VIP_GAUGES]
    backend_names = [f"{PREFIX}_{m}" for m, _ in _BACKEND_GAUGES]
    info_name = f"{PREFIX}_{_VIP_INFO[0]}_info"
    for row in snap.rows:
        vip = row.vip
        labels = vip_labels(vip)
        text = _label_text(labels)
        for lines, name, field in zip(counter_lines, counter_names, fields, strict=True):
            value = getattr(row.counters, field)
            if value is not None:
                lines.append(f"{name[:-1]}{text} {value}\n")
        for lines, name, value in zip(gauge_lines, gauge_names, _vip_values(row), strict=True):
            lines.append(f"{name}{text} {value}\n")
        info_lines.append(f"{info_name}{_label_text(_info_labels(vip, labels))} 1\n")
        name_text = f'name="{_escape(vip.name)}"'
        for b in vip.backends:
            b_text = f'{{backend="{_escape(b.address)}",{name_text}}}'
            for lines, name, b_value in zip(
                backend_lines, backend_names, _backend_values(b), strict=True
            ):
                if b_value is not None:
                    lines.append(f"{name}{b_text} {b_value}\n")
    out: list[str] = []

    def family(name: str, kind: str, help_: str, lines: list[str]) -> None:
        out.append(f"# HELP {name} {help_}\n# TYPE {name} {kind}\n")
        out.extend(lines)

    for (m, _, help_), lines in zip(_VIP_COUNTERS, counter_lines, strict=True):
        family(f"{PREFIX}_{m}_total", "counter", help_, lines)
    for (m, help_), lines in zip(_VIP_GAUGES, gauge_lines, strict=True):
        family(f"{PREFIX}_{m}", "gauge", help_, lines)
    family(info_name, "gauge", _VIP_INFO[1], info_lines)
    for (m, help_), lines in zip(_BACKEND_GAUGES, backend_lines, strict=True):
        family(f"{PREFIX}_{m}", "gauge", help_, lines)
    return "".join(out)


def build_registry(snapshot: Callable[[], Snapshot] | None) -> CollectorRegistry:
    """A registry of our own: `LbCollector` (unless `snapshot` is None) and the
    standard process, platform and GC metrics."""
    registry = CollectorRegistry(auto_describe=False)
    if snapshot is not None:
        registry.register(LbCollector(snapshot))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsApp:
    """The WSGI app of /metrics: the table text (encoded once per snapshot) plus
    the small families from prometheus_client; gzip when the client accepts it."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot
        self._process = build_registry(None)
        # (snapshot, its table text): two Prometheus servers scraping one
        # snapshot cost one encoding. Replaced whole, so no lock is needed.
        self._cache: tuple[Snapshot | None, bytes] = (None, b"")

    def body(self) -> bytes:
        snap = self._snapshot()  # once: health and table from the same scrape
        cached, text = self._cache
        if cached is not snap:
            text = encode_table(snap).encode()
            self._cache = (snap, text)
        health = CollectorRegistry(auto_describe=False)
        health.register(HealthCollector(lambda: snap))
        return generate_latest(health) + generate_latest(self._process) + text

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if environ.get("PATH_INFO", "/") not in ("/metrics", "/metrics/"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"agentx-lb: the metrics are at /metrics\n"]
        output = self.body()
        headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            # Level 1: a 34 MB body (10,000 VIPs x 8 backends) compresses ~20x
            # in a fraction of the time level 9 takes.
            output = zlib_gzip(output)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(output))))
        start_response("200 OK", headers)
        return [output if environ["REQUEST_METHOD"] == "GET" else b""]


def zlib_gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1)


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request; request threads never hold the process open."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log: Prometheus scrapes every 15 s."""


class MetricsServer:
    """/metrics on `listen` (HOST:PORT): bound at construction, served by `start()`.

    Binding first lets the CLI refuse a bad address before anything else runs;
    `start()` serves from a daemon thread; `close()` stops it.
    """

    def __init__(self, listen: str) -> None:
        host, port = parse_listen(listen)
        try:
            family, address = _family(host, port)
            server_class = type("_BoundServer", (_Server,), {"address_family": family})
            self._server: WSGIServer = make_server(
                address,
                port,
                _not_ready,
                server_class=server_class,
                handler_class=_QuietHandler,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise MetricsListenError(f"cannot listen on {listen}: {reason}") from exc
        self.address: tuple[str, int] = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    def start(self, snapshot: Callable[[], Snapshot]) -> None:
        """Serve the metrics of `snapshot()` (called once per request)."""
        self._server.set_app(MetricsApp(snapshot))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()
        log.info("metrics listening address=%s port=%d", self.address[0], self.address[1])

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(1.0)
        self._server.server_close()


def _not_ready(_environ: object, start_response: Callable[..., object]) -> list[bytes]:
    # Placeholder until start(): nothing is served before it (no serving thread).
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"not started\n"]


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and bind address of `host` ("" = every IPv4 address)."""
    if not host:
        return socket.AF_INET, ""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])
