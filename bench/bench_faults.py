"""Figures of the fault scenarios: the real agent process, the emulated VPP, a private snmpd.

Production settings (interval 1 s, VPP timeout 1 s, 3 stale intervals). Prints
one line per figure:

* vpp_up_rows_s: VPP sockets come up -> VIP rows served through snmpd
* vpp_restart_correct_s: VPP restart -> the new counter value served
* hang_<fault>_cpu: agent CPU (share of one core) over 5 s while VPP hangs
* hang_<fault>_withdrawn_s: fault injected -> VIP rows withdrawn
* snmpd_return_walk_s: snmpd restarted -> a walk shows every row again
* sigterm_exit_s: SIGTERM -> process gone, while VPP hangs

    .venv/bin/python bench/bench_faults.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from agentharness import COL_NEXT, VIP_COUNT, AgentProc, Served, wait_until
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd

KW = {"interval_s": 1.0, "vpp_timeout_s": 1.0, "log_level": "info"}


def report(name: str, value: float, unit: str) -> None:
    print(f"{name:32s} {value:8.3f} {unit}", flush=True)


class Rig:
    """VPP (started) + snmpd + agent in fresh temp dirs."""

    def __init__(self) -> None:
        self.dirs = [tempfile.mkdtemp(prefix="axlb-", dir="/tmp") for _ in range(2)]
        self.vpp = EmulatedVpp(self.dirs[0], workers=2)
        self.vpp.start()
        self.a = self.vpp.add_vip("192.0.2.10/32", protocol=6, port=80)
        self.vpp.traffic(self.a, thread=1, next_packets=100)
        self.snmpd = PrivateSnmpd(self.dirs[1])
        self.snmpd.start()
        self.served = Served(self.snmpd)
        self.agent = AgentProc.for_vpp(self.dirs[0], self.snmpd.agentx_socket, self.dirs[1], **KW)
        self.agent.wait_for("agentx connected")

    def close(self) -> None:
        self.agent.kill()
        self.snmpd.stop()
        self.vpp.stop()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def timed(fn: Callable[[], object], timeout_s: float = 60.0) -> float:
    t0 = time.monotonic()
    wait_until(fn, timeout_s, step_s=0.02)
    return time.monotonic() - t0


def vpp_up_and_restart() -> None:
    rig = Rig()
    try:
        wait_until(lambda: rig.served.column(COL_NEXT) == {rig.a: 100}, 30)
        rig.vpp.api_socket_down()
        rig.vpp.stats_socket_down()
        wait_until(lambda: rig.served.scalars().get(VIP_COUNT) == 0, 30)
        rig.vpp.api_socket_up()
        rig.vpp.stats_socket_up()
        report("vpp_up_rows_s", timed(lambda: rig.served.column(COL_NEXT)), "s")
        rig.vpp.restart()
        rig.vpp.traffic(rig.a, thread=1, next_packets=10)
        report(
            "vpp_restart_correct_s", timed(lambda: rig.served.column(COL_NEXT) == {rig.a: 110}), "s"
        )
    finally:
        rig.close()


def _handshake_hang(v: EmulatedVpp) -> None:
    v.faults.handshake_hang = True
    v.restart()


def hangs() -> None:
    faults: dict[str, Callable[[EmulatedVpp], None]] = {
        "handshake": _handshake_hang,
        "cli_call": lambda v: setattr(v.faults, "hang", {"cli_inband"}),
        "in_progress": lambda v: v.set_in_progress(1),
        "corrupt_vector": lambda v: v.corrupt_vector("packet from existing sessions"),
    }
    for name, inject in faults.items():
        rig = Rig()
        try:

            def counting(rig: Rig = rig) -> bool:
                return rig.served.column(COL_NEXT) == {rig.a: 100}

            def withdrawn(rig: Rig = rig) -> bool:
                return rig.served.scalars().get(VIP_COUNT) == 0

            wait_until(counting, 30)
            t0 = time.monotonic()
            inject(rig.vpp)
            cpu = rig.agent.cpu_fraction(5.0)
            wait_until(withdrawn, 30, step_s=0.02)
            report(f"hang_{name}_cpu", cpu, "core")
            report(f"hang_{name}_withdrawn_s", time.monotonic() - t0, "s")
            if name == "cli_call":
                rc, took = rig.agent.stop()
                report("sigterm_exit_s (vpp hanging)", took, f"s rc={rc}")
        finally:
            rig.close()


def snmpd_return() -> None:
    rig = Rig()
    try:
        wait_until(lambda: rig.served.column(COL_NEXT) == {rig.a: 100}, 30)
        rig.snmpd.kill()
        time.sleep(2.0)  # the agent's reconnect backoff grows to its cap
        t0 = time.monotonic()
        rig.snmpd.start()
        wait_until(lambda: rig.served.column(COL_NEXT) == {rig.a: 100}, 30, step_s=0.02)
        report(
            "snmpd_return_walk_s", time.monotonic() - t0, "s (from start(), which waits for UDP)"
        )
    finally:
        rig.close()


def main() -> None:
    vpp_up_and_restart()
    hangs()
    snmpd_return()


if __name__ == "__main__":
    main()
