"""Where a bulk walk's wall time goes: agent, snmpd, client CPU and idle, per size.

    .venv/bin/python bench/profile_walk.py                        # 100 and 10,000 VIPs, 5 walks
    .venv/bin/python bench/profile_walk.py --agents ours,trivial --reps 7
    .venv/bin/python bench/profile_walk.py --switch-s 0.005  # agent GIL interval (default 0.0005)
    .venv/bin/python bench/profile_walk.py --pyspy /tmp/spy       # + py-spy profile of one walk
    taskset -c 0 .venv/bin/python bench/profile_walk.py           # everything on one vCPU

Read "other" before anything else. On the 2-vCPU VM the walk has two modes:
with the second vCPU idle, agent, snmpd and client spread over both and every
hand-over is a cross-vCPU wake-up (all three processes' CPU, mostly system
time, grows ~5x: ~70 us per varbind); with the second vCPU busy (other > 0)
or under `taskset -c 0`, hand-overs stay on one vCPU (~13 us per varbind).
Compare figures of the same mode only.

Each agent runs in its own process behind its own private snmpd (all up at
once, walks interleaved), serving the VIP table of `make_snapshot(n, 8
backends)`; the client is `snmpbulkwalk -v2c -Cr25` (snmpd 5.9 turns every
repetition into one AgentX GetNext with one varbind, so the walk is a strict
ping-pong client -> snmpd -> agent -> snmpd -> client).

Agents:
* ours     - `LbAgent` as shipped (binary search, hint, pre-encoded varbinds);
* trivial  - the same I/O loop (`Session._serve`) whose `answer()` is one dict
             lookup of the whole request payload -> cached answer (after the
             first walk): the floor of a Python agent on this machine;
* real     - the shipped process (`python -m agentx_lb run`, interval 3600 s)
             scraping the emulated VPP (bench_scrape's, 8 backends per VIP),
             as bench/run.py measures it;
* netsnmpagent - net-snmp's C table helper (bench/peers), if installed.

CPU comes from /proc/<pid>/task/*/schedstat (ns, all threads) for the agent
and snmpd, and from the reaped client's rusage. "idle" is wall minus the
three CPUs: time the ping-pong spends in wake-ups and scheduling (it is
negative when the processes overlap). "runq" is the time the agent and snmpd
were runnable but waiting for a core; "other" is CPU used on the machine by
anything else during the walk (/proc/stat), i.e. noise from other work.
Prints per size and agent: medians over the walks, and the per-varbind cost
ratio big/small. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import collections
import math
import multiprocessing as mp
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

import run  # bench/run.py: the agent and walk command lines

CLIENT_ENV = {**os.environ, "MIBS": "", "MIBDIRS": "/dev/null"}
CAP_S = 120


# ---------------------------------------------------------------- child: one agent


def _table(n: int):
    from agentx_lb.oids import DEFAULT_ROOT
    from agentx_lb.table import build_table
    from snmpfixtures import make_snapshot

    return build_table(make_snapshot(indices=range(1, n + 1), backends_per_vip=8), DEFAULT_ROOT)


def serve(kind: str, socket_path: str, n: int, switch_s: float) -> None:
    """Child process: serve until stdin closes."""
    from agentx_lb import agentx
    from agentx_lb.oids import DEFAULT_ROOT

    table = _table(n)
    stop = threading.Event()

    def stop_at_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_at_eof, daemon=True).start()
    sys.setswitchinterval(switch_s)  # what `agentx-lb run` sets (cli.GIL_SWITCH_S)
    if kind == "ours":
        agent = agentx.LbAgent(socket_path, DEFAULT_ROOT, max_age_s=math.inf)
    else:
        agent = _TrivialAgent(socket_path, DEFAULT_ROOT)
    agent.publish(table)
    print("ready", flush=True)
    agent.run(stop)


def _trivial_class():
    from agentx_lb.agentx import HDR_LEN, LbAgent

    class Trivial(LbAgent):
        """Answers from a dict: request payload -> response tail (filled on a miss)."""

        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, max_age_s=math.inf, **kw)
            self._memo: dict[bytes, bytes] = {}
            self._general = self.responder.answer
            self.session.answer = self.answer  # the session calls answer(pdu, now)

        def answer(self, pdu: bytes, now: float) -> bytes | None:
            tail = self._memo.get(pdu[HDR_LEN:])
            if tail is None:
                answer = self._general(pdu, now)
                if answer is None:
                    return None
                tail = self._memo[pdu[HDR_LEN:]] = answer[HDR_LEN:]
            # Response header: version, type 18, NBO flag, ids copied from the request.
            return b"\x01\x12\x10\x00" + pdu[4:16] + len(tail).to_bytes(4, "big") + tail

    return Trivial


def _TrivialAgent(*a, **kw):
    return _trivial_class()(*a, **kw)


# ---------------------------------------------------------------- /proc


def sched_ns(pid: int) -> tuple[int, int]:
    """(CPU ns, run-queue wait ns) summed over the threads of `pid`."""
    run = wait = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                r, w, _ = f.read().split()
        except FileNotFoundError:  # thread ended meanwhile
            continue
        run += int(r)
        wait += int(w)
    return run, wait


def user_sys_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of `pid` (clock ticks: coarse, for the split only)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def machine_busy_s() -> float:
    """CPU seconds used machine-wide (all cores) since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- parent


