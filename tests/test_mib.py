"""`agentx_lb.mib`: the shipped MIB passes smilint, and render_mib() moves it intact.

smilint and snmptranslate need the IETF base modules, which live outside the
project in `../shared/mibs` (see its README): without that folder these tests
skip and say why. A missing smilint or snmptranslate is a broken set-up
(setup.sh installs smitools and snmp), so that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentx_lb.mib import MIB_FILE, mib_text, render_mib
from agentx_lb.oids import DEFAULT_ROOT, VIP_ENTRY, Oid, VipColumn, format_oid, parse_oid
from sharedmibs import require_shared_mibs

REPO = Path(__file__).resolve().parent.parent

OTHER_ROOTS = [
    "1.3.6.1.4.1.99999",  # a PEN of one's own: { enterprises 99999 }
    "1.3.6.1.4.1.99999.1.2",  # below it, with named intermediate arcs
    "1.3.6.1.4.1.8072.9999.9999.1234",  # another playpen arc: NET-SNMP-MIB import kept
    "1.3.6.1.3.77",  # experimental
    "1.2.99.5",  # not under internet: hangs below iso
]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; setup.sh installs it (Debian smitools / snmp)")
    return path


def _base_mibs() -> Path:
    return require_shared_mibs()


@pytest.fixture
def mib_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="axlb-mib-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def smilint(path: Path, *args: str) -> str:
    smilint_bin = _tool("smilint")
    base = _base_mibs()
    env = {**os.environ, "SMIPATH": f"{base}:{path.parent}"}
    done = subprocess.run(
        [smilint_bin, "-l", "6", *args, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    return done.stdout + done.stderr


def snmptranslate_numeric(mib_dir: Path, name: str) -> str:
    snmptranslate = _tool("snmptranslate")
    base = _base_mibs()
    # A private conf/persistent dir: net-snmp must not read /etc/snmp or write /var/lib/snmp.
    env = {**os.environ, "SNMPCONFPATH": str(mib_dir), "SNMP_PERSISTENT_DIR": str(mib_dir)}
    done = subprocess.run(
        [snmptranslate, "-M", f"{base}:{mib_dir}", "-m", "IPNG-VPP-LB-MIB", "-On", name],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_mib_text_is_the_shipped_file() -> None:
    assert mib_text() == (REPO / "mibs" / MIB_FILE).read_text(encoding="utf-8")


def test_default_root_renders_the_shipped_text_unchanged() -> None:
    assert render_mib(DEFAULT_ROOT) == mib_text()


@pytest.mark.parametrize("flags", [(), ("-s",)], ids=["plain", "severity"])
def test_shipped_mib_is_smilint_clean(flags: tuple[str, ...]) -> None:
    assert smilint(REPO / "mibs" / MIB_FILE, *flags) == ""


def test_smilint_check_is_not_vacuous(mib_dir: Path) -> None:
    # The same call must report a broken module, or "prints nothing" proves nothing.
    bad = mib_dir / MIB_FILE
    bad.write_text(mib_text().replace("::= { vppLbVipEntry 14 }", "::= { vppLbVipEntry 15 }"))
    assert "vppLbVip" in smilint(bad)


@pytest.mark.parametrize("root", OTHER_ROOTS)
def test_rendered_mib_keeps_everything_below_the_root(root: str) -> None:
    rendered = render_mib(parse_oid(root))
    shipped = mib_text()
    # Everything from the first textual convention on is byte-identical.
    tail = shipped[shipped.index("VppLbIPv4Address ::=") :]
    assert rendered.endswith(tail)
    assert "netSnmpPlaypen 8298 }" not in rendered
    assert ("FROM NET-SNMP-MIB" in rendered) == root.startswith("1.3.6.1.4.1.8072.9999.9999.")


def test_root_under_enterprises_imports_enterprises() -> None:
    rendered = render_mib(parse_oid("1.3.6.1.4.1.99999"))
    assert "    ::= { enterprises 99999 }\n" in rendered
    assert "Unsigned32,\n    enterprises\n        FROM SNMPv2-SMI" in rendered


def test_deep_root_names_its_intermediate_arcs() -> None:
    rendered = render_mib(parse_oid("1.3.6.1.4.1.99999.1.2"))
    assert "    ::= { vppLbRootArc2 2 }\n" in rendered
    assert "vppLbRootArc1 OBJECT IDENTIFIER ::= { enterprises 99999 }\n" in rendered
    assert "vppLbRootArc2 OBJECT IDENTIFIER ::= { vppLbRootArc1 1 }\n" in rendered


@pytest.mark.parametrize("root", [(3, 1, 5), (1,), (1, 3, 6, 1, 4, 1, 2**32)])
def test_unusable_root_is_refused(root: Oid) -> None:
    with pytest.raises(ValueError, match="not a usable root OID"):
        render_mib(root)


@pytest.mark.parametrize("root", OTHER_ROOTS)
def test_rendered_mib_is_smilint_clean(root: str, mib_dir: Path) -> None:
    path = mib_dir / MIB_FILE
    path.write_text(render_mib(parse_oid(root)), encoding="utf-8")
    assert smilint(path) == ""


@pytest.mark.parametrize("root", [format_oid(DEFAULT_ROOT), *OTHER_ROOTS])
def test_snmptranslate_resolves_a_column_under_the_root(root: str, mib_dir: Path) -> None:
    (mib_dir / MIB_FILE).write_text(render_mib(parse_oid(root)), encoding="utf-8")
    want = parse_oid(root) + VIP_ENTRY + (int(VipColumn.NEXT_PACKETS),)
    got = snmptranslate_numeric(mib_dir, "IPNG-VPP-LB-MIB::vppLbVipNextPackets")
    assert got == "." + format_oid(want)
