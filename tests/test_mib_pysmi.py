"""pysmi compiles IPNG-VPP-LB-MIB, and pysnmp serves each object where and as oids.py says.

pysmi builds its symbol tables from the ASN.1 text of every module ours
imports, so it needs those texts even though pysnmp bundles compiled copies
(which it uses as searchers: those modules are reported "untouched" and only
ours and NET-SNMP-MIB are compiled). Two source sets:

* ``ietf``: the real base modules from ../shared/mibs (skipped without it);
* ``minimal``: tiny stand-ins written below, holding only the symbols that
  ours and NET-SNMP-MIB import, so that a fresh clone without ../shared still
  checks the module. They only feed pysmi's symbol table: the compiled module
  imports its types from pysnmp's real bundled SNMPv2-SMI/TC and
  INET-ADDRESS-MIB when loaded, and OIDs are checked against oids.py, so a
  wrong stand-in fails the test rather than hiding anything.

NET-SNMP-MIB comes from Debian's libsnmp-base (/usr/share/snmp/mibs) or
../shared/mibs.
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
from agentx_lb.oids import (
    AGENT,
    BACKEND_ENTRY,
    DEFAULT_ROOT,
    VIP_ENTRY,
    AgentScalar,
    BackendColumn,
    Oid,
    VipColumn,
)

REPO = Path(__file__).resolve().parent.parent
SHARED_MIBS = REPO.parent / "shared" / "mibs"
DEBIAN_MIBS = Path("/usr/share/snmp/mibs")
BASE_MODULES = ("SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "INET-ADDRESS-MIB")

_TC = '{name} ::= TEXTUAL-CONVENTION\n STATUS current\n DESCRIPTION ""\n SYNTAX {syntax}\n'
MINIMAL_BASE_MODULES = {
    "SNMPv2-SMI": (
        "org OBJECT IDENTIFIER ::= { iso 3 }\n"
        "dod OBJECT IDENTIFIER ::= { org 6 }\n"
        "internet OBJECT IDENTIFIER ::= { dod 1 }\n"
        "private OBJECT IDENTIFIER ::= { internet 4 }\n"
        "enterprises OBJECT IDENTIFIER ::= { private 1 }\n"
        "Gauge32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)\n"
        "Unsigned32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)\n"
        "TimeTicks ::= [APPLICATION 3] IMPLICIT INTEGER (0..4294967295)\n"
        "Counter64 ::= [APPLICATION 6] IMPLICIT INTEGER (0..18446744073709551615)\n"
    ),
    "SNMPv2-TC": "IMPORTS TimeTicks FROM SNMPv2-SMI;\n"
    + _TC.format(name="DisplayString", syntax="OCTET STRING (SIZE (0..255))")
    + _TC.format(name="TruthValue", syntax="INTEGER { true(1), false(2) }")
    + _TC.format(name="TimeStamp", syntax="TimeTicks"),
    "SNMPv2-CONF": "",
    "INET-ADDRESS-MIB": "IMPORTS Unsigned32 FROM SNMPv2-SMI;\n"
    + _TC.format(name="InetAddressType", syntax="INTEGER { unknown(0), ipv4(1), ipv6(2) }")
    + _TC.format(name="InetAddress", syntax="OCTET STRING (SIZE (0..255))")
    + _TC.format(name="InetAddressPrefixLength", syntax="Unsigned32 (0..2040)")
    + _TC.format(name="InetPortNumber", syntax="Unsigned32 (0..65535)"),
}

# pysmi 2.0.0 generates code that calls pysnmp's camelCase import/exportSymbols, which
# pysnmp 7.1 deprecates; that is between the two libraries, not about our MIB.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:(import|export)Symbols is deprecated:DeprecationWarning"
)

ALL_MEMBERS = [*AgentScalar, *VipColumn, *BackendColumn]
BASE_OID = {AgentScalar: AGENT, VipColumn: VIP_ENTRY, BackendColumn: BACKEND_ENTRY}


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="axlb-pysmi-", dir="/tmp"))
    try:
        for sub in ("src", "base", "out"):
            (path / sub).mkdir()
        yield path
    finally:
        shutil.rmtree(path)


def _base_dir(work: Path, base: str) -> Path:
    if base == "minimal":
        for name, body in MINIMAL_BASE_MODULES.items():
            text = f"{name} DEFINITIONS ::= BEGIN\n{body}END\n"
            (work / "base" / f"{name}.txt").write_text(text, encoding="utf-8")
        return work / "base"
    if not (SHARED_MIBS / "SNMPv2-SMI.txt").is_file():
        pytest.skip(
            "base MIB modules from ../shared/mibs are not here (a clone without ../shared); "
            "the 'minimal' variant of this test still runs"
        )
    return SHARED_MIBS


def compile_mib(work: Path, text: str, base: str) -> dict[str, str]:
    (work / "src" / MIB_FILE).write_text(text, encoding="utf-8")
    net_snmp = next(d for d in (DEBIAN_MIBS, SHARED_MIBS) if (d / "NET-SNMP-MIB.txt").is_file())
    compiler = MibCompiler(SmiStarParser(), PySnmpCodeGen(), PyFileWriter(str(work / "out")))
    compiler.add_sources(
        *(FileReader(str(d)) for d in (work / "src", net_snmp, _base_dir(work, base)))
    )
    compiler.add_searchers(
        PyPackageSearcher("pysnmp.smi.mibs"), StubSearcher(*PySnmpCodeGen.baseMibs)
    )
    return {name: str(status) for name, status in compiler.compile("IPNG-VPP-LB-MIB").items()}


def load_objects(work: Path) -> dict[str, tuple[Oid, int]]:
    """mib name -> (OID, BER tag of its SYNTAX) as pysnmp sees the compiled module."""
    mib_builder = builder.MibBuilder()
    mib_builder.add_mib_sources(builder.DirMibSource(str(work / "out")))
    names = [m.mib_name for m in ALL_MEMBERS]
    objects = {}
    nodes = mib_builder.import_symbols("IPNG-VPP-LB-MIB", *names)
    for name, node in zip(names, nodes, strict=True):
        tag = node.getSyntax().tagSet[-1]
        objects[name] = (tuple(node.getName()), tag.tagClass | tag.tagFormat | tag.tagId)
    return objects


@pytest.mark.parametrize("base", ["minimal", "ietf"])
def test_pysmi_compiles_the_shipped_mib(work: Path, base: str) -> None:
    results = compile_mib(work, (REPO / "mibs" / MIB_FILE).read_text(encoding="utf-8"), base)
    assert results["IPNG-VPP-LB-MIB"] == "compiled"
    assert results["NET-SNMP-MIB"] == "compiled"
    assert {m: results[m] for m in BASE_MODULES} == dict.fromkeys(BASE_MODULES, "untouched")


@pytest.mark.parametrize("base", ["minimal", "ietf"])
def test_pysnmp_serves_every_object_where_and_as_oids_says(work: Path, base: str) -> None:
    compile_mib(work, (REPO / "mibs" / MIB_FILE).read_text(encoding="utf-8"), base)
    objects = load_objects(work)
    for member in ALL_MEMBERS:
        want = (DEFAULT_ROOT + BASE_OID[type(member)] + (int(member),), int(member.snmp_type))
        assert objects[member.mib_name] == want, member.mib_name


def test_pysmi_compiles_a_re_rooted_mib(work: Path) -> None:
    root = (1, 3, 6, 1, 4, 1, 99999, 1, 2)
    results = compile_mib(work, render_mib(root), "minimal")
    assert results["IPNG-VPP-LB-MIB"] == "compiled"
    assert "NET-SNMP-MIB" not in results  # the import is gone
    oid, _ = load_objects(work)[VipColumn.NEXT_PACKETS.mib_name]
    assert oid == root + VIP_ENTRY + (int(VipColumn.NEXT_PACKETS),)
