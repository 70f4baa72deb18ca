"""A real VPP for the real-VPP tier: started by scripts/run-vpp.sh, read by its own CLI.

What the agent serves is checked against what VPP itself prints: the LB
counters of `show lb vips verbose` (VPP sums them over its threads) and the
`to:[packets:bytes]` of `show ip fib <prefix>` (the same load-balance counter
as `/net/route/to`). The patterns here are deliberately independent of the
agent's parser.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_VPP = REPO / "scripts" / "run-vpp.sh"
LB_CONFIG = REPO / "scripts" / "lb-representative.vpp"

# `show lb vips verbose`: a VIP block starts with ` ip4-gre4 [1] 192.0.2.1/32`.
_VIP_HEAD = re.compile(r"^\s*(ip[46]-\S+) \[(\d+)\] (\S+)(.*)$")
_COUNTER = re.compile(
    r"^\s*(packet from existing sessions|first session packet|untracked packet"
    r"|no server configured): (\d+)\s*$"
)
_COUNTER_ORDER = (
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
)
# `show ip fib 192.0.2.1/32`: `[@0]: dpo-load-balance: [proto:ip4 index:23
# buckets:1 uRPF:22 to:[12:1200]]`; no `to:` until a packet went through.
_FIB_TO = re.compile(r"dpo-load-balance: \[proto:\S+ index:(\d+) [^\]]*?(?:to:\[(\d+):(\d+)\])?\]")


class RealVpp:
    """One VPP process in `run_dir`, from the install `prefix`."""

    def __init__(self, prefix: str, run_dir: str, *, workers: int | None = None) -> None:
        self.prefix = prefix
        self.run_dir = run_dir
        self.workers = workers
        self.pid: int | None = None

    def agent_flags(self) -> list[str]:
        """Flags the agent needs for this VPP: before 24.06 VPP cannot send its
        API definitions (get_api_json), so they come from the install."""
        words = self.ctl("show version").split()  # vpp v24.02-release built by ...
        release = words[1].lstrip("v").split("-")[0] if len(words) > 1 else ""
        major, _, minor = release.partition(".")
        if major.isdigit() and minor[:2].isdigit() and (int(major), int(minor[:2])) < (24, 6):
            return ["--vpp-api-dir", os.path.join(self.prefix, "share", "vpp", "api")]
        return []

    @property
    def api_socket(self) -> str:
        return os.path.join(self.run_dir, "api.sock")

    @property
    def stats_socket(self) -> str:
        return os.path.join(self.run_dir, "stats.sock")

    def start(self, startup_config: str | Path | None = None) -> None:
        args = [str(RUN_VPP), "start", self.prefix, self.run_dir, str(startup_config or "")]
        if self.workers is not None:
            args.append(str(self.workers))
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"run-vpp.sh start failed: {out.stderr.strip()}")
        self.pid = int(out.stdout.split()[-1])

    def stop(self) -> None:
        subprocess.run([str(RUN_VPP), "stop", self.run_dir], timeout=30, check=False)

    def kill(self) -> None:
        """kill -9: VPP crashed, its sockets are left behind."""
        subprocess.run([str(RUN_VPP), "kill", self.run_dir], timeout=30, check=True)

    def ctl(self, *cmd: str, timeout_s: float = 120.0) -> str:
        out = subprocess.run(
            [str(RUN_VPP), "ctl", self.prefix, self.run_dir, *cmd],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"vppctl {' '.join(cmd)}: {out.stderr.strip() or out.stdout}")
        return out.stdout

    def configure(self, config: str | Path = LB_CONFIG) -> None:
        """Apply a file of CLI commands through vppctl (`exec`)."""
        out = self.ctl("exec", str(config))
        if "unknown input" in out or "error" in out.lower():
            raise RuntimeError(f"vppctl exec {config}: {out}")

    # ------------------------------------------------------------- reading

    def vips(self) -> dict[int, tuple[str, str, bool]]:
        """{index: (type, prefix, removed)} from `show lb vips verbose`."""
        found = {}
        for line in self.ctl("show lb vips verbose").splitlines():
            m = _VIP_HEAD.match(line)
            if m:
                found[int(m.group(2))] = (m.group(1), m.group(3), "removed" in m.group(4))
        return found

    def lb_counters(self) -> dict[int, tuple[int, int, int, int]]:
        """{VIP index: (existing, first, untracked, no server)}, VPP's own thread sums."""
        counters: dict[int, dict[str, int]] = {}
        current: dict[str, int] | None = None
        text = self.ctl("show lb vips verbose")
        for line in text.splitlines():
            head = _VIP_HEAD.match(line)
            if head:
                current = counters.setdefault(int(head.group(2)), {})
                continue
            # NAT VIPs print `  counters:` on their `type:` line: search, not match.
            for part in line.split("  counters:"):
                m = _COUNTER.match(part)
                if m and current is not None:
                    current[m.group(1)] = int(m.group(2))
        return {i: tuple(c.get(n, 0) for n in _COUNTER_ORDER) for i, c in counters.items()}  # type: ignore[misc]  # 4 names: 4-tuple

    def route_to(self, prefix: str) -> tuple[int, int] | None:
        """(packets, bytes) of `prefix`'s load-balance counter; None without an exact entry."""
        text = self.ctl("show ip fib" if ":" not in prefix else "show ip6 fib", prefix)
        if prefix.split("/")[0] not in text:
            return None
        m = _FIB_TO.search(text)
        if m is None:
            return None
        return (int(m.group(2) or 0), int(m.group(3) or 0))

    # ------------------------------------------------------------- traffic

    def send(
        self,
        dst: str,
        count: int,
        *,
        proto: str = "TCP",
        dport: int = 80,
        worker: int | None = None,
        name: str = "axlb",
    ) -> None:
        """`count` packets from pg0 to `dst`, as if received there; returns once sent."""
        v6 = ":" in dst
        src = "2001:db8:99::2" if v6 else "10.99.0.2"
        node = "ip6-input" if v6 else "ip4-input"
        placed = f" worker {worker}" if worker is not None else ""
        self.ctl(
            f"packet-generator new {{ name {name} limit {count} size 64-64 rate 1e5"
            f" node {node} interface pg0{placed}"
            f" data {{ {proto}: {src} -> {dst} {proto}: 1024 -> {dport} incrementing {count} }} }}"
        )
        self.ctl("packet-generator", "enable-stream", name)
        done = re.compile(rf"^{name}\s+No\s+{count}\b", re.M)
        deadline = time.monotonic() + 30
        while not done.search(self.ctl("show packet-generator")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"packet generator stream {name} not done within 30 s")
            time.sleep(0.05)
        self.ctl("packet-generator", "delete", name)
