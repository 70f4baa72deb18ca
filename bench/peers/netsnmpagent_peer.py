"""Peer: python-netsnmpagent (net-snmp's C table_data_set helper) serving the VIP table.

    python bench/peers/netsnmpagent_peer.py CELLS_FILE AGENTX_SOCKET

netsnmpagent 0.6.0 from PyPI (ctypes over Debian's libnetsnmpagent.so.40) is a
benchmark-only dependency: `bench/run.py` installs it into the venv when it is
missing. The table has the same index (Unsigned32), columns and SNMP types as
the agent's vppLbVipTable; the data live in net-snmp's C structures and
`agent_check_and_process()` answers snmpd. Prints "ready" and serves until
killed.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

import netsnmpagent

# AgentX wire type -> netsnmpagent constructor name.
_KINDS = {2: "Integer32", 4: "OctetString", 66: "Unsigned32", 67: "TimeTicks", 70: "Counter64"}


def main() -> None:
    cells_file, socket_path = sys.argv[1], sys.argv[2]
    with open(cells_file, "rb") as f:
        data = pickle.load(f)
    # Inside the bench's work dir, which the bench removes (we are killed, not stopped).
    persist = os.path.join(os.path.dirname(os.path.abspath(cells_file)), "netsnmpagent")
    os.makedirs(persist, exist_ok=True)
    agent = netsnmpagent.netsnmpAgent(
        AgentName="bench-netsnmpagent",
        MasterSocket=socket_path,
        PersistenceDir=persist,
        UseMIBFiles=False,
    )
    col_types: dict[int, int] = {}
    for col, _, typ, _ in data["cells"]:
        col_types.setdefault(col, typ)
    table = agent.Table(
        oidstr=data["table_oid"],  # net-snmp adds the entry (.1)
        indexes=[agent.Unsigned32()],
        columns=[(col, getattr(agent, _KINDS[typ])()) for col, typ in sorted(col_types.items())],
        extendable=False,
    )
    rows: dict[int, Any] = {}  # netsnmpagent table rows (untyped upstream)
    for col, idx, typ, value in data["cells"]:
        row = rows.get(idx)
        if row is None:
            row = rows[idx] = table.addRow([agent.Unsigned32(idx)])
        row.setRowCell(col, getattr(agent, _KINDS[typ])(value))
    agent.start()
    print("ready", flush=True)
    while True:
        agent.check_and_process()


if __name__ == "__main__":
    main()
