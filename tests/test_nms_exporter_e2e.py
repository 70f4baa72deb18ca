"""End to end for an NMS: Prometheus' snmp_exporter scrapes the real agent.

Emulated VPP -> VppSource/Pipeline/LbAgent -> private snmpd (test_nms_stack)
-> Debian's prometheus-snmp-exporter, with contrib's committed snmp.yml and
with one the generator makes from our MIB right now. Every sample of the
module must be exactly what the scenario says: values, metric types, VIP-name
labels, state sets and info metrics, and no series more or less.

The Grafana dashboard in contrib/grafana may only name metrics and labels that
this scrape really produced.

The exporter listens on a free loopback port (never the packaged service's 9116).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentx_lb.oids import AgentScalar, BackendColumn, SnmpType, VipColumn
from test_nms_snmp_exporter import generate_snmp_yml
from test_nms_stack import BACKENDS, SCALARS, VIPS, Stack, running_stack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
CONTRIB = REPO / "contrib" / "snmp_exporter"
DASHBOARD = REPO / "contrib" / "grafana" / "agentx-lb.json"
NMS_DOC = REPO / "docs" / "nms.md"
EXPORTER = "prometheus-snmp-exporter"
MODULE = "ipng_vpp_lb"

# generator.yml's overrides: enums as one series per state, or one info series.
STATE_SETS = {
    "vppLbAgentVppConnected": ("true", "false"),
    "vppLbVipOperStatus": ("up", "noActiveBackends"),
    "vppLbBackendState": ("used", "removed"),
}
INFOS = {"vppLbVipAddressType", "vppLbVipEncap", "vppLbVipSrcIpSticky"}
# Strings and addresses: the value is a label of a series valued 1.
STRINGS = {
    "vppLbAgentVppVersion",
    "vppLbAgentLastError",
    "vppLbConfIp4SrcAddress",
    "vppLbConfIp6SrcAddress",
    "vppLbVipName",
    "vppLbVipAddress",
    "vppLbBackendName",
}
# Not-accessible index objects: labels, never metrics.
INDEX_OBJECTS = {"vppLbVipIndex", "vppLbBackendAddressType", "vppLbBackendAddress"}
# Prometheus attaches these to every series at ingestion (the exporter does not).
TARGET_LABELS = {"instance", "job"}
Labels = frozenset[tuple[str, str]]
Series = tuple[str, Labels]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_exposition(text: str) -> tuple[dict[Series, float], dict[str, str]]:
    """Prometheus text format -> ({(name, labels): value}, {name: TYPE})."""
    samples: dict[Series, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, line
        labels = frozenset(
            (k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in _LABEL.findall(m[2] or "")
        )
        key = (m[1], labels)
        assert key not in samples, f"duplicate series {line}"
        samples[key] = float(m[3])
    return samples, types


def exporter_address(text: str) -> str:
    """How snmp_exporter 0.21 renders an InetAddress: IPv6 as 8 upper-case 4-digit groups."""
    addr = ipaddress.ip_address(text)
    return text if addr.version == 4 else addr.exploded.upper()


def _expected_cells(name: str, value: object, labels: dict[str, str]) -> dict[Series, float]:
    def key(metric: str, extra: dict[str, str]) -> Series:
        return (metric, frozenset({**labels, **extra}.items()))

    if name in STATE_SETS:
        assert value in STATE_SETS[name]
        return {key(name, {name: s}): float(s == value) for s in STATE_SETS[name]}
    if name in INFOS:
        return {key(f"{name}_info", {name: str(value)}): 1.0}
    if name in STRINGS:
        text = str(value)
        if name.endswith("Address"):
            text = exporter_address(text)
        return {key(name, {name: text}): 1.0}
    assert isinstance(value, int)
    return {key(name, {}): float(value)}


def expected_samples(stack: Stack) -> dict[Series, float]:
    want: dict[Series, float] = {}
    scalars = {**SCALARS, "vppLbAgentLastError": None}
    for name, value in scalars.items():
        if value is not None:
            want.update(_expected_cells(name, value, {}))
    for index, row in VIPS.items():
        labels = {"vppLbVipIndex": str(index), "vppLbVipName": str(row["vppLbVipName"])}
        for name, value in row.items():
            want.update(_expected_cells(name, value, labels))
    for (index, address), row in BACKENDS.items():
        labels = {
            "vppLbVipIndex": str(index),
            "vppLbVipName": str(VIPS[index]["vppLbVipName"]),
            "vppLbBackendAddress": exporter_address(address),
        }
        for name, value in row.items():
            want.update(_expected_cells(name, value, labels))
    return want


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module", params=["committed", "generated"])
def snmp_yml(request: pytest.FixtureRequest) -> Iterator[Path]:
    """contrib's snmp.yml as committed, and as the generator makes it from our MIB now."""
    if request.param == "committed":
        yield CONTRIB / "snmp.yml"
        return
    work = Path(tempfile.mkdtemp(prefix="axlb-gen-", dir="/tmp"))
    try:
        yield generate_snmp_yml(work)
    finally:
        shutil.rmtree(work)


