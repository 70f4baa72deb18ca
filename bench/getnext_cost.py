"""The agent's own cost per GetNext on a walk (the fast path), in-process, no snmpd.

    .venv/bin/python bench/getnext_cost.py                     # this tree
    .venv/bin/python bench/getnext_cost.py --tree /tmp/old  # another checkout (e.g. `git archive`)
    .venv/bin/python bench/getnext_cost.py --tree A --tree B   # both, interleaved rounds

A walk's GetNext PDUs (what snmpd sends for `snmpbulkwalk`: one varbind each,
starting at the OID answered last) are built once; then `LbAgent.handle()` is
timed over all of them, several rounds. Prints ns per varbind (min and median
over rounds) per tree. Each tree runs in its own child process with that
tree's `agentx_lb` and `tests/snmpfixtures.py` on sys.path; rounds of the
trees alternate, so host noise hits them alike. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import statistics
import struct
import subprocess
import sys
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(n_vips: int, backends: int, rounds: int) -> None:
    """In the child: print one JSON line of ns/varbind per round."""
    from agentx_lb.agentx import LbAgent
    from agentx_lb.oids import DEFAULT_ROOT
    from agentx_lb.table import build_table, encode_oid
    from snmpfixtures import make_snapshot

    snap = make_snapshot(indices=range(1, n_vips + 1), backends_per_vip=backends)
    table = build_table(snap, DEFAULT_ROOT)
    kw: dict[str, Any] = {}
    if "max_age_s" in inspect.signature(LbAgent).parameters:
        kw["max_age_s"] = math.inf  # a static table: its rows never age out here
    agent = LbAgent("/nonexistent/agentx.sock", DEFAULT_ROOT, **kw)
    agent.publish(table)
    root_end = DEFAULT_ROOT[:-1] + (DEFAULT_ROOT[-1] + 1,)
    end = encode_oid(root_end)

    def getnext(start: bytes, pid: int) -> bytes:
        payload = start + end
        return struct.pack("!BBBBIIII", 1, 6, 0x10, 0, 42, 3, pid, len(payload)) + payload

    pdus = []
    start = encode_oid(DEFAULT_ROOT)
    for pid in range(len(table)):
        pdu = getnext(start, pid)
        pdus.append(pdu)
        out = agent.handle(pdu)
        assert out is not None
        vb = out[28:]
        start = vb[4 : 8 + 4 * vb[4]]
    # As the session loop calls it: `handle(pdu)` in the first releases, then
    # `answer(pdu, now)` with one clock read per PDU.
    responder = getattr(agent, "responder", None)
    for _ in range(rounds):
        line = sys.stdin.readline()  # the parent's go: rounds of the trees alternate
        if not line:
            return
        t0 = time.perf_counter_ns()
        if responder is None:
            handle = agent.handle
            for pdu in pdus:
                handle(pdu)
        else:
            answer, clock = responder.answer, time.monotonic
            for pdu in pdus:
                answer(pdu, clock())
        ns = (time.perf_counter_ns() - t0) / len(pdus)
        print(json.dumps({"ns": ns, "varbinds": len(pdus)}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", help="source tree (default: this one)")
    p.add_argument("--vips", type=int, default=1000)
    p.add_argument("--backends", type=int, default=8)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.vips, args.backends, args.rounds)
        return
    trees = [os.path.abspath(t) for t in (args.tree or [REPO])]
    procs = []
    for tree in trees:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join((tree, os.path.join(tree, "tests")))}
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--vips", str(args.vips),
               "--backends", str(args.backends), "--rounds", str(args.rounds)]  # fmt: skip
        procs.append(subprocess.Popen(
            cmd, cwd="/", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ))  # fmt: skip
    results: list[list[float]] = [[] for _ in trees]
    varbinds = 0
    for _ in range(args.rounds):
        for k, proc in enumerate(procs):
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            row = json.loads(proc.stdout.readline())
            results[k].append(row["ns"])
            varbinds = row["varbinds"]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    print(f"GetNext walk of {varbinds} varbinds ({args.vips} VIPs x {args.backends} backends), "
          f"{args.rounds} rounds, the agent's answer only")  # fmt: skip
    print("| tree | min ns/varbind | median ns/varbind |")
    print("|---|---|---|")
    for tree, ns in zip(trees, results, strict=True):
        print(f"| {tree} | {min(ns):.0f} | {statistics.median(ns):.0f} |")


if __name__ == "__main__":
    main()
