"""Scrape-cycle cost against the emulated VPP, by size, next to the vpp_papi floor.

    .venv/bin/python bench/bench_scrape.py [--sizes 10,1000,10000] [--repeat 5] [--quick]

The emulator runs in a child process, so the CPU figures are this process's
alone (vpp_papi's reader thread included). Each size: 2 workers, 8 backends
per VIP. Before every measured cycle the emulator moves traffic on every VIP
(so the counter lines of `show lb vips verbose` change, as on a live VPP) and
changes the flow count of `--churn` of the backends.

One cycle = `VppSource.read()` (VPP calls, parse) + `reduce()` + `build_table()`,
with the agent's memory habits around them (memory.py: no automatic GC pass
during the cycle, survivors frozen and free heap returned after it).
The floor = the bare vpp_papi calls the cycle needs (one `cli_inband` of the
same text, one `VPPStats.dump` of the five paths), with nothing done to their
results. Cycle and floor are measured interleaved in one run; the table shows
min and median over `--repeat` rounds, the cycle/floor ratios and the share of
one core the cycle would take at a 5 s interval.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from vpp_papi import VPPApiClient
from vpp_papi.vpp_stats import VPPStats

from agentx_lb.memory import freeze_survivors, gc_paused, release_free_heap
from agentx_lb.model import LB_COUNTER_NAMES, CounterState, Health, Snapshot
from agentx_lb.oids import DEFAULT_ROOT
from agentx_lb.reduce import reduce
from agentx_lb.table import build_table
from agentx_lb.vpp.source import ROUTE_TO, VppSource

_BACKENDS = 8
_INTERVAL_MS = 5000.0


def _serve(n_vips: int, churn: float, conn: Connection) -> None:
    from agentx_lb.emulator import EmulatedVpp

    run_dir = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    emu = EmulatedVpp(run_dir, workers=2, segment_size=256 * 1024 * 1024)
    emu.start()
    try:
        vips: list[tuple[int, list[str]]] = []
        for i in range(n_vips):
            a, b = divmod(i, 256)
            v = emu.add_vip(f"198.18.{a}.{b}/32", protocol=6, port=80)
            backends = [f"10.{a}.{b}.{k + 1}" for k in range(_BACKENDS)]
            for address in backends:
                emu.add_backend(v, address)
            emu.traffic(v, thread=1 + i % 2, next_packets=i + 1, first_packets=1)
            vips.append((v, backends))
        conn.send((emu.stats_socket, emu.api_socket, emu.api_dir, emu.api_files))
        every = max(1, round(1 / churn)) if churn > 0 else 0
        tick = 0
        while conn.recv() == "tick":  # "stop" ends
            tick += 1
            k = 0
            for v, backends in vips:
                emu.traffic(v, thread=1 + tick % 2, next_packets=3, first_packets=1)
                for address in backends:
                    k += 1
                    if every and k % every == tick % every:
                        emu.set_flows(v, address, tick)
            conn.send("ok")
    finally:
        emu.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _after_tick(tick: int) -> None:
    freeze_survivors(tick)
    release_free_heap()


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000


def _bench(n_vips: int, repeat: int, churn: float) -> tuple[list[dict[str, float]], float]:
    parent, child = mp.Pipe()
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_serve, args=(n_vips, churn, child), daemon=True)
    proc.start()
    rounds: list[dict[str, float]] = []
    try:
        stats_sock, api_sock, api_dir, api_files = parent.recv()
        src = VppSource(stats_sock, api_sock, api_dir, timeout_s=30.0)
        client = VPPApiClient(apifiles=api_files, server_address=api_sock, read_timeout=30)
        client.connect("bench")
        stats = VPPStats(socketname=stats_sock)
        stats.connect()
        names = [*LB_COUNTER_NAMES, ROUTE_TO]
        raw, first_ms, _ = _timed(src.read)  # connect, version, route lookups
        assert len(raw.vips) == n_vips, (len(raw.vips), raw.problems[:3])
        rows, state = reduce(raw, None, 0)
        # The agent builds each table from the previous one (unchanged columns shared).
        table = build_table(Snapshot(rows, raw.settings, Health(vpp_connected=True)), DEFAULT_ROOT)
        for i in range(repeat):
            # A fresh change before each of the two, so neither finds the
            # emulator's text cache warm from the other.
            parent.send("tick")
            parent.recv()
            _, floor_w, floor_c = _timed(
                lambda: (client.api.cli_inband(cmd="show lb vips verbose"), stats.dump(names))
            )
            parent.send("tick")
            parent.recv()
            # As the agent's tick (pipeline.py): no automatic GC pass during
            # it; the survivors frozen and the free heap returned after it.
            with gc_paused():
                raw, read_w, read_c = _timed(src.read)
                (rows, state), red_w, red_c = _timed(partial(reduce, raw, state, i + 1))
                snapshot = Snapshot(rows, raw.settings, Health(vpp_connected=True))
                table, tab_w, tab_c = _timed(
                    partial(build_table, snapshot, DEFAULT_ROOT, previous=table)
                )
            _, after_w, after_c = _timed(partial(_after_tick, i + 1))
            t = raw.timings_ms
            rounds.append(
                {
                    "vpp": t["cli"] + t["route_lookup"] + t["stats"],
                    "parse": t["parse"],
                    "reduce": red_w,
                    "table": tab_w,
                    "cycle": read_w + red_w + tab_w + after_w,
                    "cycle_cpu": read_c + red_c + tab_c + after_c,
                    "floor": floor_w,
                    "floor_cpu": floor_c,
                }
            )
        assert isinstance(state, CounterState)
        stats.disconnect()
        client.disconnect()
        src.close()
    finally:
        parent.send("stop")
        proc.join(60)
    return rounds, first_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000", help="VIP counts, comma separated")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds per size (>= 1)")
    parser.add_argument(
        "--churn",
        type=float,
        default=0.1,
        help="share of backends whose flow count changes per cycle",
    )
    parser.add_argument("--quick", action="store_true", help="size 10 only (CI)")
    args = parser.parse_args()
    sizes = [10] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeat = max(1, args.repeat)
    phases = ["vpp", "parse", "reduce", "table", "cycle", "cycle_cpu", "floor", "floor_cpu"]
    head = (
        f"{'VIPs':>6} {'stat':>4} {'first':>8}"
        + "".join(f"{c:>10}" for c in phases)
        + f"{'wall/fl':>9}{'cpu/fl':>8}{'%core@5s':>10}"
    )
    print(f"ms; min and median of {repeat} rounds; churn {args.churn:g}")
    print(head)
    for size in sizes:
        rounds, first = _bench(size, repeat, args.churn)
        for label, agg in (("min", min), ("med", statistics.median)):
            r = {k: agg(x[k] for x in rounds) for k in phases}
            print(
                f"{size:>6} {label:>4} {first:>8.1f}"
                + "".join(f"{r[c]:>10.1f}" for c in phases)
                + f"{r['cycle'] / r['floor']:>9.2f}{r['cycle_cpu'] / r['floor_cpu']:>8.2f}"
                + f"{100 * r['cycle_cpu'] / _INTERVAL_MS:>9.2f}%",
                flush=True,
            )


if __name__ == "__main__":
    main()
