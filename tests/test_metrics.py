"""Native Prometheus metrics (agentx_lb/metrics.py) and `metrics_listen`.

The exposition is read back with prometheus_client's own text-format parser.
Unit tests use the synthetic snapshot of snmpfixtures; the integration test
serves the NMS scenario (tests/test_nms_stack.py) and compares every value
with what snmpd serves for the same rows.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agentx_lb import cli, config
from agentx_lb.metrics import (
    LbCollector,
    MetricsApp,
    MetricsListenError,
    MetricsServer,
    TableCollector,
    _escape,
    build_registry,
    encode_table,
)
from agentx_lb.model import Health, Snapshot
from snmpfixtures import make_snapshot

Labels = frozenset[tuple[str, str]]

VIP_COUNTERS = {
    "agentx_lb_vip_next_packets_total": "next_packets",
    "agentx_lb_vip_first_packets_total": "first_packets",
    "agentx_lb_vip_untracked_packets_total": "untracked_packets",
    "agentx_lb_vip_no_server_packets_total": "no_server_packets",
    "agentx_lb_vip_route_packets_total": "route_packets",
    "agentx_lb_vip_route_bytes_total": "route_octets",
}


def parse(text: str) -> tuple[dict[tuple[str, Labels], float], dict[str, str]]:
    """Exposition text -> ({(sample name, labels): value}, {family name: type})."""
    samples: dict[tuple[str, Labels], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = float(s.value)  # what Prometheus stores: float64
    return samples, types


def exposition(snapshot: Snapshot) -> str:
    return generate_latest(build_registry(lambda: snapshot)).decode()


def by_name(samples: dict[tuple[str, Labels], float], name: str) -> dict[str, float]:
    """{VIP name (label `name`): value} of one metric, checking that names are unique."""
    out: dict[str, float] = {}
    for (metric, labels), value in samples.items():
        if metric == name:
            key = dict(labels)["name"]
            assert key not in out
            out[key] = value
    return out


# ---------------------------------------------------------------- the collector


def test_counters_are_the_served_values_with_vip_labels() -> None:
    snap = make_snapshot()
    samples, types = parse(exposition(snap))
    assert types["agentx_lb_vip_next_packets"] == "counter"
    for metric, field in VIP_COUNTERS.items():
        got = by_name(samples, metric)
        want = {
            r.vip.name: float(getattr(r.counters, field))
            for r in snap.rows
            if getattr(r.counters, field) is not None
        }
        assert got == want, metric
    # Every label the issue names, with the VIP's values.
    row = next(r for r in snap.rows if r.vip.index == 5)
    labels = {
        "name": "2001:db8::5/128 tcp/80",
        "prefix": "2001:db8::5/128",
        "protocol": "tcp",
        "port": "80",
        "encap": "gre6",
    }
    assert row.vip.name == labels["name"]
    key = ("agentx_lb_vip_first_packets_total", frozenset(labels.items()))
    assert samples[key] == 5.0
    all_port = next(
        dict(lb)
        for (m, lb) in samples
        if m == "agentx_lb_vip_next_packets_total" and dict(lb)["name"].endswith("any")
    )
    assert (all_port["protocol"], all_port["port"]) == ("any", "any")


def test_unknown_route_counter_has_no_sample_never_zero() -> None:
    snap = make_snapshot()
    unknown = next(r for r in snap.rows if r.counters.route_packets is None)
    samples, _ = parse(exposition(snap))
    for metric in ("agentx_lb_vip_route_packets_total", "agentx_lb_vip_route_bytes_total"):
        assert unknown.vip.name not in by_name(samples, metric)
    # Its LB counters are there.
    assert unknown.vip.name in by_name(samples, "agentx_lb_vip_next_packets_total")


def test_vip_gauges_and_backends() -> None:
    snap = make_snapshot()
    samples, types = parse(exposition(snap))
    active = by_name(samples, "agentx_lb_vip_active_backends")
    up = by_name(samples, "agentx_lb_vip_up")
    for r in snap.rows:
        n_active = sum(b.used for b in r.vip.backends)
        assert active[r.vip.name] == n_active
        assert up[r.vip.name] == (1 if n_active else 0)
        assert by_name(samples, "agentx_lb_vip_backends")[r.vip.name] == len(r.vip.backends)
    assert 0.0 in up.values()  # VIP 3 has no active backend
    backends = {
        (dict(lb)["name"], dict(lb)["backend"]): v
        for (m, lb), v in samples.items()
        if m == "agentx_lb_backend_buckets"
    }
    assert backends == {
        (r.vip.name, b.address): float(b.buckets) for r in snap.rows for b in r.vip.backends
    }
    weights = {
        (dict(lb)["name"], dict(lb)["backend"])
        for (m, lb), v in samples.items()
        if m == "agentx_lb_backend_weight"
    }
    assert weights == {
        (r.vip.name, b.address) for r in snap.rows for b in r.vip.backends if b.weight is not None
    }
    assert types["agentx_lb_backend_flows"] == "gauge"
    info = [dict(lb) for (m, lb) in samples if m == "agentx_lb_vip_info"]
    assert sorted(int(i["index"]) for i in info) == sorted(r.vip.index for r in snap.rows)


def test_health_gauges() -> None:
    samples, types = parse(exposition(make_snapshot()))
    plain = {m: v for (m, lb), v in samples.items() if not lb}
    assert plain["agentx_lb_vpp_connected"] == 1
    assert plain["agentx_lb_vips"] == 15
    assert plain["agentx_lb_table_age_seconds"] == 3
    assert plain["agentx_lb_last_scrape_duration_seconds"] == 0.017
    assert plain["agentx_lb_scrape_failures_total"] == 5
    assert types["agentx_lb_scrape_failures"] == "counter"
    assert plain["agentx_lb_consecutive_scrape_failures"] == 0
    assert ("agentx_lb_vpp_info", frozenset({("version", "24.10-release")})) in samples
    # The standard process metrics come along.
    assert "process_cpu_seconds_total" in plain
    assert "process_resident_memory_bytes" in plain
    assert any(m == "python_info" for m, _ in samples)


def test_withdrawn_table_is_absent_not_zero_and_health_says_why() -> None:
    withdrawn = Snapshot(
        rows=(),
        health=Health(
            vpp_connected=False,
            table_age_s=20,
            scrape_failures=7,
            consecutive_failures=4,
            last_error="api socket /x: no such socket",
        ),
    )
    samples, _ = parse(exposition(withdrawn))
    assert not [m for m, _ in samples if m.startswith(("agentx_lb_vip_", "agentx_lb_backend_"))]
    plain = {m: v for (m, lb), v in samples.items() if not lb}
    assert plain["agentx_lb_vpp_connected"] == 0
    assert plain["agentx_lb_consecutive_scrape_failures"] == 4
    assert plain["agentx_lb_table_age_seconds"] == 20
    assert (
        "agentx_lb_last_error_info",
        frozenset({("error", "api socket /x: no such socket")}),
    ) in samples


def test_collect_reads_the_snapshot_once_per_scrape() -> None:
    calls = []
    snap = make_snapshot()

    def current() -> Snapshot:
        calls.append(1)
        return snap

    registry = build_registry(current)
    assert calls == []  # registering does not collect
    generate_latest(registry)
    assert len(calls) == 1
    list(LbCollector(current).collect())
    assert len(calls) == 2


# ---------------------------------------------------------------- the fast path of /metrics


@pytest.mark.parametrize(
    "snapshot",
    [
        make_snapshot(),
        make_snapshot(indices=range(1, 300), backends_per_vip=8),
        Snapshot(),
    ],
    ids=["fixture", "299x8", "empty"],
)
def test_fast_encoder_is_the_collector_through_generate_latest(snapshot: Snapshot) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(TableCollector(lambda: snapshot))
    want, want_types = parse(generate_latest(registry).decode())
    got, got_types = parse(encode_table(snapshot))
    assert got == want
    assert got_types == want_types
    if snapshot.rows:
        assert len(got) > len(snapshot.rows) * 10


def test_label_escaping_is_prometheus_text_format() -> None:
    assert _escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert _escape("192.0.2.1/32 tcp/80") == "192.0.2.1/32 tcp/80"


def _call(
    app: MetricsApp, path: str = "/metrics", method: str = "GET", encoding: str = ""
) -> tuple[str, dict[str, str], bytes]:
    got: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(
        app(
            {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_ACCEPT_ENCODING": encoding},
            start_response,
        )
    )
    return str(got["status"]), got["headers"], body  # type: ignore[return-value]  # set above


def test_app_serves_collector_samples_plain_and_gzip() -> None:
    import gzip

    snap = make_snapshot()
    app = MetricsApp(lambda: snap)
    status, headers, body = _call(app)
    assert status == "200 OK"
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    served, _ = parse(body.decode())
    reference, _ = parse(exposition(snap))
    # Every sample but the process metrics, which move between two reads.
    moving = ("process_", "python_gc_")
    assert {k: v for k, v in served.items() if not k[0].startswith(moving)} == {
        k: v for k, v in reference.items() if not k[0].startswith(moving)
    }
    status, headers, packed = _call(app, encoding="gzip, deflate")
    assert headers["Content-Encoding"] == "gzip"
    assert int(headers["Content-Length"]) == len(packed)
    again, _ = parse(gzip.decompress(packed).decode())
    assert {k for k in again} == {k for k in served}


def test_app_encodes_the_table_once_per_snapshot() -> None:
    current = [make_snapshot()]
    app = MetricsApp(lambda: current[0])
    _call(app)
    cached = app._cache
    _call(app)
    assert app._cache is cached  # same snapshot: not encoded again
    current[0] = make_snapshot(indices=(1, 2))
    _, _, body = _call(app)
    assert app._cache is not cached
    served, _ = parse(body.decode())
    assert len(by_name(served, "agentx_lb_vip_next_packets_total")) == 2


def test_app_paths_and_methods() -> None:
    app = MetricsApp(lambda: make_snapshot())
    assert _call(app, path="/")[0] == "404 Not Found"
    assert _call(app, method="POST")[0] == "405 Method Not Allowed"
    status, _, body = _call(app, method="HEAD")
    assert (status, body) == ("200 OK", b"")


# ---------------------------------------------------------------- config and server


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9744", ("127.0.0.1", 9744)),
        ("[::1]:9744", ("::1", 9744)),
        (":9744", ("", 9744)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_parse_listen(text: str, want: tuple[str, int]) -> None:
    assert config.parse_listen(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "9744",
        "::1:9744",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "a b:80",
        "[]:80",
        "host:80x",
    ],
)
def test_bad_listen_is_a_config_error_exit_2_one_line(text: str) -> None:
    err = io.StringIO()
    status = cli.main(
        ["--metrics-listen", text, "--check-config"], environ={}, stderr=err, stdout=io.StringIO()
    )
    assert status == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("agentx-lb: config: flag --metrics-listen: metrics_listen: ")


def test_metrics_listen_is_off_by_default_and_empty_env_is_off() -> None:
    assert config.Config().metrics_listen is None
    cfg = config.load(
        flags={},
        environ={"AGENTX_LB_METRICS_LISTEN": ""},
        config_path="/nonexistent",
        explicit=False,
    )
    assert cfg.metrics_listen is None
    cfg = config.load(
        flags={},
        environ={"AGENTX_LB_METRICS_LISTEN": "127.0.0.1:9744"},
        config_path="/nonexistent",
        explicit=False,
    )
    assert cfg.metrics_listen == "127.0.0.1:9744"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


def test_server_bind_failure_is_a_metrics_listen_error(busy_port: int) -> None:
    with pytest.raises(MetricsListenError, match=rf"cannot listen on 127.0.0.1:{busy_port}: "):
        MetricsServer(f"127.0.0.1:{busy_port}")


def test_run_with_a_busy_port_exits_2_with_one_line(busy_port: int, tmp_path: object) -> None:
    # The real command, as a process: nothing else is started, one line on stderr.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTX_LB_")}
    env.pop("JOURNAL_STREAM", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentx_lb",
            "run",
            "--state-dir",
            str(tmp_path),
            "--agentx-socket",
            f"{tmp_path}/agentx",
            "--metrics-listen",
            f"127.0.0.1:{busy_port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"agentx-lb: metrics: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    ]


def _get(url: str) -> tuple[int, str, dict[str, str]]:
    # A URL we built, on loopback.
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.read().decode(), dict(resp.headers)


def test_server_serves_the_current_snapshot_per_request() -> None:
    current = [Snapshot()]
    server = MetricsServer("127.0.0.1:0")
    try:
        host, port = server.address
        server.start(lambda: current[0])
        status, text, headers = _get(f"http://{host}:{port}/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain")
        samples, _ = parse(text)
        assert not [m for m, _ in samples if m.startswith("agentx_lb_vip_")]
        current[0] = make_snapshot()  # the pipeline publishes a new one
        _, text, _ = _get(f"http://{host}:{port}/metrics")
        samples, _ = parse(text)
        assert len(by_name(samples, "agentx_lb_vip_next_packets_total")) == 15
    finally:
        server.close()


def test_help_names_the_flag() -> None:
    text = cli.build_parser().format_help()
    assert re.search(r"--metrics-listen METRICS_LISTEN", text)
    assert "AGENTX_LB_METRICS_LISTEN" in text
