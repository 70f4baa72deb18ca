"""bench/bench_scale.py at a tiny point completes and prints every figure as a number.

No timing assertions: the speed targets live in the benchmark (bench/README.md, "Scale").
"""

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

# Every measurement the scale bench reports (bench/README.md, "Scale"), by its label.
EXPECTED = [
    r"\(a\) agent start -> first full VIP table, s",
    r"\(b\) walk: varbinds \(whole VIP table, checked\)",
    r"\(b\) walk: wall s, min of 3",
    r"\(b\) walk: varbinds/s \(median walk\)",
    r"\(b\) walk: agent protocol-loop CPU s per 1,000 varbinds",
    r"\(b\) walk: snmpd CPU s per 1,000 varbinds",
    r"\(c\) scrape wall ms .*median",
    r"\(c\) agent CPU % of one core",
    r"\(d\) GETNEXT round trip ms, longest",
    r"\(d\) GETNEXT round trip ms, p99",
    r"\(d\) GETNEXT round trip ms, median with no refresh",
    r"\(d\) GETNEXT delay ms",
    r"\(e\) agent VmRSS MB",
    r"\(e\) agent VmHWM MB",
    r"\(f\) counter-state write ms",
    r"\(f\) counter-state file kB",
    r"\(f\) counter-state writes by the agent",
    r"churn: VIPs deleted and replaced",
    r"churn: backends removed",
]

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?(e[-+]?\d+)?$")


def test_tiny_point_prints_every_figure_as_a_number() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "bench", "bench_scale.py"),
            "--points",
            "200x4",
            "--quick",
            "--churn-per-s",
            "0.01",  # 2 VIPs a second: some churn in a few seconds
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:2] == ["figure", "200x4"] and header[-1] == "targets", header
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == len(header), line
        rows[cells[0]] = cells[1]
    for pattern in EXPECTED:
        assert any(re.match(pattern, name) for name in rows), f"no {pattern!r} in:\n{proc.stdout}"
    for name, value in rows.items():
        assert NUMBER.match(value), f"{name}: {value!r} is not a number"
    assert int(rows["(b) walk: varbinds (whole VIP table, checked)"].replace(",", "")) == 200 * 19
