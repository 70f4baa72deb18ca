"""net-snmp's own tools by MIB name: every column of every row equals the scenario.

`snmptable`, `snmpwalk` and `snmpbulkwalk` read `vppLbVipTable` and
`vppLbBackendTable` by name (IPNG-VPP-LB-MIB from mibs/, the base modules from
../shared/mibs) through the private snmpd in front of the real agent and the
emulated VPP (test_nms_stack's scenario: an index gap, two VIPs on one prefix,
IPv4 and IPv6, an all-port VIP without backends, a removed backend). The
expected values are the scenario's, written out by hand there, so a wrong
cell, a missing row or a column the MIB does not name fails here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_mib_pysmi import SHARED_MIBS
from test_nms_stack import BACKENDS, VIPS, Stack, running_stack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
MODULE = "IPNG-VPP-LB-MIB"
# -OU: no UNITS suffix; -Ot: TimeTicks as a number (snmptable prints no types);
# -OQ for the walks: `name = value`, no type.
TABLE_OUTPUT = ("-OU", "-Ot")
WALK_OUTPUT = (*TABLE_OUTPUT, "-OQ")
_ADDRESS_COLUMNS = {"vppLbVipAddress"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if not (SHARED_MIBS / "SNMPv2-SMI.txt").is_file():
        pytest.skip("base MIB modules from ../shared/mibs are not here (a clone without ../shared)")
    for tool in ("snmptable", "snmpwalk", "snmpbulkwalk"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: the set-up installs Debian's snmp package")
    with running_stack() as s:
        yield s


def _tool(stack: Stack, tool: str, *args: str) -> str:
    cmd = [tool, "-v2c", "-c", "public", "-M", f"+{REPO / 'mibs'}:{SHARED_MIBS}",
           "-m", f"+{MODULE}", *args]  # fmt: skip
    # MIB names only from -M/-m above: no MIBS/MIBDIRS of the caller's.
    env = {k: v for k, v in os.environ.items() if k not in ("MIBS", "MIBDIRS")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 0 and not proc.stderr, (cmd, proc.stderr)
    return proc.stdout


def _value(column: str, text: str) -> object:
    """A printed cell as the scenario writes it."""
    text = text.strip()
    if column in _ADDRESS_COLUMNS:
        # InetAddress has no DISPLAY-HINT: printed as hex octets or as a quoted string.
        raw = text.strip('"')
        if re.fullmatch(r"([0-9A-Fa-f]{2} ?)+", raw):
            return str(ipaddress.ip_address(bytes.fromhex(raw)))
        return str(ipaddress.ip_address(raw.encode("latin-1")))
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text.strip('"')


def _vip_expected() -> dict[int, dict[str, object]]:
    return {i: dict(row) for i, row in VIPS.items()}


def _snmptable(stack: Stack, table: str) -> list[tuple[str, dict[str, object]]]:
    """(printed index, {column: value}) per row of `snmptable` by MIB name."""
    out = _tool(stack, "snmptable", *TABLE_OUTPUT, "-Cf", "|", "-Ci",
                stack.address, f"{MODULE}::{table}")  # fmt: skip
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0] == f"SNMP table: {MODULE}::{table}"
    header = [c.strip() for c in lines[1].split("|")]
    assert header[0] == "index"
    rows = []
    for line in lines[2:]:
        index, *cells = line.split("|")
        rows.append(
            (index.strip(), {c: _value(c, v) for c, v in zip(header[1:], cells, strict=True)})
        )
    return rows


def test_snmptable_vip_table_every_cell(stack: Stack) -> None:
    got = {int(index): row for index, row in _snmptable(stack, "vppLbVipTable")}
    assert got == _vip_expected()


def test_snmptable_backend_table_every_cell(stack: Stack) -> None:
    got: dict[tuple[int, str], dict[str, object]] = {}
    for index, row in _snmptable(stack, "vppLbBackendTable"):
        # The index as net-snmp prints it through the MIB: vipIndex.family."address"
        m = re.fullmatch(r'(\d+)\.(ipv4|ipv6)\."(.*)"', index)
        assert m is not None, index
        address = m.group(3)
        if m.group(2) == "ipv6":  # InetAddressIPv6 index: colon-separated octets
            address = str(ipaddress.ip_address(bytes.fromhex(address.replace(":", ""))))
        got[(int(m.group(1)), address)] = row
    assert got == BACKENDS


@pytest.mark.parametrize("tool", ["snmpwalk", "snmpbulkwalk"])
def test_walk_by_name_vip_table_every_cell(stack: Stack, tool: str) -> None:
    out = _tool(stack, tool, *WALK_OUTPUT, stack.address, f"{MODULE}::vppLbVipTable")
    got: dict[int, dict[str, object]] = {}
    for line in out.splitlines():
        m = re.fullmatch(rf"{MODULE}::(\w+)\.(\d+) = (.*)", line)
        assert m is not None, line  # every varbind resolves to a named column
        got.setdefault(int(m.group(2)), {})[m.group(1)] = _value(m.group(1), m.group(3))
    assert got == _vip_expected()
