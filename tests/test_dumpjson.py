"""Tests for agentx_lb.dumpjson: the `agentx-lb dump` document."""

from __future__ import annotations

import json

from agentx_lb.dumpjson import scrape_document
from agentx_lb.model import (
    Backend,
    Encap,
    LbSettings,
    ParseProblem,
    RawScrape,
    Vip,
    VipCounters,
    VipRow,
)


def test_document_has_every_field_with_exact_values() -> None:
    v4 = Vip(
        1,
        "192.0.2.1",
        32,
        4,
        Encap.GRE4,
        protocol=6,
        port=80,
        src_ip_sticky=True,
        flow_table_length=1024,
        backends=(Backend("10.0.0.3", 512, 54, True), Backend("10.0.0.2", 512, 0, False)),
    )
    v6 = Vip(
        3,
        "2001:db8::1",
        128,
        6,
        Encap.NAT6,
        flow_table_length=64,
        backends=(Backend("2001:db8:ff::4", 64, 1, True, weight=100),),
        target_port=8443,
    )
    raw = RawScrape(
        vips=(v4, v6),
        problems=(ParseProblem(7, "  bogus", "unexpected line in VIP header"),),
        lb_counters={},
        route_to=[],
        stats_index={"192.0.2.1/32": 12, "2001:db8::1/128": None},
        vpp_instance="x",
        vpp_version="25.10-release",
        settings=LbSettings("10.0.0.1", None, 1024, 40),
        timings_ms={"cli": 1.23456},
    )
    rows = (
        VipRow(v4, VipCounters(1, 2, 3, 4, 5, 500), 17),
        VipRow(v6, VipCounters(0, 0, 0, 9, None, None), 18),
    )
    doc = scrape_document(raw, rows)
    assert json.loads(json.dumps(doc)) == doc  # JSON-clean
    assert doc["vpp_version"] == "25.10-release"
    assert doc["settings"] == {
        "ip4_src_address": "10.0.0.1",
        "ip6_src_address": None,
        "sticky_buckets_per_core": 1024,
        "flow_timeout_s": 40,
    }
    assert doc["problems"] == [
        {"line_no": 7, "line": "  bogus", "reason": "unexpected line in VIP header"}
    ]
    assert doc["timings_ms"] == {"cli": 1.235}
    first, second = doc["vips"]
    assert first == {
        "index": 1,
        "name": "192.0.2.1/32 tcp/80",
        "prefix": "192.0.2.1/32",
        "address": "192.0.2.1",
        "prefix_length": 32,
        "ip_version": 4,
        "protocol": 6,
        "port": 80,
        "encap": "gre4",
        "src_ip_sticky": True,
        "flow_table_length": 1024,
        "dscp": None,
        "target_port": None,
        "backend_count": 2,
        "active_backend_count": 1,
        "next_packets": 1,
        "first_packets": 2,
        "untracked_packets": 3,
        "no_server_packets": 4,
        "route_packets": 5,
        "route_octets": 500,
        "route_stats_index": 12,
        "discontinuity_cs": 17,
        "backends": [
            {"address": "10.0.0.3", "buckets": 512, "flows": 54, "state": "used", "weight": None},
            {"address": "10.0.0.2", "buckets": 512, "flows": 0, "state": "removed", "weight": None},
        ],
    }
    assert second["prefix"] == "2001:db8::1/128"
    assert second["name"] == "2001:db8::1/128 any"
    assert second["encap"] == "nat6"
    assert (second["route_packets"], second["route_octets"]) == (None, None)
    assert second["backends"][0]["weight"] == 100
    assert second["target_port"] == 8443


def test_no_settings_no_vips() -> None:
    raw = RawScrape((), (), {}, [], {}, "x")
    assert scrape_document(raw, ()) == {
        "vips": [],
        "vpp_version": "",
        "vpp_instance": "x",
        "settings": None,
        "problems": [],
        "timings_ms": {},
    }


def test_to_text_is_the_document_with_one_vip_per_line() -> None:
    from agentx_lb.dumpjson import to_text

    doc = {
        "vips": [{"index": 1, "name": "a", "backends": [{"address": "10.0.0.1"}]},
                 {"index": 2, "name": "b\n", "backends": []}],
        "vpp_version": "25.10", "settings": None, "problems": [], "timings_ms": {"cli": 1.5},
    }  # fmt: skip
    text = to_text(doc)
    assert json.loads(text) == doc
    lines = text.splitlines()
    assert [json.loads(line.rstrip(","))["index"] for line in lines[2:4]] == [1, 2]
    assert json.loads(to_text({"vips": [], "problems": []})) == {"vips": [], "problems": []}
