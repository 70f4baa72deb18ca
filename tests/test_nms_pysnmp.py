"""A MIB-driven manager other than net-snmp reads both tables by object name.

pysmi compiles IPNG-VPP-LB-MIB (with test_mib_pysmi's `compile_mib`: the real
base modules from ../shared/mibs, or its minimal stand-ins in a clone
without ../shared); pysnmp 7.1's asyncio hlapi loads the compiled module and
walks `vppLbAgent`, `vppLbVipTable` and `vppLbBackendTable` BY NAME through
the private snmpd in front of the real agent and the emulated VPP
(test_nms_stack). Every varbind must resolve to a named column of our MIB,
its index must decode (including the InetAddressType/InetAddress backend
index), its value must carry the MIB's type (Counter64, Gauge32, TimeStamp,
InetAddress, enums by name), and the values must be exactly the scenario's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # pysnmp 7.1's hlapi imports pysmi 2.0's deprecated camelCase names (getReadersFromUrls,
    # smiV1Relaxed...): between the two libraries, raised at import, before pytest's marks apply.
    warnings.filterwarnings(
        "ignore", r"\w+ is deprecated\. Please use \w+ instead", DeprecationWarning
    )
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        bulk_walk_cmd,
        get_cmd,
        walk_cmd,
    )
from agentx_lb.mib import MIB_FILE
from agentx_lb.oids import AgentScalar, BackendColumn, SnmpType, VipColumn
from test_mib_pysmi import SHARED_MIBS, compile_mib
from test_nms_stack import BACKENDS, SCALARS, VIPS, Stack, running_stack

MODULE = "IPNG-VPP-LB-MIB"
REPO = Path(__file__).resolve().parent.parent

# pysmi 2.0.0 generates code that calls pysnmp's camelCase import/exportSymbols, and
# pysnmp 7.1 drives pysmi through its deprecated camelCase API (addSources...): both are
# between the two libraries, not about our MIB.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:(import|export)Symbols is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        r"ignore:\w+ is deprecated\. Please use \w+ instead:DeprecationWarning"
    ),
]

MEMBERS = {m.mib_name: m for m in (*AgentScalar, *VipColumn, *BackendColumn)}
ENUMS = {
    "vppLbAgentVppConnected",
    "vppLbVipAddressType",
    "vppLbVipEncap",
    "vppLbVipSrcIpSticky",
    "vppLbVipOperStatus",
    "vppLbBackendState",
}
ADDRESSES = {"vppLbConfIp4SrcAddress", "vppLbConfIp6SrcAddress", "vppLbVipAddress"}
# The MIB's TEXTUAL-CONVENTIONs as pysnmp resolves them (class names of the values).
SYNTAX = {
    "vppLbAgentVppConnected": "TruthValue",
    "vppLbAgentVipTableLastChange": "TimeStamp",
    "vppLbConfIp4SrcAddress": "VppLbIPv4Address",
    "vppLbConfIp6SrcAddress": "VppLbIPv6Address",
    "vppLbVipAddressType": "InetAddressType",
    "vppLbVipAddress": "InetAddress",
    "vppLbVipPrefixLength": "InetAddressPrefixLength",
    "vppLbVipPort": "InetPortNumber",
    "vppLbVipSrcIpSticky": "TruthValue",
    "vppLbVipDiscontinuityTime": "TimeStamp",
    "vppLbVipNextPackets": "Counter64",
    "vppLbBackendBuckets": "Gauge32",
}

Walk = Callable[..., Any]
Cell = tuple[str, tuple[object, ...]]


@pytest.fixture(scope="module")
def mib_dir() -> Iterator[str]:
    """The compiled module (pysnmp's .py) in a temp dir."""
    work = Path(tempfile.mkdtemp(prefix="axlb-pysnmp-", dir="/tmp"))
    try:
        for sub in ("src", "base", "out"):
            (work / sub).mkdir()
        base = "ietf" if (SHARED_MIBS / "SNMPv2-SMI.txt").is_file() else "minimal"
        results = compile_mib(work, (REPO / "mibs" / MIB_FILE).read_text(encoding="utf-8"), base)
        assert results[MODULE] == "compiled", results
        yield str(work / "out")
    finally:
        shutil.rmtree(work)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def _name(mib_dir: str, *args: object) -> ObjectType:
    return ObjectType(ObjectIdentity(MODULE, *args).add_mib_source(mib_dir))


async def _walk(walk: Walk, port: int, mib_dir: str, name: str) -> list[ObjectType]:
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=1)
        bulk = (0, 25) if walk is bulk_walk_cmd else ()
        out: list[ObjectType] = []
        async for error, status, _, var_binds in walk(
            engine,
            CommunityData("public"),
            target,
            ContextData(),
            *bulk,
            _name(mib_dir, name),
            lexicographicMode=False,
        ):
            assert error is None and not status, (error, status)
            out.extend(var_binds)
        return out
    finally:
        engine.close_dispatcher()


