"""contrib/snmp_exporter: the committed snmp.yml is what the generator makes of our MIB.

Debian's prometheus-snmp-exporter (0.21) ships `prometheus-snmp-generator`,
which reads MIBs through net-snmp: our `mibs/` plus the base modules in
`../shared/mibs`. Without `../shared` these tests skip and say why; a missing
generator or exporter is a broken set-up and fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentx_lb.oids import (
    AGENT,
    BACKEND_ENTRY,
    DEFAULT_ROOT,
    VIP_ENTRY,
    AgentScalar,
    BackendColumn,
    SnmpType,
    VipColumn,
    format_oid,
)
from sharedmibs import SHARED_MIBS, require_shared_mibs

REPO = Path(__file__).resolve().parent.parent
CONTRIB = REPO / "contrib" / "snmp_exporter"

GENERATOR = "prometheus-snmp-generator"
EXPORTER = "prometheus-snmp-exporter"
# The not-accessible index objects are labels, not metrics (generator.yml ignores them).
# By name: members of different IntEnums compare equal when their sub-ids do.
INDEX_OBJECTS = {
    m.mib_name for m in (VipColumn.INDEX, BackendColumn.ADDRESS_TYPE, BackendColumn.ADDRESS)
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install prometheus-snmp-exporter)")
    return path


def _need_shared() -> None:
    require_shared_mibs()


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="axlb-gen-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _metric_blocks(snmp_yml: str) -> dict[str, str]:
    """`name -> its YAML block` for the module's metrics (text split, no YAML library)."""
    _, _, body = snmp_yml.partition("\n  metrics:\n")
    blocks = body.split("\n  - name: ")
    blocks[0] = blocks[0].removeprefix("  - name: ")
    return {b.split("\n", 1)[0]: b for b in blocks if b}


def _expected_oid(member: AgentScalar | VipColumn | BackendColumn) -> str:
    base = {AgentScalar: AGENT, VipColumn: VIP_ENTRY, BackendColumn: BACKEND_ENTRY}
    return format_oid(DEFAULT_ROOT + base[type(member)] + (int(member),))


ALL_MEMBERS = [*AgentScalar, *VipColumn, *BackendColumn]


def generate_snmp_yml(work: Path) -> Path:
    """Run Debian's generator on contrib's generator.yml and our MIB; return the snmp.yml."""
    generator = _tool(GENERATOR)
    _need_shared()
    shutil.copy(CONTRIB / "generator.yml", work / "generator.yml")
    env = {
        **os.environ,
        "MIBDIRS": f"{REPO / 'mibs'}:{SHARED_MIBS}",
        # net-snmp must not read the host's /etc/snmp or ~/.snmp.
        "SNMPCONFPATH": str(work),
        "SNMP_PERSISTENT_DIR": str(work),
    }
    done = subprocess.run(
        [generator, "--fail-on-parse-errors", "generate", "--output-path", str(work / "snmp.yml")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return work / "snmp.yml"


def test_committed_snmp_yml_is_regenerated_identically(work: Path) -> None:
    regenerated = generate_snmp_yml(work).read_text(encoding="utf-8")
    committed = (CONTRIB / "snmp.yml").read_text(encoding="utf-8")
    assert regenerated == committed, (
        "contrib/snmp_exporter/snmp.yml is stale: regenerate it (see generator.yml)"
    )


def test_exporter_accepts_the_committed_config() -> None:
    exporter = _tool(EXPORTER)
    done = subprocess.run(
        [exporter, f"--config.file={CONTRIB / 'snmp.yml'}", "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Configuration parsed successfully" in done.stderr


@pytest.mark.parametrize("member", ALL_MEMBERS, ids=[m.mib_name for m in ALL_MEMBERS])
def test_every_served_object_has_the_right_metric(
    member: AgentScalar | VipColumn | BackendColumn,
) -> None:
    metrics = _metric_blocks((CONTRIB / "snmp.yml").read_text(encoding="utf-8"))
    if member.mib_name in INDEX_OBJECTS:
        assert member.mib_name not in metrics
        return
    block = metrics[member.mib_name]
    assert f"\n    oid: {_expected_oid(member)}\n" in block
    if member.snmp_type is SnmpType.COUNTER64:
        assert "\n    type: counter\n" in block
    if isinstance(member, VipColumn | BackendColumn):
        # Every table metric carries the VIP's name.
        assert "\n      labelname: vppLbVipName\n" in block


def test_walk_covers_scalars_and_both_tables() -> None:
    text = (CONTRIB / "snmp.yml").read_text(encoding="utf-8")
    walk = text.partition("\n  walk:\n")[2].partition("\n  metrics:\n")[0].split("\n")
    want = [format_oid(DEFAULT_ROOT + (1, n)) for n in (1, 2, 3)]
    assert [line.removeprefix("  - ") for line in walk] == want
