"""One scrape as a JSON-ready document (`agentx-lb dump`, fixture recording).

Pure: RawScrape + reduced rows -> plain dict of str/int/bool/None/list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from agentx_lb.model import Backend, RawScrape, VipRow

__all__ = ["scrape_document", "to_text"]


def _backend(backend: Backend) -> dict[str, Any]:
    return {
        "address": backend.address,
        "buckets": backend.buckets,
        "flows": backend.flows,
        "state": "used" if backend.used else "removed",
        "weight": backend.weight,
    }


def _vip(row: VipRow) -> dict[str, Any]:
    vip, c = row.vip, row.counters
    return {
        "index": vip.index,
        "name": vip.name,
        "prefix": vip.prefix,
        "address": vip.address,
        "prefix_length": vip.prefix_length,
        "ip_version": vip.ip_version,
        "protocol": vip.protocol,
        "port": vip.port,
        "encap": vip.encap.name.lower(),
        "src_ip_sticky": vip.src_ip_sticky,
        "flow_table_length": vip.flow_table_length,
        "dscp": vip.dscp,
        "target_port": vip.target_port,
        "backend_count": len(vip.backends),
        "active_backend_count": sum(1 for b in vip.backends if b.used),
        "next_packets": c.next_packets,
        "first_packets": c.first_packets,
        "untracked_packets": c.untracked_packets,
        "no_server_packets": c.no_server_packets,
        "route_packets": c.route_packets,  # None: no exact FIB entry (unknown)
        "route_octets": c.route_octets,
        "route_stats_index": None,
        "discontinuity_cs": row.discontinuity_cs,
        "backends": [_backend(b) for b in vip.backends],
    }


def scrape_document(raw: RawScrape, rows: Sequence[VipRow]) -> dict[str, Any]:
    """`{"vips": [...], "vpp_version", "vpp_instance", "settings", "problems", "timings_ms"}`."""
    vips = []
    for row in rows:
        doc = _vip(row)
        doc["route_stats_index"] = raw.stats_index.get(row.vip.prefix)
        vips.append(doc)
    return {
        "vips": vips,
        "vpp_version": raw.vpp_version,
        "vpp_instance": raw.vpp_instance,
        "settings": asdict(raw.settings) if raw.settings is not None else None,
        "problems": [
            {"line_no": p.line_no, "line": p.line, "reason": p.reason} for p in raw.problems
        ],
        "timings_ms": {k: round(v, 3) for k, v in raw.timings_ms.items()},
    }


def to_text(doc: dict[str, Any]) -> str:
    """`doc` as JSON with one VIP per line (greppable, and `jq` reads it).

    `json.dumps(indent=...)` runs CPython's pure-Python encoder (the C one
    only does compact output), slow for a large VIP table. Each line here is
    encoded in C.
    """
    lines = ["{"]
    items = list(doc.items())
    for i, (key, value) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        name = json.dumps(key)
        if key == "vips" and value:
            lines.append(f"  {name}: [")
            last = len(value) - 1
            lines.extend(
                f"    {json.dumps(vip)}{',' if j < last else ''}" for j, vip in enumerate(value)
            )
            lines.append(f"  ]{end}")
        else:
            lines.append(f"  {name}: {json.dumps(value)}{end}")
    lines.append("}")
    return "\n".join(lines) + "\n"
