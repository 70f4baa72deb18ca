"""Bulk walk of vppLbBackendTable through a private snmpd (bench/README.md).

    .venv/bin/python bench/bench_backends.py                 # 1,000 VIPs x 8 backends, 5 walks
    .venv/bin/python bench/bench_backends.py --vips 100 --reps 3

The shipped agent (`python -m agentx_lb run`, interval 3600 s: one scrape, then
a static table) scrapes the emulated VPP of bench_scrape (8 backends per VIP,
2 workers) and is walked with `snmpbulkwalk -v2c -Cr25` of the backend table;
each walk is checked for the exact varbind count and strictly increasing OIDs
(bench/run.py's `walk`). Prints wall min/median, varbinds/s, snmpd and agent
CPU of the median walk. Figures only, no targets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # bench/run.py: processes, walk, summarise


def backend_varbinds(emu: tuple) -> tuple[str, int, str]:
    """(backend table OID, varbinds in it, one of its cells) from one scrape of `emu`."""
    from pyagentx3.pdu import PDU

    from agentx_lb.oids import BACKEND_ENTRY, DEFAULT_ROOT, format_oid

    table = run.scraped_table(emu)
    entry = format_oid(DEFAULT_ROOT + BACKEND_ENTRY) + "."
    names = []
    for vb in table.varbinds:
        pdu = PDU()
        pdu.set_decode_buf(vb)
        name = pdu.decode_value()[0]["name"]
        if name.startswith(entry):
            names.append(name)
    return format_oid(DEFAULT_ROOT + BACKEND_ENTRY[:-1]), len(names), names[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vips", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args(argv)

    from agentx_lb.snmpd import PrivateSnmpd

    work = tempfile.mkdtemp(prefix="axlb-backends-", dir="/tmp")
    snmpd = PrivateSnmpd(work)
    emu_proc, emu_conn, emu = run._emulator(a.vips)
    served = run.Served("ours", snmpd)
    try:
        table_oid, expected, first = backend_varbinds(emu)
        snmpd.start()
        served.proc = run.start_agent("ours", snmpd, work, emu, "", 3600)
        run.wait_serving(snmpd, first, served.proc)
        for _ in range(a.reps):
            run.walk(served, table_oid, expected)
        s = run.summarise(served)
    finally:
        run.stop_proc(served.proc)
        snmpd.stop()
        emu_conn.send("stop")
        emu_proc.join(60)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"vppLbBackendTable, {a.vips:,} VIPs x 8 backends: {expected:,} varbinds, "
        f"{a.reps} walks (snmpbulkwalk -Cr25)"
    )
    print(
        f"  wall s min {s['wall_min']:.3f}  median {s['wall_median']:.3f}  "
        f"varbinds/s {s['vb_per_s']:,.0f}  snmpd CPU s {s['snmpd_cpu']:.3f}  "
        f"agent CPU s {s['agent_cpu']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
