"""bench/run.py --quick completes and prints every figure as a number (no timing assertions)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    shutil.which("snmpbulkwalk") is None or not os.path.exists("/usr/sbin/snmpd"),
    reason="needs Debian's snmpd and snmp packages",
)

# Every figure bench/run.py reports (bench/README.md), as printed at the quick size.
EXPECTED = [
    r"scrape 10 VIPs: VPP calls ms, min",
    r"scrape 10 VIPs: parse ms, median",
    r"scrape 10 VIPs: reduce ms, median",
    r"scrape 10 VIPs: table build ms, median",
    r"scrape 10 VIPs: whole cycle CPU ms, median",
    r"scrape 10 VIPs: floor \(bare vpp_papi\) ms, median",
    *[
        rf"walk 100 VIPs {a}: {f}"
        for a in ("ours", "pyagentx3", "netsnmpagent")
        for f in (
            "wall s min",
            "wall s median",
            r"varbinds/s \(median\)",
            r"snmpd CPU s \(median walk\)",
            "RSS MB after walks",
        )
    ],
    r"walk 100 VIPs ours, refreshing every 1 s: varbinds/s",
    r"GET probe 100 VIPs: max ms, refreshing every 1 s",
    r"TARGET walk 100 VIPs: netsnmpagent wall / ours wall",
    r"TARGET walk 100 VIPs: ours varbinds/s",
    r"TARGET walk 100 VIPs: pyagentx3 wall / ours wall",
    r"TARGET per-varbind cost",
    r"TARGET walk wall / snmpd CPU",
    r"TARGET protocol-loop stall",
    r"TARGET agent RSS MB",
    r"walk 100 VIPs ours: peak RSS MB \(VmHWM\) while refreshing every 1 s",
    r"GET probe 100 VIPs: longest per 1 s window ms \(median of windows\), refreshing",
    r"TARGET idle CPU",
]

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?(e[-+]?\d+)?$")


def test_quick_run_prints_every_figure_as_a_number() -> None:
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "run.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("figure", "---"):
            rows[cells[0]] = cells
    for pattern in EXPECTED:
        hits = [name for name in rows if re.match(pattern, name)]
        assert hits, f"no figure row matching {pattern!r} in:\n{proc.stdout}"
    for name, (_, value, target, result) in rows.items():
        assert NUMBER.match(value), f"{name}: {value!r} is not a number"
        if name.startswith("TARGET"):
            assert target and result in ("PASS", "FAIL"), (name, target, result)


def test_backend_walk_bench_walks_the_whole_backend_table() -> None:
    # bench/run.py's walk() raises unless every walk returns exactly the
    # varbinds of the table built from the same scrape, strictly increasing.
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "bench", "bench_backends.py"),
            "--vips",
            "10",
            "--reps",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    head = re.search(r"10 VIPs x 8 backends: ([\d,]+) varbinds, 2 walks", proc.stdout)
    assert head, proc.stdout
    # 80 backend rows, each with at least its state, buckets, flows and label.
    assert int(head.group(1).replace(",", "")) >= 80 * 4, proc.stdout
    assert re.search(r"wall s min [\d.]+ +median [\d.]+ +varbinds/s [\d,]+", proc.stdout)


def test_metrics_bench_prints_every_figure() -> None:
    # Figures only: the run must complete and print each row with a number.
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "bench", "bench_metrics.py"),
            "--vips",
            "10",
            "--reps",
            "1",
            "--agent-s",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] not in ("figure", "---"):
            rows[cells[0]] = cells[1]
    assert rows["series of the VIP and backend tables"] == "350"  # 10 x (10 VIP + 4 x 8 backend)
    for name, value in rows.items():
        for part in value.split(" / "):
            assert NUMBER.match(part), f"{name}: {value!r}"
    assert any(name.startswith("HTTP GET /metrics (gzip)") for name in rows)