async def _get(port: int, *names: ObjectType) -> list[ObjectType]:
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=1)
        error, status, _, var_binds = await get_cmd(
            engine, CommunityData("public"), target, ContextData(), *names
        )
        assert error is None and not status, (error, status)
        return list(var_binds)
    finally:
        engine.close_dispatcher()


def _tag(value: Any) -> int:
    tag = value.tagSet[-1]
    return int(tag.tagClass | tag.tagFormat | tag.tagId)


def _decode(name: str, value: Any) -> object:
    """The value as the scenario writes it, read through the MIB's types only."""
    member = MEMBERS[name]
    assert _tag(value) == int(member.snmp_type), name
    if name in SYNTAX:
        assert type(value).__name__ == SYNTAX[name], name
    if name in ENUMS:
        text = value.prettyPrint()
        assert text in value.namedValues, (name, text)  # resolved through the MIB
        return text
    if name in ADDRESSES:
        return str(ipaddress.ip_address(bytes(value.asOctets())))
    if member.snmp_type is SnmpType.OCTET_STRING:
        return str(value)
    return int(value)


def _cells(var_binds: list[ObjectType]) -> dict[Cell, object]:
    """{(column name, decoded index): decoded value}, every varbind resolved by the MIB."""
    cells: dict[Cell, object] = {}
    for var_bind in var_binds:
        module, name, index = var_bind[0].get_mib_symbol()
        assert module == MODULE, var_bind.prettyPrint()
        if name.startswith("vppLbBackend"):
            vip, family, address = index
            # The InetAddressType index component picks the address's TC (RFC 4001).
            want_type = {"ipv4": "InetAddressIPv4", "ipv6": "InetAddressIPv6"}[family.prettyPrint()]
            assert type(address).__name__ == want_type
            key: tuple[object, ...] = (
                int(vip),
                str(ipaddress.ip_address(bytes(address.asOctets()))),
            )
        elif name.startswith("vppLbVip"):
            key = (int(index[0]),)
        else:
            assert [tuple(i) for i in index] == [(0,)]  # the scalar instance .0
            key = ()
        cells[(name, key)] = _decode(name, var_bind[1])
    return cells


def _expected(table: str) -> dict[Cell, object]:
    if table == "vppLbAgent":
        return {(name, ()): value for name, value in SCALARS.items()}
    if table == "vppLbVipTable":
        return {(n, (i,)): v for i, row in VIPS.items() for n, v in row.items()}
    return {(n, key): v for key, row in BACKENDS.items() for n, v in row.items()}


@pytest.mark.parametrize("walk", [walk_cmd, bulk_walk_cmd], ids=["getnext", "getbulk"])
@pytest.mark.parametrize("table", ["vppLbAgent", "vppLbVipTable", "vppLbBackendTable"])
def test_walk_by_name_resolves_every_column_exactly(
    stack: Stack, mib_dir: str, walk: Walk, table: str
) -> None:
    got = _cells(asyncio.run(_walk(walk, stack.snmpd.port, mib_dir, table)))
    want = _expected(table)
    if table == "vppLbAgent":
        error = got.pop(("vppLbAgentLastError", ()))
        assert isinstance(error, str) and error.startswith(f"api socket {stack.vpp.api_socket}:")
    assert got == want


def test_walk_by_column_name_stays_in_the_column(stack: Stack, mib_dir: str) -> None:
    column = "vppLbVipRouteOctets"
    got = _cells(asyncio.run(_walk(bulk_walk_cmd, stack.snmpd.port, mib_dir, column)))
    assert got == {(column, (i,)): row[column] for i, row in VIPS.items()}


def test_get_by_name_and_index_values(stack: Stack, mib_dir: str) -> None:
    """An NMS builds instance OIDs from index values: the VIP index, and the
    backend's (VIP index, InetAddressType, InetAddress)."""
    var_binds = asyncio.run(
        _get(
            stack.snmpd.port,
            _name(mib_dir, "vppLbVipNextPackets", 3),
            _name(mib_dir, "vppLbBackendBuckets", 1, 1, ipaddress.ip_address("10.0.0.2").packed),
            _name(mib_dir, "vppLbBackendState", 4, 2, ipaddress.ip_address("2001:db8:1::2").packed),
            _name(mib_dir, "vppLbAgentScrapeFailures", 0),
        )
    )
    assert _cells(var_binds) == {
        ("vppLbVipNextPackets", (3,)): VIPS[3]["vppLbVipNextPackets"],
        ("vppLbBackendBuckets", (1, "10.0.0.2")): BACKENDS[(1, "10.0.0.2")]["vppLbBackendBuckets"],
        ("vppLbBackendState", (4, "2001:db8:1::2")): "removed",
        ("vppLbAgentScrapeFailures", ()): SCALARS["vppLbAgentScrapeFailures"],
    }
