"""Notification delay and the count under flapping, with the real tools.

The real agent process scrapes the emulated VPP; snmpd (`trap2sink`) forwards
its Notify PDUs to a private snmptrapd. Printed:

* delay_<interval>s: from a backend's state change in VPP (the emulator's
  `remove_backend`/`add_backend` returned) to the vppLbBackendStateChange line
  in snmptrapd's log (polled every 2 ms), hold-down 0, changes spaced 1.3
  intervals plus a random phase so they fall anywhere in the scrape cycle:
  min / median / max over `--samples` changes. The bound is one scrape
  interval plus the scrape, AgentX and UDP hops.
* flapping: the VIP's only backend flips 21 times in 10 s (interval 1 s,
  hold-down 10 s); notifications received (VIP and backend) until 12 s after
  the hold-down ended, and the state each last one says.

    .venv/bin/python bench/bench_notify.py [--samples 20] [--intervals 1,5]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from agentharness import AgentProc
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.oids import DEFAULT_ROOT, NotificationType, format_oid
from agentx_lb.snmpd import PrivateSnmpd, PrivateSnmptrapd

ROOT = format_oid(DEFAULT_ROOT)
BACKEND = f"= OID: .{ROOT}.0.{int(NotificationType.BACKEND_STATE_CHANGE)}\t"
VIP = f"= OID: .{ROOT}.0.{int(NotificationType.VIP_OPER_STATUS_CHANGE)}\t"


class Rig:
    """Emulated VPP with one VIP (one backend) + snmptrapd + snmpd + the agent."""

    def __init__(self, interval_s: float, holddown_s: float) -> None:
        self.top = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
        dirs = [os.path.join(self.top, d) for d in ("v", "t", "s", "st")]
        for d in dirs:
            os.mkdir(d)
        self.vpp = EmulatedVpp(dirs[0], workers=2)
        self.vpp.start()
        self.vip = self.vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
        self.vpp.add_backend(self.vip, "10.0.0.1")
        self.trapd = PrivateSnmptrapd(dirs[1])
        self.trapd.start()
        self.snmpd = PrivateSnmpd(dirs[2], trap2sink=self.trapd.address)
        self.snmpd.start()
        self.agent = AgentProc.for_vpp(
            dirs[0],
            self.snmpd.agentx_socket,
            dirs[3],
            interval_s=interval_s,
            log_level="info",
            extra=("--notify-holddown", f"{holddown_s:g}"),
        )
        self.agent.wait_for("agentx connected")
        time.sleep(interval_s + 0.5)  # the first scrape (the baseline) is done

    def count(self, needle: str) -> int:
        return sum(1 for line in self.trapd.lines() if needle in line)

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.trapd.lines() if needle in line]

    def flip(self, used: bool) -> None:
        if used:
            self.vpp.add_backend(self.vip, "10.0.0.1")
        else:
            self.vpp.remove_backend(self.vip, "10.0.0.1")

    def close(self) -> None:
        self.agent.kill()
        self.snmpd.stop()
        self.trapd.stop()
        self.vpp.stop()
        shutil.rmtree(self.top, ignore_errors=True)


def delays(interval_s: float, samples: int) -> list[float]:
    rig = Rig(interval_s, holddown_s=0.0)
    out = []
    try:
        used = True
        for _ in range(samples):
            time.sleep(interval_s * (0.3 + random.random()))  # a random phase of the cycle
            before = rig.count(BACKEND)
            used = not used
            rig.flip(used)
            t0 = time.monotonic()
            deadline = t0 + 3 * interval_s + 10
            while rig.count(BACKEND) == before:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no notification within {deadline - t0:.0f} s")
                time.sleep(0.002)
            out.append(time.monotonic() - t0)
            time.sleep(interval_s)  # the next change in a later scrape
    finally:
        rig.close()
    return out


def flapping() -> tuple[int, int, str, str]:
    rig = Rig(1.0, holddown_s=10.0)
    try:
        used = True
        for _ in range(21):
            used = not used
            rig.flip(used)
            time.sleep(10.0 / 21)
        time.sleep(10.0 + 12.0)  # past the hold-down's end (and its scrape)
        vips, backends = rig.lines(VIP), rig.lines(BACKEND)
        last_vip = {"1": "up(1)", "2": "noActiveBackends(2)"}[_integer(vips[-1], ".1.2.1.13.")]
        last_be = {"1": "used(1)", "2": "removed(2)"}[_integer(backends[-1], ".1.3.1.3.")]
        return len(vips), len(backends), last_vip, last_be
    finally:
        rig.close()


def _integer(line: str, column: str) -> str:
    """The INTEGER value of the varbind of `column` (e.g. `.1.2.1.13.`) in a log line."""
    for part in line.split("\t"):
        if f"{ROOT}{column}" in part:
            return part.rsplit("INTEGER: ", 1)[1].strip()
    raise ValueError(f"no {column} in {line!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument(
        "--intervals", default="1,5", help="scrape intervals in seconds, comma separated"
    )
    args = ap.parse_args()
    for interval_s in (float(x) for x in args.intervals.split(",")):
        d = delays(interval_s, args.samples)
        print(
            f"delay_{interval_s:g}s  n={len(d)}  min={min(d):.3f}s"
            f"  median={statistics.median(d):.3f}s  max={max(d):.3f}s",
            flush=True,
        )
    n_vip, n_be, last_vip, last_be = flapping()
    print(
        f"flapping  21 flips in 10 s, interval 1 s, hold-down 10 s: vip={n_vip} backend={n_be} "
        f"notifications; last ones: vip {last_vip}, backend {last_be} (VPP: removed)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