def run_exporter(config: Path, logdir: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which(EXPORTER)
    if binary is None:
        pytest.fail(f"{EXPORTER} is not installed (apt-get install prometheus-snmp-exporter)")
    port = _free_tcp_port()
    log_path = Path(logdir) / "exporter.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(10)
                pytest.fail(f"snmp_exporter did not start: {log_path.read_text()}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def scrape(stack: Stack, snmp_yml: Path) -> Iterator[str]:
    """One scrape of the module through the exporter: the exposition text."""
    proc, url = run_exporter(snmp_yml, stack.workdir)
    try:
        target = f"{url}/snmp?module={MODULE}&target={stack.address}"
        # The URL is one we built, on loopback.
        with urllib.request.urlopen(target, timeout=60) as resp:
            yield resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)


def test_every_sample_is_exactly_the_scenario(stack: Stack, scrape: str) -> None:
    samples, _ = parse_exposition(scrape)
    got = {k: v for k, v in samples.items() if k[0].startswith("vppLb")}
    errors = [k for k in got if k[0] == "vppLbAgentLastError"]
    assert len(errors) == 1
    # The message is the source's; what matters is that it names the API socket.
    assert dict(errors[0][1])["vppLbAgentLastError"].startswith(
        f"api socket {stack.vpp.api_socket}:"
    )
    del got[errors[0]]
    want = expected_samples(stack)
    assert {k: v for k, v in got.items() if k not in want} == {}, "unexpected series"
    assert {k: v for k, v in want.items() if k not in got} == {}, "missing series"
    assert got == want


def test_counter64_are_counters_and_gauge32_gauges(scrape: str) -> None:
    _, types = parse_exposition(scrape)
    kinds = {SnmpType.COUNTER64: "counter", SnmpType.GAUGE32: "gauge"}
    members = [
        m
        for m in (*AgentScalar, *VipColumn, *BackendColumn)
        if m.snmp_type in kinds and m.mib_name not in INDEX_OBJECTS
    ]
    assert len(members) == 7 + 12 + 3  # agent, VIP and backend Counter64/Gauge32 objects
    assert {m.mib_name: types.get(m.mib_name) for m in members} == {
        m.mib_name: kinds[m.snmp_type] for m in members
    }


def test_vip_two_is_absent_and_every_table_sample_names_its_vip(scrape: str) -> None:
    samples, _ = parse_exposition(scrape)
    table = [
        dict(labels) for name, labels in samples if name.startswith(("vppLbVip", "vppLbBackend"))
    ]
    assert table
    assert all(
        labels["vppLbVipName"] == VIPS[int(labels["vppLbVipIndex"])]["vppLbVipName"]
        for labels in table
    )
    assert {labels["vppLbVipIndex"] for labels in table} == {"1", "3", "4", "5"}


def test_exporter_reports_its_own_scrape(scrape: str) -> None:
    samples, _ = parse_exposition(scrape)
    values = {name: v for (name, labels), v in samples.items() if not labels}
    # 4 scalars' subtree + 2 tables: fewer PDUs than objects (bulk walks).
    assert values["snmp_scrape_packets_retried"] == 0
    assert values["snmp_scrape_pdus_returned"] == 13 + 4 * 19 + 5 * 5


# ---- Grafana (contrib/grafana/agentx-lb.json) and docs/nms.md's alert examples only use
# what the exporter produced

_PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers that are not functions,
    keywords, label names, durations or Grafana variables)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        if m[2] or m[1] in _PROMQL_KEYWORDS:
            continue
        names.add(m[1])
    return names


