"""`agentx-lb demo`: the whole agent against an emulated VPP and a private snmpd.

No VPP and no root needed: everything lives in a temporary directory and
listens on loopback only. An `EmulatedVpp` with a handful of VIPs (IPv4 and
IPv6, tcp/udp/all-port, several backends, 2 workers) gets growing traffic
every second; the real agent (VppSource over vpp_papi, Pipeline, LbAgent over
AgentX) serves it through a `PrivateSnmpd` on a free port. The snmpwalk and
snmptable commands to try are printed; Ctrl-C (or `--duration`) ends it and
removes every process, socket and file it made.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, TextIO

from agentx_lb.config import Config
from agentx_lb.oids import VIP_ENTRY, VipColumn, format_oid

log = logging.getLogger(__name__)

DEMO_INTERVAL_S = 1.0
TRAFFIC_PERIOD_S = 1.0
MIB_MODULE = "IPNG-VPP-LB-MIB"

# (prefix, protocol, port, encap, backends)
DEMO_VIPS: tuple[tuple[str, int, int, str, tuple[str, ...]], ...] = (
    ("192.0.2.1/32", 6, 80, "gre4", ("10.0.0.1", "10.0.0.2", "10.0.0.3")),
    ("192.0.2.1/32", 6, 443, "gre4", ("10.0.0.1", "10.0.0.2", "10.0.0.3")),
    ("192.0.2.53/32", 17, 53, "gre4", ("10.0.1.1", "10.0.1.2")),
    ("198.51.100.0/24", 255, 0, "gre4", ("10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4")),
    ("2001:db8::80/128", 6, 80, "gre6", ("2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3")),
    ("2001:db8:100::/64", 255, 0, "gre6", ("2001:db8:2::1", "2001:db8:2::2")),
)


def base_mib_dirs() -> list[str]:
    """Directories holding the base MIBs (SNMPv2-SMI etc.) the MIB imports.

    Debian's libsnmp-base ships none of them (snmp-mibs-downloader is non-free);
    a checkout next to ../shared/mibs, or an installed downloader, has them.
    """
    repo = Path(__file__).resolve().parent.parent
    candidates = [
        repo.parent / "shared" / "mibs",
        Path("/usr/share/snmp/mibs/ietf"),
        Path("/usr/share/snmp/mibs/iana"),
        Path("/usr/share/snmp/mibs"),
    ]
    return [str(p) for p in candidates if p.is_dir()]


def has_base_mibs(dirs: list[str]) -> bool:
    return any(os.path.exists(os.path.join(d, "SNMPv2-SMI.txt")) for d in dirs)


@dataclasses.dataclass(frozen=True, slots=True)
class Commands:
    """What the user can run in another terminal while the demo runs."""

    walk: str  # the whole subtree, numeric
    walk_packets: str  # one counter column, numeric
    table_by_name: str
    walk_by_name: str


def commands(address: str, root: tuple[int, ...], mib_dir: str, base_dirs: list[str]) -> Commands:
    dotted = format_oid(root)
    packets = format_oid(root + VIP_ENTRY + (VipColumn.NEXT_PACKETS,))
    mibs = ":".join([mib_dir, *base_dirs])
    named = f"-M +{mibs} -m +{MIB_MODULE}"
    return Commands(
        walk=f"snmpwalk -v2c -c public -On {address} {dotted}",
        # snmptable needs the MIB to know the columns; a numeric walk does not.
        walk_packets=f"snmpwalk -v2c -c public -On {address} {packets}",
        table_by_name=(
            f"snmptable -v2c -c public {named} -Ci -Cw 200 {address} {MIB_MODULE}::vppLbVipTable"
        ),
        walk_by_name=f"snmpwalk -v2c -c public {named} {address} {MIB_MODULE}::ipngVppLbMIB",
    )


class _Traffic:
    """Adds growing traffic to every VIP each second, on both workers."""

    def __init__(self, vpp: Any, indices: list[int]) -> None:
        self._vpp = vpp
        self._indices = indices
        self.rounds = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(TRAFFIC_PERIOD_S if self.rounds else 0):
            self.rounds += 1
            for n, index in enumerate(self._indices):
                for thread in (1, 2):
                    self._vpp.traffic(
                        index,
                        thread=thread,
                        next_packets=self.rounds * (100 + 10 * n),
                        first_packets=1 + n,
                        untracked_packets=n % 2,
                        octets_per_packet=200 + 100 * n,
                    )


def _thread(
    name: str, target: Any, stop: threading.Event, crashed: threading.Event
) -> threading.Thread:
    def body() -> None:
        try:
            target(stop)
        except Exception:
            log.exception("demo thread crashed thread=%s", name)
            crashed.set()
            stop.set()

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    return t


def run_demo(
    cfg: Config, stop: threading.Event, out: TextIO, *, duration_s: float | None = None
) -> int:
    """Run the demo until `stop` is set (signal) or `duration_s` passed; 0 if clean."""
    from agentx_lb.emulator import EmulatedVpp
    from agentx_lb.mib import render_mib
    from agentx_lb.snmpd import PrivateSnmpd
    from agentx_lb.wiring import wire

    interval_s = DEMO_INTERVAL_S if cfg.interval_s == Config().interval_s else cfg.interval_s
    workdir = tempfile.mkdtemp(prefix="axlb-demo-", dir="/tmp")
    crashed = threading.Event()
    threads: list[threading.Thread] = []
    vpp = snmpd = source = None

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    try:
        vpp = EmulatedVpp(os.path.join(workdir, "vpp"), workers=2)
        vpp.start()
        indices = []
        for prefix, protocol, port, encap, backends in DEMO_VIPS:
            index = vpp.add_vip(prefix, protocol=protocol, port=port, encap=encap)
            for address in backends:
                vpp.add_backend(index, address)
            indices.append(index)

        snmpd_dir = os.path.join(workdir, "snmpd")
        os.mkdir(snmpd_dir, 0o700)
        snmpd = PrivateSnmpd(snmpd_dir)
        snmpd.start()

        # The MIB for the configured root, so that names resolve even for a custom root.
        mib_dir = os.path.join(workdir, "mibs")
        os.mkdir(mib_dir)
        with open(os.path.join(mib_dir, f"{MIB_MODULE}.txt"), "w", encoding="ascii") as f:
            f.write(render_mib(cfg.oid_root))

        # The same wiring as `agentx-lb run`, pointed at the demo's own parts.
        wired = wire(
            dataclasses.replace(
                cfg,
                vpp_stats_socket=vpp.stats_socket,
                vpp_api_socket=vpp.api_socket,
                vpp_api_dir=vpp.api_dir,
                agentx_socket=snmpd.agentx_socket,
                interval_s=interval_s,
                state_dir=workdir,
            )
        )
        source, agent, pipeline = wired.source, wired.agent, wired.pipeline

        bases = base_mib_dirs()
        cmds = commands(snmpd.address, cfg.oid_root, mib_dir, bases)
        say(
            f"demo: workdir={workdir} snmpd={snmpd.address} snmpd_pid={snmpd.pid}"
            f" vips={len(indices)}"
        )
        say("demo: in another terminal, numeric OIDs (no MIB needed):")
        say(f"  {cmds.walk}")
        say(f"  {cmds.walk_packets}")
        say("demo: with MIB names:")
        say(f"  {cmds.table_by_name}")
        say(f"  {cmds.walk_by_name}")
        if not has_base_mibs(bases):
            say(
                "demo: note: no base MIBs (SNMPv2-SMI, ...) found; Debian ships none: install "
                "snmp-mibs-downloader or add a directory with them to -M"
            )
        say(
            "demo: Ctrl-C to stop"
            + (f" (stops by itself after {duration_s:g}s)" if duration_s else "")
        )

        traffic = _Traffic(vpp, indices)
        threads.append(_thread("traffic", traffic.run, stop, crashed))
        threads.append(_thread("scrape", pipeline.run, stop, crashed))
        threads.append(_thread("agentx", agent.run, stop, crashed))

        started = pipeline.now_cs()
        while not stop.wait(interval_s):
            elapsed_s = (pipeline.now_cs() - started) / 100
            say(_status(elapsed_s, pipeline.snapshot, agent.connected))
            if duration_s is not None and elapsed_s >= duration_s:
                say("demo: duration reached, stopping")
                stop.set()
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        if source is not None and not any(t.is_alive() and t.name == "scrape" for t in threads):
            source.close()
        if snmpd is not None:
            snmpd.stop()
        if vpp is not None:
            vpp.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if crashed.is_set() or any(t.is_alive() for t in threads):
        say("demo: failed (see the log above)")
        return 1
    say("demo: stopped, cleaned up")
    return 0


def _status(elapsed_s: float, snapshot: Any, agentx_connected: bool) -> str:
    h = snapshot.health
    packets = sum(row.counters.next_packets + row.counters.first_packets for row in snapshot.rows)
    return (
        f"demo: t={elapsed_s:.0f}s vpp={'up' if h.vpp_connected else 'down'} "
        f"agentx={'registered' if agentx_connected else 'down'} vips={h.vip_count} "
        f"packets={packets} scrape_ms={h.last_scrape_duration_ms} failures={h.scrape_failures}"
    )
