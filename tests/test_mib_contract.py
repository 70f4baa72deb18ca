"""The MIB text and `oids.py` say the same thing: names, sub-ids, parents, types.

The MIB is parsed here (no second hand-kept list of objects): every
OBJECT-TYPE with its SYNTAX, MAX-ACCESS and `::= { parent N }`, resolved to a
full OID under the default root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentx_lb import oids
from agentx_lb.oids import AgentScalar, BackendColumn, SnmpType, VipColumn

MIB_PATH = Path(__file__).resolve().parent.parent / "mibs" / "IPNG-VPP-LB-MIB.txt"

# The one node imported from outside the standard SMI: NET-SNMP-MIB's netSnmpPlaypen.
EXTERNAL_NODES = {"netSnmpPlaypen": (1, 3, 6, 1, 4, 1, 8072, 9999, 9999)}

# SYNTAX (after resolving this module's own textual conventions) -> wire type.
BASE_TYPES = {
    "Counter64": SnmpType.COUNTER64,
    "Gauge32": SnmpType.GAUGE32,
    "Unsigned32": SnmpType.GAUGE32,
    "InetAddressPrefixLength": SnmpType.GAUGE32,
    "InetPortNumber": SnmpType.GAUGE32,
    "INTEGER": SnmpType.INTEGER,
    "TruthValue": SnmpType.INTEGER,
    "InetAddressType": SnmpType.INTEGER,
    "TimeStamp": SnmpType.TIMETICKS,
    "DisplayString": SnmpType.OCTET_STRING,
    "OCTET STRING": SnmpType.OCTET_STRING,
    "InetAddress": SnmpType.OCTET_STRING,
    "InetAddressIPv4": SnmpType.OCTET_STRING,
    "InetAddressIPv6": SnmpType.OCTET_STRING,
}


@dataclass(frozen=True)
class MibObject:
    name: str
    syntax: str
    access: str
    units: bool
    parent: str
    sub_id: int


@dataclass(frozen=True)
class Mib:
    objects: dict[str, MibObject]
    oids: dict[str, oids.Oid]  # every named node, resolved
    tcs: dict[str, str]  # local TEXTUAL-CONVENTION name -> SYNTAX
    indexes: dict[str, list[str]]  # entry name -> INDEX objects
    group_members: set[str]


def _strip(text: str) -> str:
    """Drop quoted strings and ASN.1 comments (`--` to `--` or end of line)."""
    text = re.sub(r'"[^"]*"', '""', text)
    return "\n".join(re.sub(r"--.*?(--|$)", " ", line) for line in text.splitlines())


def parse_mib(text: str) -> Mib:
    body = _strip(text)
    objects: dict[str, MibObject] = {}
    indexes: dict[str, list[str]] = {}
    # Each OBJECT-TYPE runs from its name to its first `::= { parent N }`.
    for m in re.finditer(
        r"^(\w+)\s+OBJECT-TYPE\b(.*?)::=\s*\{\s*(\w+)\s+(\d+)\s*\}", body, re.S | re.M
    ):
        name, clauses, parent, sub = m.groups()
        syntax = re.search(r"SYNTAX\s+(.*?)\s+(?:UNITS|MAX-ACCESS)\b", clauses, re.S)
        access = re.search(r"MAX-ACCESS\s+([\w-]+)", clauses)
        assert syntax is not None, name
        assert access is not None, name
        objects[name] = MibObject(
            name,
            " ".join(syntax.group(1).split()),
            access.group(1),
            re.search(r"\bUNITS\b", clauses) is not None,
            parent,
            int(sub),
        )
        index = re.search(r"\bINDEX\s*\{([^}]*)\}", clauses)
        if index:
            indexes[name] = index.group(1).replace(",", " ").split()

    parents: dict[str, tuple[str, tuple[int, ...]]] = {
        o.name: (o.parent, (o.sub_id,)) for o in objects.values()
    }
    for m in re.finditer(
        r"^(\w+)\s+(?:OBJECT IDENTIFIER|MODULE-IDENTITY|OBJECT-GROUP|MODULE-COMPLIANCE)\b"
        r"(?:(?!\bOBJECT-TYPE\b).)*?::=\s*\{\s*(\w+)((?:\s+\d+)+)\s*\}",
        body,
        re.S | re.M,
    ):
        parents[m.group(1)] = (m.group(2), tuple(int(a) for a in m.group(3).split()))

    resolved: dict[str, oids.Oid] = dict(EXTERNAL_NODES)

    def resolve(name: str) -> oids.Oid:
        if name not in resolved:
            parent, arcs = parents[name]
            resolved[name] = resolve(parent) + arcs
        return resolved[name]

    for name in parents:
        resolve(name)

    tcs = {
        m.group(1): " ".join(m.group(2).split())
        for m in re.finditer(
            r"^(\w+)\s*::=\s*TEXTUAL-CONVENTION.*?SYNTAX\s+(.*?)\n\s*\n", body + "\n\n", re.S | re.M
        )
    }
    members: set[str] = set()
    for m in re.finditer(r"OBJECT-GROUP\s+OBJECTS\s*\{([^}]*)\}", body):
        members |= set(m.group(1).replace(",", " ").split())
    return Mib(objects, resolved, tcs, indexes, members)


@pytest.fixture(scope="module")
def mib() -> Mib:
    return parse_mib(MIB_PATH.read_text(encoding="utf-8"))


def _is_row_or_table(obj: MibObject) -> bool:
    return obj.syntax.startswith("SEQUENCE OF") or obj.name.endswith("Entry")


def _columns(mib: Mib) -> dict[str, MibObject]:
    return {n: o for n, o in mib.objects.items() if not _is_row_or_table(o)}


def _wire_type(mib: Mib, syntax: str) -> SnmpType:
    for _ in range(5):  # local TCs may refine each other; five levels is plenty
        base = re.match(r"OCTET STRING|[\w-]+", syntax)
        assert base is not None, syntax
        if base.group(0) in BASE_TYPES:
            return BASE_TYPES[base.group(0)]
        syntax = mib.tcs[base.group(0)]
    raise AssertionError(f"cannot resolve SYNTAX {syntax!r}")


ALL_MEMBERS: list[tuple[type[oids._Column], oids._Column]] = [
    (enum_cls, member)
    for enum_cls in (AgentScalar, VipColumn, BackendColumn)
    for member in enum_cls
]
BASE_OID = {AgentScalar: oids.AGENT, VipColumn: oids.VIP_ENTRY, BackendColumn: oids.BACKEND_ENTRY}
PARENT = {AgentScalar: "vppLbAgent", VipColumn: "vppLbVipEntry", BackendColumn: "vppLbBackendEntry"}


def test_parser_finds_a_plausible_module(mib: Mib) -> None:
    # Guards the parser itself: a regex that matched nothing would pass vacuously.
    assert len(_columns(mib)) == len(ALL_MEMBERS)
    assert mib.oids["ipngVppLbMIB"] == oids.DEFAULT_ROOT


@pytest.mark.parametrize(
    ("node", "rel"),
    [
        ("vppLbNotifications", oids.NOTIFICATIONS),
        ("vppLbObjects", oids.OBJECTS),
        ("vppLbAgent", oids.AGENT),
        ("vppLbVipTable", oids.VIP_TABLE),
        ("vppLbVipEntry", oids.VIP_ENTRY),
        ("vppLbBackendTable", oids.BACKEND_TABLE),
        ("vppLbBackendEntry", oids.BACKEND_ENTRY),
        ("vppLbConformance", oids.CONFORMANCE),
    ],
)
def test_subtree_layout_matches(mib: Mib, node: str, rel: oids.Oid) -> None:
    assert mib.oids[node] == oids.DEFAULT_ROOT + rel


@pytest.mark.parametrize(
    ("enum_cls", "member"), ALL_MEMBERS, ids=[m.mib_name for _, m in ALL_MEMBERS]
)
def test_member_matches_mib_object(
    mib: Mib, enum_cls: type[oids._Column], member: oids._Column
) -> None:
    obj = mib.objects.get(member.mib_name)
    assert obj is not None, f"{member.mib_name} is in oids.py but not in the MIB"
    assert obj.parent == PARENT[enum_cls]
    assert obj.sub_id == int(member)
    assert mib.oids[obj.name] == oids.DEFAULT_ROOT + BASE_OID[enum_cls] + (int(member),)
    assert _wire_type(mib, obj.syntax) == member.snmp_type, obj.syntax


def test_mib_has_no_object_oids_lacks(mib: Mib) -> None:
    known = {m.mib_name for _, m in ALL_MEMBERS}
    assert set(_columns(mib)) - known == set()


def test_indexes_match_the_cell_layout(mib: Mib) -> None:
    # oids.py documents cells as VIP_ENTRY + (col, vip_index) and
    # BACKEND_ENTRY + (col, vip_index, addr_type, len, *addr).
    assert mib.indexes == {
        "vppLbVipEntry": [VipColumn.INDEX.mib_name],
        "vppLbBackendEntry": [
            VipColumn.INDEX.mib_name,
            BackendColumn.ADDRESS_TYPE.mib_name,
            BackendColumn.ADDRESS.mib_name,
        ],
    }
    assert mib.objects[BackendColumn.ADDRESS.mib_name].syntax == "InetAddress (SIZE (4|16))"
    assert mib.objects[VipColumn.INDEX.mib_name].syntax == "Unsigned32 (1..4294967295)"


def test_only_index_objects_are_not_accessible(mib: Mib) -> None:
    index_objects = {n for idx in mib.indexes.values() for n in idx}
    for name, obj in _columns(mib).items():
        assert obj.access == ("not-accessible" if name in index_objects else "read-only"), name


def test_every_accessible_object_is_in_a_group(mib: Mib) -> None:
    readable = {n for n, o in _columns(mib).items() if o.access != "not-accessible"}
    assert readable == mib.group_members


def test_counters_carry_units(mib: Mib) -> None:
    counters = [o for o in _columns(mib).values() if o.syntax == "Counter64"]
    assert counters, "the MIB defines no Counter64 at all"
    assert [o.name for o in counters if not o.units] == []


def test_parser_sees_a_drifted_sub_id() -> None:
    # The contract is only as good as the parser: a changed sub-id must show.
    text = MIB_PATH.read_text(encoding="utf-8").replace(
        "::= { vppLbVipEntry 14 }", "::= { vppLbVipEntry 41 }"
    )
    drifted = parse_mib(text)
    assert drifted.objects[VipColumn.NEXT_PACKETS.mib_name].sub_id == 41


# ---------------------------------------------------------------- notifications


def parse_notifications(text: str) -> dict[str, tuple[list[str], str, int]]:
    """Every NOTIFICATION-TYPE: name -> (OBJECTS, parent, sub-id)."""
    found = {}
    for m in re.finditer(
        r"^(\w+)\s+NOTIFICATION-TYPE\b(.*?)::=\s*\{\s*(\w+)\s+(\d+)\s*\}",
        _strip(text),
        re.S | re.M,
    ):
        name, clauses, parent, sub = m.groups()
        objects = re.search(r"OBJECTS\s*\{([^}]*)\}", clauses)
        assert objects is not None, name
        found[name] = (objects.group(1).replace(",", " ").split(), parent, int(sub))
    return found


def test_notifications_match_oids() -> None:
    text = MIB_PATH.read_text(encoding="utf-8")
    found = parse_notifications(text)
    assert found == {
        n.mib_name: ([o.mib_name for o in n.objects], "vppLbNotifications", int(n))
        for n in oids.NotificationType
    }
    # The names the issue fixes, so tools and tests can rely on them.
    assert set(found) == {
        "vppLbVipOperStatusChange",
        "vppLbBackendStateChange",
        "vppLbAgentVppConnectionChange",
    }


def test_notification_objects_are_readable(mib: Mib) -> None:
    for n in oids.NotificationType:
        for obj in n.objects:
            assert mib.objects[obj.mib_name].access in ("read-only", "accessible-for-notify")


def test_every_notification_is_in_the_notification_group() -> None:
    body = _strip(MIB_PATH.read_text(encoding="utf-8"))
    m = re.search(
        r"vppLbNotificationGroup\s+NOTIFICATION-GROUP\s+NOTIFICATIONS\s*\{([^}]*)\}", body
    )
    assert m is not None
    assert set(m.group(1).replace(",", " ").split()) == {n.mib_name for n in oids.NotificationType}
    compliance = re.search(r"vppLbCompliance\s+MODULE-COMPLIANCE(.*?)::=", body, re.S)
    assert compliance is not None and "vppLbNotificationGroup" in compliance.group(1)
