"""Walk speed: `snmpbulkwalk -Cr25` of the VIP table through a private snmpd.

Compares agentx-lb's LbAgent with pyagentx3 0.1.4 as published serving the
same cells (each in its own process, so RSS is the agent's own). Every walk is
capped at 120 s. Prints one table: min/median wall of 3 walks, varbinds/s at
the median, snmpd CPU seconds during the median walk, agent RSS.

    .venv/bin/python bench/bench_walk.py --sizes 100,1000,10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

CAP_S = 120


def snapshot(rows: int):  # noqa: ANN201
    from snmpfixtures import make_snapshot

    return make_snapshot(indices=range(1, rows + 1), backends_per_vip=8)


def serve(kind: str, socket_path: str, rows: int) -> None:
    """Child process: serve the table until stdin closes."""
    from agentx_lb.oids import DEFAULT_ROOT, format_oid
    from agentx_lb.table import build_table

    table = build_table(snapshot(rows), DEFAULT_ROOT)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    if kind == "ours":
        from agentx_lb.agentx import LbAgent

        agent = LbAgent(socket_path, DEFAULT_ROOT)
        agent.publish(table)
        print("ready", flush=True)
        agent.run(stop)
        return
    # pyagentx3 as published: one Updater setting every cell of the VIP table.
    import pyagentx3
    from pyagentx3.pdu import PDU

    base = format_oid(DEFAULT_ROOT + (1, 2))
    cells = []
    for vb in table.varbinds:
        pdu = PDU()
        pdu.set_decode_buf(vb)
        v, _ = pdu.decode_value()
        if v["name"].startswith(base + "."):
            cells.append((v["name"][len(base) + 1 :], v["type"], v["data"]))

    class Up(pyagentx3.Updater):
        def update(self) -> None:
            for name, typ, data in cells:
                self._data[name] = {"name": name, "type": typ, "value": data}

    class Agent(pyagentx3.Agent):
        def setup(self) -> None:
            self.register(base, Up, freq=3600)

    print("ready", flush=True)
    Agent(socket_path=socket_path).start()


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# Numeric OIDs only: keep the client tools from loading MIBs (it dominates their CPU).
CLIENT_ENV = {**os.environ, "MIBS": "", "MIBDIRS": "/dev/null"}


def measure(kind: str, rows: int) -> str:
    from agentx_lb.oids import DEFAULT_ROOT, format_oid
    from agentx_lb.snmpd import PrivateSnmpd

    work = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    snmpd = PrivateSnmpd(work)
    snmpd.start()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--socket", snmpd.agentx_socket,
         "--rows", str(rows)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        child.stdout.readline()
        vip = format_oid(DEFAULT_ROOT + (1, 2))
        first = format_oid(DEFAULT_ROOT + (1, 2, 1, 2, 1))
        deadline = time.monotonic() + 30
        while "STRING" not in subprocess.run(
            ["snmpget", "-v2c", "-c", "public", "-On", snmpd.address, first],
            capture_output=True, text=True, check=False, env=CLIENT_ENV).stdout:
            if time.monotonic() > deadline:
                return f"| {kind} | {rows} | did not register |"
            time.sleep(0.2)
        walls, cpus, n = [], [], 0
        for _ in range(3):
            c0, t0 = cpu_s(snmpd.pid), time.perf_counter()
            try:
                out = subprocess.run(
                    ["snmpbulkwalk", "-v2c", "-c", "public", "-t", "5", "-r", "2", "-On",
                     "-Cr25", snmpd.address, vip],
                    capture_output=True, text=True, timeout=CAP_S, check=False, env=CLIENT_ENV).stdout
            except subprocess.TimeoutExpired:
                walls.append(float("inf"))
                cpus.append(cpu_s(snmpd.pid) - c0)
                continue
            walls.append(time.perf_counter() - t0)
            cpus.append(cpu_s(snmpd.pid) - c0)
            n = len(out.splitlines())
        med = statistics.median(walls)
        rate = f"{n / med:,.0f}" if med != float("inf") else f"capped at {CAP_S} s"
        return (f"| {kind} | {rows:,} | {n:,} | {min(walls):.2f} / {med:.2f} | {rate} | "
                f"{statistics.median(cpus):.2f} | {rss_mb(child.pid):.1f} |")
    finally:
        child.stdin.close()
        try:
            child.wait(3)
        except subprocess.TimeoutExpired:
            child.kill()  # pyagentx3's Agent.start() never returns on its own
            child.wait()
        snmpd.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--agents", default="ours,pyagentx3")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--socket", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a.serve, a.socket, a.rows)
        return
    print("| agent | VIPs | varbinds | wall s min / median | varbinds/s | snmpd CPU s | agent RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for rows in (int(s) for s in a.sizes.split(",")):
        for kind in a.agents.split(","):
            print(measure(kind, rows), flush=True)


if __name__ == "__main__":
    main()
