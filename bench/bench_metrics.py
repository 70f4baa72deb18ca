"""/metrics at scale (bench/README.md): encoding time, response size, agent CPU.

    .venv/bin/python bench/bench_metrics.py                          # 10,000 VIPs x 8 backends
    .venv/bin/python bench/bench_metrics.py --vips 100 --reps 3 --agent-s 0   # quick

The rows come from one real scrape of the emulated VPP of bench_scrape (8
backends per VIP, 2 workers): VppSource.read() + reduce(), the snapshot the
agent would publish. Measured, min and median over `--reps`:

* `encode_table()` (the VIP and backend text) and gzip level 1, wall and CPU
  ms; body size, series count and the gzip size Prometheus receives (it asks
  for gzip); for comparison, the CPU of the same samples through
  prometheus_client's `generate_latest()`;
* HTTP GET of /metrics from `MetricsServer` on loopback (the server the agent
  runs), plain and gzip, a new snapshot before each request (as with a scrape
  every 15 s: nothing cached): wall ms and bytes on the wire; and a second GET
  of the same snapshot (a second Prometheus server: cached table text);
* with `--agent-s S` (default 60): the shipped agent (`python -m agentx_lb run
  --interval 5 --metrics-listen ...`, private snmpd) for S seconds without
  /metrics requests, then S seconds with a gzip GET every 15 s (Prometheus'
  default scrape interval): its CPU as % of one core in each phase.

Figures only, no targets.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # bench/run.py: the emulator child, processes, CPU of a pid

SCRAPE_EVERY_S = 15.0


def snapshot_of(emu: tuple) -> Any:
    from agentx_lb.model import Health, Snapshot
    from agentx_lb.reduce import reduce
    from agentx_lb.vpp.source import VppSource

    stats_sock, api_sock, api_dir, _ = emu
    src = VppSource(stats_sock, api_sock, api_dir, timeout_s=30.0)
    try:
        t0 = time.perf_counter()
        raw = src.read()
        duration_ms = int((time.perf_counter() - t0) * 1000)
    finally:
        src.close()
    rows, _ = reduce(raw, None, 0)
    health = Health(
        vpp_connected=True,
        vpp_version=raw.vpp_version,
        vip_count=len(rows),
        last_scrape_duration_ms=duration_ms,
    )
    return Snapshot(rows=rows, settings=raw.settings, health=health)


def _stats(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def _get(port: int, gzipped: bool) -> tuple[float, int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    t0 = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    wall = (time.perf_counter() - t0) * 1000
    conn.close()
    assert resp.status == 200, resp.status
    assert (resp.getheader("Content-Encoding") == "gzip") == gzipped
    return wall, len(body), body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(fn: Callable[[], Any], reps: int) -> tuple[Any, list[float], list[float]]:
    walls, cpus, result = [], [], None
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append((time.perf_counter() - w) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    return result, walls, cpus


def encode_figures(snap: Any, reps: int) -> list[tuple[str, str]]:
    import dataclasses

    from prometheus_client import generate_latest

    from agentx_lb.metrics import MetricsServer, build_registry, encode_table, zlib_gzip

    text, walls, cpus = _timed(lambda: encode_table(snap).encode(), reps)
    packed, gz_walls, _gz_cpus = _timed(lambda: zlib_gzip(text), reps)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    rows = [
        ("series of the VIP and backend tables", f"{series:,}"),
        ("body MB (plain text)", f"{len(text) / 1e6:.2f}"),
        ("body MB (gzip level 1, what Prometheus receives)", f"{len(packed) / 1e6:.2f}"),
        ("encode_table ms, min / median", "{:,.0f} / {:,.0f}".format(*_stats(walls))),
        ("encode_table CPU ms, median", f"{statistics.median(cpus):,.0f}"),
        ("gzip level 1 ms, min / median", "{:,.0f} / {:,.0f}".format(*_stats(gz_walls))),
    ]
    reference = build_registry(lambda: snap)
    _, _ref_walls, ref_cpus = _timed(lambda: generate_latest(reference), max(1, min(reps, 2)))
    rows.append(
        (
            "for comparison: the same through prometheus_client generate_latest, CPU ms",
            f"{statistics.median(ref_cpus):,.0f}",
        )
    )
    # Each request sees a new snapshot (a new scrape since the last request),
    # so nothing is cached: the cost of a Prometheus scrape every 15 s.
    current = [snap]
    server = MetricsServer("127.0.0.1:0")
    server.start(lambda: current[0])
    try:
        port = server.address[1]
        for gzipped in (False, True):
            label = "gzip" if gzipped else "plain"
            results = []
            for _ in range(reps):
                current[0] = dataclasses.replace(snap)
                results.append(_get(port, gzipped))
            rows.append(
                (
                    f"HTTP GET /metrics ({label}), new snapshot, ms min / median",
                    "{:,.0f} / {:,.0f}".format(*_stats([r[0] for r in results])),
                )
            )
            rows.append((f"HTTP GET /metrics ({label}) bytes", f"{results[-1][1]:,}"))
        cached = [_get(port, True)[0] for _ in range(reps)]
        rows.append(
            (
                "HTTP GET /metrics (gzip), same snapshot again (a 2nd Prometheus), ms median",
                f"{statistics.median(cached):,.0f}",
            )
        )
    finally:
        server.close()
    return rows


def agent_cpu(
    emu: tuple, n_vips: int, seconds: float, log: Callable[[str], None]
) -> list[tuple[str, str]]:
    from agentx_lb.snmpd import PrivateSnmpd

    work = tempfile.mkdtemp(prefix="axlb-metrics-", dir="/tmp")
    os.mkdir(os.path.join(work, "snmpd"), 0o700)
    snmpd = PrivateSnmpd(os.path.join(work, "snmpd"))
    snmpd.start()
    port = _free_port()
    cmd = run.agent_cmd(emu, snmpd.agentx_socket, work, 5, "--metrics-listen", f"127.0.0.1:{port}")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=run.REPO,
    )
    try:
        want = f"agentx_lb_vips {float(n_vips)}".encode()
        deadline = time.monotonic() + 180
        while True:  # serving the whole table
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited rc={proc.returncode}")
            try:
                if want in _get(port, False)[2]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("agent not serving /metrics after 180 s")
            time.sleep(1)
        log(f"agent serving {n_vips:,} VIPs; {seconds:g} s without /metrics requests")
        c0, t0 = run.cpu_s(proc.pid), time.monotonic()
        time.sleep(seconds)
        idle = (run.cpu_s(proc.pid) - c0) / (time.monotonic() - t0) * 100
        log(f"{seconds:g} s with a gzip GET of /metrics every {SCRAPE_EVERY_S:g} s")
        c0, t0 = run.cpu_s(proc.pid), time.monotonic()
        gets = []
        next_at = t0
        while time.monotonic() - t0 < seconds:
            if time.monotonic() >= next_at:
                gets.append(_get(port, True)[0])
                next_at += SCRAPE_EVERY_S
            time.sleep(0.2)
        scraped = (run.cpu_s(proc.pid) - c0) / (time.monotonic() - t0) * 100
    finally:
        run.stop_proc(proc)
        snmpd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return [
        ("agent CPU % of a core, interval 5 s, no /metrics requests", f"{idle:.2f}"),
        (
            f"agent CPU % of a core, interval 5 s, /metrics every {SCRAPE_EVERY_S:g} s (gzip)",
            f"{scraped:.2f}",
        ),
        ("  of which /metrics, % of a core (difference)", f"{scraped - idle:.2f}"),
        (
            f"  GET /metrics from the agent while it scrapes VPP, ms median of {len(gets)}",
            f"{statistics.median(gets):,.0f}",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vips", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument(
        "--agent-s",
        type=float,
        default=60.0,
        help="seconds per agent CPU phase (0: skip the agent)",
    )
    a = p.parse_args(argv)

    def log(msg: str) -> None:
        print(f"# {msg}", file=sys.stderr, flush=True)

    log(f"emulator with {a.vips:,} VIPs x 8 backends")
    proc, conn, emu = run._emulator(a.vips)
    try:
        snap = snapshot_of(emu)
        assert len(snap.rows) == a.vips, len(snap.rows)
        rows = encode_figures(snap, a.reps)
        if a.agent_s > 0:
            rows += agent_cpu(emu, a.vips, a.agent_s, log)
    finally:
        conn.send("stop")
        proc.join(30)
    print(f"/metrics at {a.vips:,} VIPs x 8 backends ({a.reps} reps)\n")
    print("| figure | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
