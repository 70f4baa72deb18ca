"""The first complete table at 10,000 VIPs, and the agent's CPU when some VPP replies are late.

Against the emulated VPP (2 workers, 8 backends per VIP). Prints one line per figure:

* resolve_serial_s: N `ip_route_lookup`s one round trip each (vpp_papi as published: what
  the agent did before)
* resolve_pipelined_s: the same N through `ApiClient.call_many` (what it does now)
* dump_first_read_s / dump_steady_read_s: `VppSource.read()` cold (connect, CLI, stats, every
  route) and the next one (what `agentx-lb dump` and a steady scrape cost)
* agent_first_full_table_s: `agentx-lb run` start -> every row of the VIP table served with
  its route columns, through a private snmpd, with every Kth `ip_route_lookup` answered late
* agent_cpu_pct: the agent's CPU (% of one core) over the next `--seconds` at `--interval`,
  late replies still on, and how many connections it made to VPP meanwhile

    .venv/bin/python bench/bench_routes.py [--vips 10000] [--late-every 2500] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from agentharness import VIP_ENTRY, AgentProc, wait_until
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.oids import VipColumn
from agentx_lb.snmpd import PrivateSnmpd, SnmpError
from agentx_lb.vpp.papi import ApiClient
from agentx_lb.vpp.source import VppSource


def report(name: str, value: float, unit: str) -> None:
    print(f"{name:28s} {value:10.3f} {unit}", flush=True)


def populate(vpp: EmulatedVpp, n: int, backends: int) -> list[str]:
    prefixes = []
    for i in range(n):
        prefix = f"10.{100 + (i >> 16)}.{i >> 8 & 255}.{i & 255}/32"
        index = vpp.add_vip(prefix, protocol=6, port=80)
        for b in range(backends):
            vpp.add_backend(index, f"172.16.{b}.{1 + i % 250}")
        vpp.traffic(index, thread=1 + i % 2, first_packets=1 + i, next_packets=2 * i)
        prefixes.append(prefix)
    return prefixes


def resolve_options(vpp: EmulatedVpp, prefixes: list[str]) -> None:
    client = ApiClient(server_address=vpp.api_socket, apifiles=vpp.api_files, read_timeout=5)
    client.connect("bench")
    try:
        requests = [{"table_id": 0, "exact": 1, "prefix": p} for p in prefixes]
        t0 = time.monotonic()
        for request in requests:
            client.api.ip_route_lookup(**request)
        report("resolve_serial_s", time.monotonic() - t0, "s")
        t0 = time.monotonic()
        replies, sent = client.call_many("ip_route_lookup", requests, 5.0)
        report("resolve_pipelined_s", time.monotonic() - t0, "s")
        assert sent == len(requests) and all(r is not None for r in replies)
    finally:
        client.disconnect()


def reads(vpp: EmulatedVpp) -> None:
    source = VppSource(vpp.stats_socket, vpp.api_socket, vpp.api_dir)
    try:
        t0 = time.monotonic()
        source.read()
        report("dump_first_read_s", time.monotonic() - t0, "s")
        t0 = time.monotonic()
        source.read()
        report("dump_steady_read_s", time.monotonic() - t0, "s")
    finally:
        source.close()


def route_cells(snmpd: PrivateSnmpd) -> int:
    base = f"{VIP_ENTRY}.{int(VipColumn.ROUTE_PACKETS)}."
    try:
        out = snmpd.bulkwalk(base.rstrip("."), reps=50)
    except SnmpError:
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("." + base))


def agent_figures(vpp: EmulatedVpp, n: int, args: argparse.Namespace) -> None:
    work = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    snmpd = PrivateSnmpd(work)
    snmpd.start()
    vpp.faults.late_every = {"ip_route_lookup": args.late_every}
    vpp.faults.late_s = 1.5  # past the agent's 1 s timeout
    before = vpp.api_connections
    agent = AgentProc.for_vpp(
        str(vpp.run_dir), snmpd.agentx_socket, work,
        interval_s=args.interval, vpp_timeout_s=1.0, log_level="info",
    )  # fmt: skip
    try:
        wait_until(lambda: route_cells(snmpd) == n, 300.0, step_s=0.5)
        report("agent_first_full_table_s", time.monotonic() - agent.started, "s")
        cpu = agent.cpu_fraction(args.seconds)
        report("agent_cpu_pct", 100 * cpu, f"% of a core at interval {args.interval:g} s")
        report("agent_vpp_connections", vpp.api_connections - before, "")
        report("agent_late_lookups_logged", agent.count("route lookups late"), "scrapes")
    finally:
        agent.kill()
        snmpd.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vips", type=int, default=10_000)
    parser.add_argument("--backends", type=int, default=8)
    parser.add_argument("--late-every", type=int, default=2500)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    run_dir = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    vpp = EmulatedVpp(run_dir, workers=2)
    vpp.start()
    try:
        prefixes = populate(vpp, args.vips, args.backends)
        print(f"# {args.vips} VIPs x {args.backends} backends, emulated VPP", flush=True)
        resolve_options(vpp, prefixes)
        reads(vpp)
        agent_figures(vpp, args.vips, args)
    finally:
        vpp.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
