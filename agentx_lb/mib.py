"""The shipped IPNG-VPP-LB-MIB text, and the same module placed at another root.

The MIB file is the source of truth for every OID (`oids.py` is checked against
it). Its root is configuration (`oid_root`), so `agentx-lb mib --oid-root X`
prints the module with only its MODULE-IDENTITY value (and the IMPORTS that
value needs) rewritten: the MIB an NMS loads always matches what the agent
serves. Pure apart from reading the packaged file.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from agentx_lb.oids import DEFAULT_ROOT, Oid, format_oid

MIB_FILE = "IPNG-VPP-LB-MIB.txt"

# Exact text of the shipped module that render_mib() rewrites. If someone edits
# these lines in the MIB, render_mib() fails loudly rather than emit a wrong module.
_DEFAULT_PARENT = "    ::= { netSnmpPlaypen 8298 }\n"
_SMI_IMPORT = "    Gauge32, Unsigned32\n        FROM SNMPv2-SMI\n"
_NET_SNMP_IMPORT = "        FROM INET-ADDRESS-MIB\n    netSnmpPlaypen\n        FROM NET-SNMP-MIB;\n"

_NET_SNMP_PLAYPEN: Oid = (1, 3, 6, 1, 4, 1, 8072, 9999, 9999)
# Named nodes a root may hang below, longest match wins. SNMPv2-SMI exports these.
_SMI_NODES: dict[Oid, str] = {
    (1, 3, 6, 1): "internet",
    (1, 3, 6, 1, 2): "mgmt",
    (1, 3, 6, 1, 2, 1): "mib-2",
    (1, 3, 6, 1, 3): "experimental",
    (1, 3, 6, 1, 4): "private",
    (1, 3, 6, 1, 4, 1): "enterprises",
}
# ASN.1's built-in top-level arcs, usable without an import.
_TOP_ARCS = {0: "ccitt", 1: "iso", 2: "joint-iso-ccitt"}


def mib_text() -> str:
    """The shipped module, for the default root.

    A wheel carries it as package data (`agentx_lb/data/`, hatch force-include);
    a source or editable checkout reads it from `<repo>/mibs/`.
    """
    packaged = importlib.resources.files("agentx_lb").joinpath("data", MIB_FILE)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parent.parent / "mibs" / MIB_FILE
    return source.read_text(encoding="utf-8")


def render_mib(root: Oid) -> str:
    """The module with `ipngVppLbMIB` at `root`; unchanged for the default root.

    The root hangs below the longest known named node (netSnmpPlaypen, or one
    that SNMPv2-SMI exports, or ASN.1's top arcs). Arcs between that node and
    the root get explicit names (`vppLbRootArcN`) because smilint warns about
    implicit nodes. Raises ValueError for a root that is not an OID.
    """
    text = mib_text()
    if root == DEFAULT_ROOT:
        return text
    if len(root) < 2 or root[0] not in _TOP_ARCS or any(not 0 <= a <= 0xFFFFFFFF for a in root):
        raise ValueError(f"not a usable root OID: {format_oid(root)}")
    for needle in (_DEFAULT_PARENT, _SMI_IMPORT, _NET_SNMP_IMPORT):
        if needle not in text:
            raise RuntimeError(f"{MIB_FILE} no longer contains {needle.strip()!r}")

    anchor, anchor_name = _anchor(root)
    if anchor != _NET_SNMP_PLAYPEN:
        text = text.replace(_NET_SNMP_IMPORT, "        FROM INET-ADDRESS-MIB;\n")
    if anchor in _SMI_NODES:
        text = text.replace(
            _SMI_IMPORT, _SMI_IMPORT.replace("Unsigned32\n", f"Unsigned32,\n    {anchor_name}\n")
        )

    arcs = root[len(anchor) :]
    parent = anchor_name
    defs = []
    for n, arc in enumerate(arcs[:-1], start=1):
        defs.append(f"vppLbRootArc{n} OBJECT IDENTIFIER ::= {{ {parent} {arc} }}\n")
        parent = f"vppLbRootArc{n}"
    value = f"    ::= {{ {parent} {arcs[-1]} }}\n"
    if defs:
        # A forward reference from MODULE-IDENTITY is valid ASN.1; MODULE-IDENTITY
        # must stay the first definition, so the arcs follow it.
        value += (
            f"\n-- The arcs above the configured root {format_oid(root)}, named so\n"
            "-- that no node is implicit.\n" + "".join(defs)
        )
    return text.replace(_DEFAULT_PARENT, value)


def _anchor(root: Oid) -> tuple[Oid, str]:
    """The longest named node that is a proper prefix of `root`, and its name."""
    named = {_NET_SNMP_PLAYPEN: "netSnmpPlaypen", **_SMI_NODES}
    best: tuple[Oid, str] = (root[:1], _TOP_ARCS[root[0]])
    for node, name in named.items():
        if len(node) < len(root) and root[: len(node)] == node and len(node) > len(best[0]):
            best = (node, name)
    return best
