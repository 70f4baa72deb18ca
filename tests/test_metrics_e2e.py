"""/metrics against SNMP: the same rows, the same numbers.

The NMS scenario (tests/test_nms_stack.py: emulated VPP -> VppSource ->
Pipeline -> LbAgent -> private snmpd) is also served by `MetricsServer` from
`pipeline.snapshot`, as `cli.run` wires it. One HTTP GET of /metrics, parsed
with prometheus_client's text-format parser, is compared cell by cell with a
numeric snmpwalk of vppLbAgent, vppLbVipTable and vppLbBackendTable.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentharness import parse_walk
from agentx_lb.metrics import MetricsServer
from agentx_lb.oids import (
    BACKEND_ENTRY,
    DEFAULT_ROOT,
    VIP_ENTRY,
    AgentScalar,
    BackendColumn,
    VipColumn,
    format_oid,
)
from test_metrics import Labels, parse
from test_nms_exporter_e2e import (
    DASHBOARD,
    NMS_DOC,
    TARGET_LABELS,
    _dashboard_queries,
    promql_labels,
    promql_metrics,
)
from test_nms_stack import VIPS, Stack, running_stack

pytestmark = pytest.mark.integration

ROOT = format_oid(DEFAULT_ROOT)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def scraped(stack: Stack) -> dict[tuple[str, Labels], float]:
    server = MetricsServer("127.0.0.1:0")
    server.start(lambda: stack.pipeline.snapshot)
    try:
        host, port = server.address
        # A URL we built, on loopback.
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=30) as resp:
            samples, _ = parse(resp.read().decode())
    finally:
        server.close()
    return samples


def _snmp(stack: Stack, sub: str) -> dict[tuple[int, ...], int | str]:
    """{OID suffix after root.sub: value} of a numeric walk."""
    base = f"{ROOT}.{sub}"
    out: dict[tuple[int, ...], int | str] = {}
    for oid, (typ, text) in parse_walk(stack.snmpd.walk(base)).items():
        suffix = tuple(int(x) for x in oid[len(base) + 1 :].split("."))
        if typ in ("INTEGER", "Gauge32", "Counter64", "Unsigned32"):
            out[suffix] = int(text.split("(")[-1].rstrip(")").split()[0])
        else:
            out[suffix] = text.strip('"')
    return out


def _one(samples: dict[tuple[str, Labels], float], metric: str, **labels: str) -> float | None:
    hits = [
        v
        for (m, lb), v in samples.items()
        if m == metric and all(dict(lb).get(k) == want for k, want in labels.items())
    ]
    assert len(hits) <= 1, (metric, labels)
    return hits[0] if hits else None


def test_vip_counters_and_gauges_equal_snmp(stack: Stack, scraped: dict) -> None:
    cells = _snmp(stack, ".".join(map(str, VIP_ENTRY)))
    names = {idx: cells[(VipColumn.NAME, idx)] for (col, idx) in cells if col == VipColumn.NAME}
    assert sorted(names) == sorted(VIPS)
    columns = {
        VipColumn.NEXT_PACKETS: "agentx_lb_vip_next_packets_total",
        VipColumn.FIRST_PACKETS: "agentx_lb_vip_first_packets_total",
        VipColumn.UNTRACKED_PACKETS: "agentx_lb_vip_untracked_packets_total",
        VipColumn.NO_SERVER_PACKETS: "agentx_lb_vip_no_server_packets_total",
        VipColumn.ROUTE_PACKETS: "agentx_lb_vip_route_packets_total",
        VipColumn.ROUTE_OCTETS: "agentx_lb_vip_route_bytes_total",
        VipColumn.BACKEND_COUNT: "agentx_lb_vip_backends",
        VipColumn.ACTIVE_BACKEND_COUNT: "agentx_lb_vip_active_backends",
        VipColumn.FLOW_TABLE_LENGTH: "agentx_lb_vip_flow_table_buckets",
    }
    checked = 0
    for idx, name in names.items():
        for col, metric in columns.items():
            snmp = cells.get((col, idx))
            got = _one(scraped, metric, name=str(name))
            assert got == (None if snmp is None else float(snmp)), (name, metric)
            checked += 1
        up = 1.0 if cells[(VipColumn.OPER_STATUS, idx)] == 1 else 0.0
        assert _one(scraped, "agentx_lb_vip_up", name=str(name)) == up
        assert _one(scraped, "agentx_lb_vip_info", name=str(name), index=str(idx)) == 1.0
    assert checked == len(VIPS) * len(columns)
    # No VIP in /metrics that SNMP does not serve (index 2 was deleted).
    served = {dict(lb)["name"] for (m, lb) in scraped if m == "agentx_lb_vip_next_packets_total"}
    assert served == set(names.values())


def test_backends_equal_snmp(stack: Stack, scraped: dict) -> None:
    vip_names = {idx: str(row["vppLbVipName"]) for idx, row in VIPS.items()}
    cells = _snmp(stack, ".".join(map(str, BACKEND_ENTRY)))
    rows: dict[tuple[int, str], dict[int, int | str]] = {}
    for suffix, value in cells.items():
        col, vip, _family, length, *addr = suffix
        assert len(addr) == length
        address = str(ipaddress.ip_address(bytes(addr)))
        rows.setdefault((vip, address), {})[col] = value
    assert rows
    for (vip, address), row in rows.items():
        labels = {"name": vip_names[vip], "backend": address}
        assert _one(scraped, "agentx_lb_backend_buckets", **labels) == row[BackendColumn.BUCKETS]
        assert _one(scraped, "agentx_lb_backend_flows", **labels) == row[BackendColumn.FLOWS]
        assert _one(scraped, "agentx_lb_backend_weight", **labels) == row.get(BackendColumn.WEIGHT)
        used = 1.0 if row[BackendColumn.STATE] == 1 else 0.0
        assert _one(scraped, "agentx_lb_backend_used", **labels) == used
    in_metrics = {
        (dict(lb)["name"], dict(lb)["backend"])
        for (m, lb) in scraped
        if m == "agentx_lb_backend_used"
    }
    assert in_metrics == {(vip_names[v], a) for v, a in rows}


def test_health_equals_snmp(stack: Stack, scraped: dict) -> None:
    scalars = {s[0]: v for s, v in _snmp(stack, "1.1").items()}
    plain = {m: v for (m, lb), v in scraped.items() if not lb}
    assert plain["agentx_lb_vpp_connected"] == (
        1.0 if scalars[AgentScalar.VPP_CONNECTED] == 1 else 0.0
    )
    assert plain["agentx_lb_vips"] == scalars[AgentScalar.VIP_COUNT]
    assert plain["agentx_lb_scrape_failures_total"] == scalars[AgentScalar.SCRAPE_FAILURES] == 1
    assert (
        plain["agentx_lb_consecutive_scrape_failures"] == scalars[AgentScalar.CONSECUTIVE_FAILURES]
    )
    assert plain["agentx_lb_table_age_seconds"] == scalars[AgentScalar.TABLE_AGE]
    version = scalars[AgentScalar.VPP_VERSION]
    assert _one(scraped, "agentx_lb_vpp_info", version=str(version)) == 1.0


# ---- the Grafana variant for native metrics (contrib/grafana/agentx-lb-native.json) and
# docs/nms.md's native alert examples name only what /metrics produced

NATIVE_DASHBOARD = (
    Path(__file__).resolve().parent.parent / "contrib" / "grafana" / "agentx-lb-native.json"
)


def _native_doc_queries() -> list[str]:
    text = NMS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```promql native\n(.*?)```", text, re.S)
    lines = [ln.split("#", 1)[0].strip() for block in blocks for ln in block.splitlines()]
    return [ln for ln in lines if ln]


def test_native_dashboard_and_doc_name_only_served_metrics_and_labels(scraped: dict) -> None:
    labels_of: dict[str, set[str]] = {}
    for name, labels in scraped:
        labels_of.setdefault(name, set()).update(TARGET_LABELS, (k for k, _ in labels))
    board = json.loads(NATIVE_DASHBOARD.read_text(encoding="utf-8"))
    exprs = _dashboard_queries(board)
    assert len(exprs) >= 8
    doc = _native_doc_queries()
    assert len(doc) >= 4
    used: set[str] = set()
    for expr in exprs + doc:
        names = promql_metrics(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= set(labels_of), f"{expr!r} names {names - set(labels_of)}"
        used |= names
        every_label = set().union(*(labels_of[n] for n in names))
        for metric, labels in promql_labels(expr).items():
            have = every_label if metric == "" else labels_of[metric]
            assert labels <= have, f"{expr!r}: {metric or 'grouping'} has no {labels - have}"
    assert {
        "agentx_lb_vip_next_packets_total",
        "agentx_lb_vip_active_backends",
        "agentx_lb_backend_buckets",
        "agentx_lb_vpp_connected",
        "agentx_lb_scrape_failures_total",
        "agentx_lb_table_age_seconds",
        "process_cpu_seconds_total",
    } <= used
    # Legends name only labels the series have.
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            for label in re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat") or ""):
                names = promql_metrics(target["expr"])
                assert label in set().union(*(labels_of[n] for n in names)), (label, target)


def test_both_dashboards_have_the_same_panels() -> None:
    snmp = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    native = json.loads(NATIVE_DASHBOARD.read_text(encoding="utf-8"))
    assert native["uid"] != snmp["uid"]
    assert [len(p.get("targets", [])) for p in native["panels"]] == [
        len(p.get("targets", [])) for p in snmp["panels"]
    ]
