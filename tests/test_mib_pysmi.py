"""pysmi compiles IPNG-VPP-LB-MIB, and pysnmp places its objects where oids.py says.

pysmi needs the ASN.1 text of every module ours imports to build its symbol
tables: NET-SNMP-MIB comes from Debian's libsnmp-base (/usr/share/snmp/mibs)
or ../shared/mibs, the IETF modules (SNMPv2-SMI/TC/CONF, INET-ADDRESS-MIB)
only from ../shared/mibs. pysnmp's bundled compiled copies of those modules are
used as searchers, so they are reported "untouched" and only ours and
NET-SNMP-MIB are compiled.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pysmi.codegen import PySnmpCodeGen
from pysmi.compiler import MibCompiler
from pysmi.parser import SmiStarParser
from pysmi.reader import FileReader
from pysmi.searcher import PyPackageSearcher, StubSearcher
from pysmi.writer import PyFileWriter
from pysnmp.smi import builder

from agentx_lb.mib import MIB_FILE, render_mib
from agentx_lb.oids import DEFAULT_ROOT, VIP_ENTRY, Oid, VipColumn

REPO = Path(__file__).resolve().parent.parent
SHARED_MIBS = REPO.parent / "shared" / "mibs"
DEBIAN_MIBS = Path("/usr/share/snmp/mibs")
BASE_MODULES = ("SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "INET-ADDRESS-MIB")


def _sources(mib_dir: Path) -> list[Path]:
    if not (SHARED_MIBS / "SNMPv2-SMI.txt").is_file():
        pytest.skip(
            "base MIB modules from ../shared/mibs are not here (a clone without ../shared); "
            "pysmi needs the text of SNMPv2-SMI to resolve our imports"
        )
    net_snmp = next((d for d in (DEBIAN_MIBS, SHARED_MIBS) if (d / "NET-SNMP-MIB.txt").is_file()))
    return [mib_dir, net_snmp, SHARED_MIBS]


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="axlb-pysmi-", dir="/tmp"))
    try:
        (path / "src").mkdir()
        (path / "out").mkdir()
        yield path
    finally:
        shutil.rmtree(path)


def compile_mib(work: Path, text: str) -> dict[str, str]:
    (work / "src" / MIB_FILE).write_text(text, encoding="utf-8")
    compiler = MibCompiler(SmiStarParser(), PySnmpCodeGen(), PyFileWriter(str(work / "out")))
    compiler.add_sources(*(FileReader(str(d)) for d in _sources(work / "src")))
    compiler.add_searchers(
        PyPackageSearcher("pysnmp.smi.mibs"), StubSearcher(*PySnmpCodeGen.baseMibs)
    )
    return {name: str(status) for name, status in compiler.compile("IPNG-VPP-LB-MIB").items()}


# pysmi 2.0.0 generates code that calls pysnmp's camelCase import/exportSymbols, which
# pysnmp 7.1 deprecates; that is between the two libraries, not about our MIB.
_PYSMI_CODEGEN_DEPRECATION = r"ignore:(import|export)Symbols is deprecated:DeprecationWarning"


def pysnmp_oid(work: Path, name: str) -> Oid:
    mib_builder = builder.MibBuilder()
    mib_builder.add_mib_sources(builder.DirMibSource(str(work / "out")))
    (node,) = mib_builder.import_symbols("IPNG-VPP-LB-MIB", name)
    return tuple(node.getName())


def test_pysmi_compiles_the_shipped_mib(work: Path) -> None:
    results = compile_mib(work, (REPO / "mibs" / MIB_FILE).read_text(encoding="utf-8"))
    assert results["IPNG-VPP-LB-MIB"] == "compiled"
    assert results["NET-SNMP-MIB"] == "compiled"
    assert {m: results[m] for m in BASE_MODULES} == dict.fromkeys(BASE_MODULES, "untouched")


@pytest.mark.filterwarnings(_PYSMI_CODEGEN_DEPRECATION)
def test_pysnmp_places_a_column_at_the_default_root(work: Path) -> None:
    compile_mib(work, (REPO / "mibs" / MIB_FILE).read_text(encoding="utf-8"))
    want = DEFAULT_ROOT + VIP_ENTRY + (int(VipColumn.NEXT_PACKETS),)
    assert pysnmp_oid(work, VipColumn.NEXT_PACKETS.mib_name) == want


@pytest.mark.filterwarnings(_PYSMI_CODEGEN_DEPRECATION)
def test_pysmi_compiles_a_re_rooted_mib(work: Path) -> None:
    root = (1, 3, 6, 1, 4, 1, 99999, 1, 2)
    results = compile_mib(work, render_mib(root))
    assert results["IPNG-VPP-LB-MIB"] == "compiled"
    assert "NET-SNMP-MIB" not in results  # the import is gone
    want = root + VIP_ENTRY + (int(VipColumn.NEXT_PACKETS),)
    assert pysnmp_oid(work, VipColumn.NEXT_PACKETS.mib_name) == want