class Served:
    def __init__(
        self, kind: str, n: int, work: str, switch_s: float, cells_file: str, emu: tuple | None
    ) -> None:
        from agentx_lb.snmpd import PrivateSnmpd

        self.kind = kind
        self.snmpd = PrivateSnmpd(tempfile.mkdtemp(prefix=kind[:4], dir=work))
        self.snmpd.start()
        self.walks: list[dict[str, float]] = []
        self.proc: subprocess.Popen[bytes] | subprocess.Popen[str]
        if kind == "real":
            assert emu is not None
            cmd = run.agent_cmd(emu, self.snmpd.agentx_socket, tempfile.mkdtemp(dir=work), 3600)
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=REPO
            )
            return
        if kind == "netsnmpagent":
            cmd = [
                sys.executable,
                os.path.join(HERE, "peers", "netsnmpagent_peer.py"),
                cells_file,
                self.snmpd.agentx_socket,
            ]
        else:
            cmd = [
                sys.executable,
                __file__,
                "--serve",
                kind,
                "--socket",
                self.snmpd.agentx_socket,
                "--rows",
                str(n),
                "--switch-s",
                str(switch_s),
            ]
        self.proc = proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert proc.stdout is not None
        proc.stdout.readline()

    def stop(self) -> None:
        if self.kind == "netsnmpagent":
            self.proc.send_signal(signal.SIGTERM)
        if self.kind == "real":
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.snmpd.stop()


def _wait_serving(s: Served, first: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["snmpget", "-v2c", "-c", "public", "-On", s.snmpd.address, first],
            capture_output=True,
            text=True,
            check=False,
            env=CLIENT_ENV,
        ).stdout
        if " = " in out and "No Such" not in out:
            return
        if s.proc.poll() is not None:
            raise RuntimeError(f"{s.kind} exited rc={s.proc.returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"{s.kind} not serving {first}")


def walk(s: Served, table_oid: str, spy: str | None) -> dict[str, float]:
    """One bulk walk with the CPU split of agent, snmpd and client."""
    apid, spid = s.proc.pid, s.snmpd.pid
    assert spid is not None
    u0 = user_sys_s(apid)
    spy_proc = None
    if spy:
        spy_proc = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "py-spy"),
                "record",
                "--native",
                "--format",
                "raw",
                "-r",
                "1000",
                "-p",
                str(apid),
                "-o",
                spy,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    a0, s0, m0 = sched_ns(apid), sched_ns(spid), machine_busy_s()
    t0 = time.perf_counter()
    proc = subprocess.run(
        run.bulkwalk_cmd(s.snmpd.address, table_oid),
        capture_output=True,
        text=True,
        timeout=CAP_S,
        check=False,
        env=CLIENT_ENV,
    )
    wall = time.perf_counter() - t0
    a1, s1, m1 = sched_ns(apid), sched_ns(spid), machine_busy_s()
    u1 = user_sys_s(apid)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if spy_proc is not None:
        spy_proc.send_signal(signal.SIGINT)
        spy_proc.wait(30)
    lines = proc.stdout.splitlines()
    prev: tuple[int, ...] = ()
    for line in lines:
        oid = tuple(int(x) for x in line.split(" ", 1)[0].lstrip(".").split("."))
        if oid <= prev:
            raise RuntimeError(f"{s.kind}: walk not strictly increasing at {line[:80]}")
        prev = oid
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{s.kind}: walk failed rc={proc.returncode} {proc.stderr[:200]}")
    client = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    agent, snmpd = (a1[0] - a0[0]) / 1e9, (s1[0] - s0[0]) / 1e9
    other = (m1 - m0) - agent - snmpd - client
    return {
        "wall": wall,
        "varbinds": len(lines),
        "agent": agent,
        "snmpd": snmpd,
        "client": client,
        "idle": wall - agent - snmpd - client,
        "runq": (a1[1] - a0[1] + s1[1] - s0[1]) / 1e9,
        "other": max(other, 0.0),
        "agent_sys_share": (u1[1] - u0[1]) / max(u1[0] + u1[1] - u0[0] - u0[1], 1e-9),
    }


