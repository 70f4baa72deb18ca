"""Scrape cost: VppSource.read + reduce against the emulated VPP, by size.

    .venv/bin/python bench/bench_scrape.py [--sizes 10,1000,10000] [--repeat 5]

The emulator runs in a child process so that the CPU figures are the agent's
alone (vpp_papi's reader thread included). Each size: 2 workers, 8 backends per
VIP, traffic on every VIP. Printed per size: the first read (connect + route
lookups), then the median of steady-state reads split by phase (wall ms), the
process CPU ms of one read, reduce's wall/CPU ms, and the floor: a bare
vpp_papi `cli_inband` of the same text plus one stats dump of the five paths,
with nothing done to the results.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

from vpp_papi import VPPApiClient
from vpp_papi.vpp_stats import VPPStats

from agentx_lb.reduce import LB_COUNTER_NAMES, reduce
from agentx_lb.vpp.source import ROUTE_TO, VppSource


def _serve(n_vips: int, conn: Connection) -> None:
    from agentx_lb.emulator import EmulatedVpp

    run_dir = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    emu = EmulatedVpp(run_dir, workers=2, segment_size=256 * 1024 * 1024)
    emu.start()
    try:
        for i in range(n_vips):
            a, b = divmod(i, 256)
            v = emu.add_vip(f"198.18.{a}.{b}/32", protocol=6, port=80)
            for k in range(8):
                emu.add_backend(v, f"10.{a}.{b}.{k + 1}")
            emu.traffic(v, thread=1 + i % 2, next_packets=i + 1, first_packets=1)
        conn.send((emu.stats_socket, emu.api_socket, emu.api_dir, emu.api_files))
        conn.recv()  # until the parent is done
    finally:
        emu.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _timed(fn: Any) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000


def _bench(n_vips: int, repeat: int) -> dict[str, float]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(n_vips, child), daemon=True)
    proc.start()
    try:
        stats_sock, api_sock, api_dir, api_files = parent.recv()
        src = VppSource(stats_sock, api_sock, api_dir, timeout_s=30.0)
        raw, first_ms, _ = _timed(src.read)
        assert len(raw.vips) == n_vips, (len(raw.vips), raw.problems[:3])
        reads: list[dict[str, float]] = []
        for _ in range(repeat):
            raw, wall, cpu = _timed(src.read)
            _, r_wall, r_cpu = _timed(lambda raw=raw: reduce(raw, None, 0))
            reads.append({**raw.timings_ms, "read": wall, "read_cpu": cpu,
                          "reduce": r_wall, "reduce_cpu": r_cpu})
        src.close()

        client = VPPApiClient(apifiles=api_files, server_address=api_sock, read_timeout=30)
        client.connect("bench")
        stats = VPPStats(socketname=stats_sock)
        stats.connect()
        names = [*LB_COUNTER_NAMES, ROUTE_TO]
        floors = []
        for _ in range(repeat):
            _, f_wall, f_cpu = _timed(lambda: (
                client.api.cli_inband(cmd="show lb vips verbose"), stats.dump(names)))
            floors.append({"floor": f_wall, "floor_cpu": f_cpu})
        stats.disconnect()
        client.disconnect()
    finally:
        parent.send("stop")
        proc.join(60)
    keys = [*reads[0], "floor", "floor_cpu"]
    rows = reads + floors
    out = {k: statistics.median(r[k] for r in rows if k in r) for k in keys}
    out["first"] = first_ms
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cols = ["first", "cli", "route_lookup", "stats", "read", "read_cpu", "reduce",
            "reduce_cpu", "floor", "floor_cpu"]
    print("VIPs    " + "".join(f"{c:>13}" for c in cols) + "   (ms, median)")  # noqa: T201
    for size in (int(s) for s in args.sizes.split(",")):
        r = _bench(size, args.repeat)
        print(f"{size:<8}" + "".join(f"{r[c]:>13.1f}" for c in cols), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
