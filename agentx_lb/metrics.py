"""Native Prometheus metrics (`metrics_listen`): the served snapshot as /metrics.

`LbCollector` turns the snapshot the agent already publishes into metric
families when, and only when, /metrics is scraped: no VPP call, no second
scrape and no work per tick. It reads its snapshot through a callable
(`lambda: pipeline.snapshot`, one attribute read; the pipeline replaces the
snapshot whole), so a scrape sees one scrape's rows.

The rules are the agent's: counters are the reduced Counter64 values (resets
inside VPP already absorbed), a withdrawn table has no VIP or backend sample at
all (the health gauges say why), and an unknown route counter has no sample
(never 0). `MetricsServer` serves a registry of our own (this collector plus
prometheus_client's process, platform and GC collectors) from a daemon thread;
the AgentX side never waits on it.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from agentx_lb.config import parse_listen
from agentx_lb.errors import AgentxLbError
from agentx_lb.model import PORT_ANY, PROTOCOL_ANY, Snapshot, Vip

__all__ = ["LbCollector", "MetricsListenError", "MetricsServer", "build_registry", "vip_labels"]

log = logging.getLogger(__name__)

PREFIX = "agentx_lb"
VIP_LABELS = ("name", "prefix", "protocol", "port", "encap")
BACKEND_LABELS = ("name", "backend")

_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp", PROTOCOL_ANY: "any"}

# (metric, VipCounters field, help): the Counter64 columns of vppLbVipTable.
_VIP_COUNTERS = (
    ("vip_next_packets", "next_packets",
     "Packets of existing sessions (VPP lb 'packet from existing sessions'; vppLbVipNextPackets)."),
    ("vip_first_packets", "first_packets",
     "First packets of new sessions (VPP lb 'first session packet'; vppLbVipFirstPackets)."),
    ("vip_untracked_packets", "untracked_packets",
     "Untracked packets (VPP lb 'untracked packet'; vppLbVipUntrackedPackets)."),
    ("vip_no_server_packets", "no_server_packets",
     "Packets dropped: no backend (VPP lb 'no server configured'; vppLbVipNoServerPackets)."),
    ("vip_route_packets", "route_packets",
     "Packets to the VIP prefix's FIB entry (/net/route/to; shared by VIPs on one prefix)."),
    ("vip_route_bytes", "route_octets",
     "Bytes to the VIP prefix's FIB entry (/net/route/to; shared by VIPs on one prefix)."),
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
    # add_metric() builds a label dict per sample; the VIP's one dict is shared
    # by all of its samples (10,000 VIPs x 8 backends is ~420,000 samples).
    family.samples.append(Sample(name, labels, value))


class LbCollector:
    """Metric families from the snapshot returned by `snapshot()`, built per collect()."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        # Registering must not call collect(): the snapshot may not exist yet.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from self._health(snap)
        yield from self._vips(snap)
        yield from self._backends(snap)

    @staticmethod
    def _health(snap: Snapshot) -> Iterator[Metric]:
        h = snap.health
        yield GaugeMetricFamily(
            f"{PREFIX}_vpp_connected",
            "1 when the last scrape of VPP succeeded (vppLbAgentVppConnected).",
            value=1 if h.vpp_connected else 0,
        )
        if h.vpp_version:
            yield InfoMetricFamily(
                f"{PREFIX}_vpp", "The VPP release read (vppLbAgentVppVersion).",
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
                f"{PREFIX}_last_error", "Why the last failed scrape failed (vppLbAgentLastError).",
                value={"error": h.last_error},
            )
        s = snap.settings
        if s is None:
            return
        if s.flow_timeout_s is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_conf_flow_timeout_seconds",
                "LB flow timeout (show lb; vppLbConfFlowTimeout).", value=s.flow_timeout_s,
            )
        if s.sticky_buckets_per_core is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_conf_sticky_buckets_per_core",
                "LB sticky buckets per core (show lb; vppLbConfStickyBucketsPerCore).",
                value=s.sticky_buckets_per_core,
            )
        sources = {
            k: v for k, v in (("ip4_src_address", s.ip4_src_address),
                              ("ip6_src_address", s.ip6_src_address)) if v is not None
        }
        if sources:
            yield InfoMetricFamily(
                f"{PREFIX}_conf", "LB encap source addresses (show lb).", value=sources
            )

    @staticmethod
    def _vips(snap: Snapshot) -> Iterator[Metric]:
        counters = [
            (CounterMetricFamily(f"{PREFIX}_{metric}", help_, labels=VIP_LABELS), field)
            for metric, field, help_ in _VIP_COUNTERS
        ]
        info = InfoMetricFamily(
            f"{PREFIX}_vip", "The VIP's SNMP row (vppLbVipIndex) and src-ip-sticky flag.",
            labels=(*VIP_LABELS, "index", "src_ip_sticky"),
        )
        backends = GaugeMetricFamily(
            f"{PREFIX}_vip_backends", "Backends listed, removed ones included "
            "(vppLbVipBackendCount).", labels=VIP_LABELS,
        )
        active = GaugeMetricFamily(
            f"{PREFIX}_vip_active_backends", "Backends flagged used (vppLbVipActiveBackendCount).",
            labels=VIP_LABELS,
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_vip_up", "1: the VIP has an active backend; 0: noActiveBackends "
            "(vppLbVipOperStatus).", labels=VIP_LABELS,
        )
        table = GaugeMetricFamily(
            f"{PREFIX}_vip_flow_table_buckets", "Buckets of the VIP's new-flow table "
            "(vppLbVipFlowTableLength).", labels=VIP_LABELS,
        )
        info_name = info.name + "_info"
        gauges = ((backends, backends.name), (active, active.name), (up, up.name),
                  (table, table.name))
        totals = [(family, family.name + "_total", field) for family, field in counters]
        for row in snap.rows:
            vip = row.vip
            labels = vip_labels(vip)
            c = row.counters
            for family, name, field in totals:
                value = getattr(c, field)
                if value is not None:  # unknown route counters: no sample, never 0
                    _add(family, name, labels, value)
            n_active = sum(1 for b in vip.backends if b.used)
            for (family, name), value in zip(
                gauges, (len(vip.backends), n_active, 1 if n_active else 0,
                         vip.flow_table_length), strict=True,
            ):
                _add(family, name, labels, value)
            _add(info, info_name, {
                **labels, "index": str(vip.index),
                "src_ip_sticky": "true" if vip.src_ip_sticky else "false",
            }, 1)
        for family, _field in counters:
            yield family
        yield info
        for family, _name in gauges:
            yield family

    @staticmethod
    def _backends(snap: Snapshot) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            f"{PREFIX}_backend_used", "1: used; 0: removed, still draining its flows "
            "(vppLbBackendState).", labels=BACKEND_LABELS,
        )
        weight = GaugeMetricFamily(
            f"{PREFIX}_backend_weight", "Backend weight, where the VPP release prints it "
            "(vppLbBackendWeight).", labels=BACKEND_LABELS,
        )
        buckets = GaugeMetricFamily(
            f"{PREFIX}_backend_buckets", "The backend's buckets of its VIP's new-flow table "
            "(vppLbBackendBuckets).", labels=BACKEND_LABELS,
        )
        flows = GaugeMetricFamily(
            f"{PREFIX}_backend_flows", "Current sticky-table entries (vppLbBackendFlows).",
            labels=BACKEND_LABELS,
        )
        names = (used.name, weight.name, buckets.name, flows.name)
        for row in snap.rows:
            vip_name = row.vip.name
            for b in row.vip.backends:
                labels = {"name": vip_name, "backend": b.address}
                _add(used, names[0], labels, 1 if b.used else 0)
                if b.weight is not None:
                    _add(weight, names[1], labels, b.weight)
                _add(buckets, names[2], labels, b.buckets)
                _add(flows, names[3], labels, b.flows)
        yield used
        yield weight
        yield buckets
        yield flows


def build_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of our own: the LB collector plus the standard process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LbCollector(snapshot))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request; request threads never hold the process open."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
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
            self._server = make_server(
                address, port, _not_ready, server_class=server_class,
                handler_class=_QuietHandler,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise MetricsListenError(f"cannot listen on {listen}: {reason}") from exc
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self._thread: threading.Thread | None = None

    def start(self, snapshot: Callable[[], Snapshot]) -> None:
        """Serve the metrics of `snapshot()` (called once per request)."""
        self._server.set_app(make_wsgi_app(build_registry(snapshot)))
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