def _cells_file(n: int, path: str) -> tuple[str, str]:
    """The VIP table cells for the C peer (as bench/run.py writes them)."""
    import pickle

    from pyagentx3.pdu import PDU

    from agentx_lb.oids import DEFAULT_ROOT, format_oid

    base = format_oid(DEFAULT_ROOT + (1, 2))
    entry = base + ".1."
    cells = []
    for vb in _table(n).varbinds:
        pdu = PDU()
        pdu.set_decode_buf(vb)
        v, _ = pdu.decode_value()
        if v["name"].startswith(entry):
            col, idx = (int(x) for x in v["name"][len(entry) :].split("."))
            cells.append((col, idx, v["type"], v["data"]))
    with open(path, "wb") as f:
        pickle.dump({"table_oid": base, "cells": cells}, f)
    return base, f"{entry}{cells[0][0]}.{cells[0][1]}"


def summarise(walks: list[dict[str, float]]) -> dict[str, float]:
    med = {k: statistics.median(w[k] for w in walks) for k in walks[0]}
    med["wall_min"] = min(w["wall"] for w in walks)
    med["us_per_vb"] = 1e6 * med["wall"] / med["varbinds"]
    med["wall_per_snmpd"] = sum(w["wall"] for w in walks) / sum(w["snmpd"] for w in walks)
    return med


def spy_top(path: str, k: int = 12) -> list[str]:
    """Top self-time frames of a py-spy raw (collapsed stacks) file."""
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            total += int(count)
            leaf[stack.split(";")[-1]] += int(count)
    return [f"    {100 * c / total:5.1f} %  {name[:110]}" for name, c in leaf.most_common(k)]


def measure(
    n: int, kinds: list[str], reps: int, switch_s: float, spy_dir: str | None, log
) -> dict[str, dict[str, float]]:
    work = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    served: list[Served] = []
    emu_proc = emu_conn = emu = None
    try:
        table_oid, first = _cells_file(n, os.path.join(work, "cells.pickle"))
        if "real" in kinds:
            import bench_scrape  # the emulated VPP bench/run.py uses

            emu_conn, child = mp.Pipe()
            emu_proc = mp.get_context("spawn").Process(
                target=bench_scrape._serve, args=(n, 0.0, child), daemon=True
            )
            emu_proc.start()
            emu = emu_conn.recv()
        for kind in kinds:
            served.append(Served(kind, n, work, switch_s, os.path.join(work, "cells.pickle"), emu))
        for s in served:
            _wait_serving(s, first)
        for s in served:  # warm-up (fills the trivial agent's memo)
            walk(s, table_oid, None)
        for _rep in range(reps):
            for s in served:
                s.walks.append(walk(s, table_oid, None))
        out = {s.kind: summarise(s.walks) for s in served}
        if spy_dir:
            os.makedirs(spy_dir, exist_ok=True)
            for s in served:
                if s.kind == "netsnmpagent":
                    continue
                path = os.path.join(spy_dir, f"{s.kind}-{n}.txt")
                walk(s, table_oid, path)
                log(f"  py-spy {s.kind} {n:,} VIPs ({path}), top self time:")
                for line in spy_top(path):
                    log(line)
        return out
    finally:
        for s in served:
            s.stop()
        if emu_proc is not None:
            assert emu_conn is not None
            emu_conn.send("stop")
            emu_proc.join(60)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,10000")
    p.add_argument("--agents", default="ours,trivial")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument(
        "--switch-s",
        type=float,
        default=0.0005,
        help="sys.setswitchinterval in the agent (LbAgent.run's default 0.0005)",
    )
    p.add_argument("--pyspy", metavar="DIR", help="also profile one walk per agent with py-spy")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--socket", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a.serve, a.socket, a.rows, a.switch_s)
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    sizes = [int(x) for x in a.sizes.split(",")]
    kinds = a.agents.split(",")
    print(
        f"load average before: {loadavg()}; cores {os.cpu_count()}; "
        f"agent switch interval {a.switch_s:g} s; {a.reps} walks (median)"
    )
    res = {n: measure(n, kinds, a.reps, a.switch_s, a.pyspy, log) for n in sizes}
    print(
        "| VIPs | agent | varbinds | wall s (min) | agent CPU s | snmpd CPU s | client CPU s "
        "| idle s | runq s | other s | agent sys % | us/varbind | wall/snmpd CPU |"
    )
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, by in res.items():
        for kind, m in by.items():
            print(
                f"| {n:,} | {kind} | {m['varbinds']:,.0f} | {m['wall']:.3f} ({m['wall_min']:.3f}) "
                f"| {m['agent']:.3f} | {m['snmpd']:.3f} | {m['client']:.3f} | {m['idle']:.3f} "
                f"| {m['runq']:.3f} | {m['other']:.3f} | {100 * m['agent_sys_share']:.0f} "
                f"| {m['us_per_vb']:.2f} "
                f"| {m['wall_per_snmpd']:.2f} |"
            )
    if len(sizes) > 1:
        big, small = max(sizes), min(sizes)
        for kind in kinds:
            r = res[big][kind]["us_per_vb"] / res[small][kind]["us_per_vb"]
            print(f"per-varbind cost {big:,} vs {small:,} VIPs, {kind}: {r:.2f}")
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