def promql_labels(expr: str) -> dict[str, set[str]]:
    """Label names per metric from selectors `metric{label="..."}`, and the grouping labels
    (under the key "")."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    out: dict[str, set[str]] = {}
    for m in _SELECTOR.finditer(text):
        out.setdefault(m[1], set()).update(_MATCHER.findall(m[2]))
    for m in _GROUPING.finditer(text):
        out.setdefault("", set()).update(x.strip() for x in m[2].split(",") if x.strip())
    return out


def test_promql_parser_finds_names() -> None:
    expr = (
        'sum by (vppLbVipName) (rate(vppLbVipNextPackets{vppLbVipName=~"$vip"}[$__rate_interval]))'
        " / on (vppLbVipIndex) group_left vppLbAgentVipCount offset 5m"
    )
    assert promql_metrics(expr) == {"vppLbVipNextPackets", "vppLbAgentVipCount"}
    assert promql_labels(expr) == {
        "vppLbVipNextPackets": {"vppLbVipName"},
        "": {"vppLbVipName", "vppLbVipIndex"},
    }


def _dashboard_queries(board: dict | None = None) -> list[str]:
    """The PromQL of every panel and query variable of a dashboard (default: the SNMP one)."""
    if board is None:
        board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", []) if "expr" in t]
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query":
            query = query["query"] if isinstance(query, dict) else query
            m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]\w*)\)", query.strip())
            assert m, query
            # label_values(selector, label): check as a selector grouped by the label.
            exprs.append(f"count by ({m[2]}) ({m[1]})")
    return exprs


def _doc_queries() -> list[str]:
    """The alert examples in docs/nms.md's ```promql blocks, one per line."""
    text = NMS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```promql\n(.*?)```", text, re.S)
    lines = [ln.split("#", 1)[0].strip() for block in blocks for ln in block.splitlines()]
    return [ln for ln in lines if ln]


@pytest.mark.parametrize("snmp_yml", ["committed"], indirect=True)
def test_dashboard_and_doc_name_only_scraped_metrics_and_labels(scrape: str) -> None:
    samples, _ = parse_exposition(scrape)
    labels_of: dict[str, set[str]] = {}
    for name, pairs in samples:
        labels_of.setdefault(name, set()).update(TARGET_LABELS, (k for k, _ in pairs))
    exprs = _dashboard_queries()
    assert len(exprs) >= 8
    doc = _doc_queries()
    assert len(doc) >= 4
    exprs += doc
    used: set[str] = set()
    for expr in exprs:
        names = promql_metrics(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= set(labels_of), f"{expr!r} names {names - set(labels_of)}"
        used |= names
        every_label = set().union(*(labels_of[n] for n in names))
        for metric, labels in promql_labels(expr).items():
            have = every_label if metric == "" else labels_of[metric]
            assert labels <= have, f"{expr!r}: {metric or 'grouping'} has no {labels - have}"
    # The panels the issue asks for have their metrics.
    assert {
        "vppLbVipNextPackets",
        "vppLbVipActiveBackendCount",
        "vppLbBackendBuckets",
        "vppLbAgentVppConnected",
        "vppLbAgentScrapeFailures",
        "vppLbAgentTableAge",
    } <= used
