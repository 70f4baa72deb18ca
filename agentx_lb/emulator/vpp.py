"""The emulated VPP: lb plugin state, FIB, counters, CLI text and API answers.

``EmulatedVpp`` owns one ``StatsSegment`` (replaced on ``restart``), a
``StatsSocketServer`` and an ``ApiServer``.  Tests mutate it (``add_vip``,
``traffic``...) while the servers answer from their threads, so every public
method takes the one model lock.  What is reproduced, and why, is in
docs/vpp.md ("What the emulator reproduces" and the sections it names).
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from agentx_lb.emulator.api_server import ApiCodec, ApiServer
from agentx_lb.emulator.faults import Faults
from agentx_lb.emulator.stats_segment import DEFAULT_SIZE, StatsSegment
from agentx_lb.emulator.stats_server import StatsSocketServer

API_DIR = Path(__file__).resolve().parent / "api"

LB_COUNTERS = (
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
)
ROUTE_TO = "/net/route/to"
CLI_STYLES = ("pre-23.02", "25.10", "master")
ENCAPS = ("gre4", "gre6", "l3dsr", "nat4", "nat6")
# lb_vip_type_t order (lb.h), used by the buggy lb_vip_details.encap
VIP_TYPES = ("ip6-gre6", "ip6-gre4", "ip4-gre6", "ip4-gre4", "ip4-l3dsr", "ip4-nat4", "ip6-nat6")
NO_SUCH_ENTRY = -6

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Routes every VPP has before any configuration (plus one interface each family),
# so route stats indices are not trivially the VIP indices.
_BOOT_ROUTES = (
    "0.0.0.0/0",
    "0.0.0.0/32",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "10.0.0.0/24",
    "10.0.0.1/32",
    "::/0",
    "fe80::/10",
    "2001:db8:ff::/64",
    "2001:db8:ff::1/128",
)
IP4_SRC = "10.0.0.1"
IP6_SRC = "2001:db8:ff::1"
# ip_route_lookup_reply up to its paths: _vl_msg_id, context, retval,
# route.table_id, route.stats_index, route.prefix (af, 16-byte union, len).
_ROUTE_REPLY_HEAD = struct.Struct(">HIiIIB16sB")


# Parsed once per distinct text: the objects are immutable, and tens of
# thousands of VIPs share a few thousand backend addresses.
@functools.lru_cache(maxsize=1 << 16)
def _address(text: str) -> Address:
    return ipaddress.ip_address(text)


@functools.lru_cache(maxsize=1 << 16)
def _host_route(addr: Address) -> Network:
    """The /32 or /128 FIB entry VPP tracks for a backend address."""
    return ipaddress.ip_network(addr)


@dataclass
class _Backend:
    address: Address
    weight: int
    dpo: int
    flows: int = 0
    removed: bool = False


@dataclass
class _Vip:
    index: int
    prefix: Network
    protocol: int
    port: int
    encap: str
    new_size: int
    src_ip_sticky: bool
    dscp: int
    nat_type: str
    target_port: int
    backends: list[_Backend] = field(default_factory=list)
    removed: bool = False
    # Cached CLI text around the counters: (head, tail with a %d per backend's flows).
    text: tuple[str, str] | None = None

    @property
    def vip_type(self) -> str:
        fam = "ip4" if self.prefix.version == 4 else "ip6"
        return f"{fam}-{self.encap}"

    def buckets(self) -> list[int]:
        """Deterministic split of ``new_size`` buckets over the used backends, by weight."""
        used = [b for b in self.backends if not b.removed]
        total = sum(b.weight for b in used)
        out = [0] * len(self.backends)
        if not used or total <= 0:
            return out
        shares = [self.new_size * b.weight // total for b in used]
        rest = self.new_size - sum(shares)
        for i in range(rest):
            shares[i % len(shares)] += 1
        it = iter(shares)
        return [0 if b.removed else next(it) for b in self.backends]


@dataclass
class _Route:
    stats_index: int
    refs: int = 0  # VIPs and backends holding it; boot routes are never removed
    boot: bool = False


class _IndexPool:
    """VPP pool index allocation: the lowest freed index first, else the next new one."""

    def __init__(self, start: int) -> None:
        self._next = start
        self._free: list[int] = []

    def get(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        self._next += 1
        return self._next - 1

    def put(self, index: int) -> None:
        heapq.heappush(self._free, index)

    def take(self, index: int) -> None:
        """Claim a specific index (replaying a kept configuration after restart)."""
        if index in self._free:
            self._free.remove(index)
            heapq.heapify(self._free)
        while self._next <= index:
            if self._next != index:
                heapq.heappush(self._free, self._next)
            self._next += 1


class EmulatedVpp:
    """A VPP with the lb plugin, reachable through vpp_papi over real sockets."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        workers: int = 2,
        cli_style: str = "25.10",
        version: str = "25.10-release",
        segment_size: int = DEFAULT_SIZE,
    ) -> None:
        if cli_style not in CLI_STYLES:
            raise ValueError(f"cli_style must be one of {CLI_STYLES}")
        self.run_dir = Path(run_dir)
        self.workers = workers
        self.n_threads = workers + 1
        self.cli_style = cli_style
        self.version = version
        self.segment_size = segment_size
        self.faults = Faults()
        self.lock = threading.RLock()
        self.generation = 0
        self._codec = ApiCodec(API_DIR)
        self._seg: StatsSegment | None = None
        self._vips: dict[int, _Vip] = {}
        self._routes: dict[Network, _Route] = {}
        self._keys: dict[tuple[Network, int, int], int] = {}
        self._vip_pool = _IndexPool(1)
        self._route_pool = _IndexPool(0)
        self._dpo_next = 10
        self._started = False
        self._stats_srv = StatsSocketServer(self.stats_socket, self._current_fd)
        self._api_srv = ApiServer(self.api_socket, self._codec, self._handle_api, self.faults)
        self._boottime = 0
        self._restoring: threading.Thread | None = None
        self._route_replies: dict[tuple[int, bool] | None, bytes] = {}
        # `lb conf` values printed by `show lb` (VPP's defaults; see lb_conf()).
        self.ip4_src = IP4_SRC
        self.ip6_src = IP6_SRC
        self.sticky_buckets_per_core = 1024
        self.flow_timeout_s = 40

    # ----------------------------------------------------------- paths ----
    @property
    def stats_socket(self) -> str:
        return str(self.run_dir / "stats.sock")

    @property
    def api_socket(self) -> str:
        return str(self.run_dir / "api.sock")

    @property
    def api_dir(self) -> str:
        return str(API_DIR)

    @property
    def api_files(self) -> list[str]:
        return sorted(str(p) for p in API_DIR.glob("*.api.json"))

    @property
    def api_connections(self) -> int:
        """API clients that completed the handshake since the emulator was made."""
        return self._api_srv.handshakes

    @property
    def segment(self) -> StatsSegment:
        assert self._seg is not None, "emulator not started"
        return self._seg

    def _current_fd(self) -> int:
        with self.lock:
            return self.segment.fd

    # ------------------------------------------------------- lifecycle ----
    def start(self) -> None:
        with self.lock:
            if self._started:
                return
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._boot(keep_vips=False)
            self._started = True
        self._stats_srv.start()
        self._api_srv.start()

    def stop(self) -> None:
        """Clean exit: listeners closed, socket files unlinked, segment released."""
        self._stats_srv.stop()
        self._api_srv.stop()
        with self.lock:
            if self._seg is not None:
                self._seg.close()
                self._seg = None
            self._started = False

    def __enter__(self) -> EmulatedVpp:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def restart(
        self, *, keep_vips: bool = True, lb_after_s: float = 0.0, load_s: float = 0.0
    ) -> None:
        """A VPP restart: new memfd, re-bound sockets, new message ids, counters at 0.

        With `lb_after_s`, the restart a real VPP makes when its LB is in
        `unix { startup-config }` (seen on 25.10): API and stats answer at
        once with an empty LB; `lb_after_s` later (VPP waits 2 s) its main
        thread runs the whole file without yielding, so for `load_s` every
        API request waits, and then every VIP is back at once, at its old
        index. `wait_restored()` waits for that.
        """
        self._stats_srv.stop()
        self._api_srv.stop()
        staged = keep_vips and lb_after_s > 0
        with self.lock:
            old_vips = self._vips
            if self._seg is not None:
                self._seg.close()  # clients keep their own (now frozen) mapping
                self._seg = None
            self._boot(keep_vips=keep_vips and not staged)
            generation = self.generation
        self._stats_srv.start()
        self._api_srv.start()
        if staged:
            self._restoring = threading.Thread(
                target=self._run_startup_config,
                args=(generation, old_vips, lb_after_s, load_s),
                name="emu-startup-config",
                daemon=True,
            )
            self._restoring.start()

    def _run_startup_config(
        self, generation: int, old_vips: dict[int, _Vip], lb_after_s: float, load_s: float
    ) -> None:
        time.sleep(lb_after_s)
        with self.lock:  # VPP's main thread is busy: API requests wait for it
            if self.generation != generation or self._seg is None:
                return  # restarted or stopped again meanwhile
            time.sleep(load_s)
            for index in sorted(old_vips):
                self._restore_vip(old_vips[index], index)

    def wait_restored(self, timeout_s: float = 30.0) -> None:
        """Wait until a staged restart has re-created every VIP."""
        if self._restoring is not None:
            self._restoring.join(timeout_s)
            if self._restoring.is_alive():
                raise TimeoutError(f"VIPs not restored within {timeout_s:g}s")

    def _restore_vip(self, vip: _Vip, index: int) -> None:
        if vip.removed:
            return
        self._vip_pool.take(index)
        self._insert_vip(vip, index)
        backends, vip.backends = vip.backends, []
        for b in backends:
            if not b.removed:
                self._add_backend_locked(vip, b.address, b.weight)
                vip.backends[-1].flows = 0

    def _boot(self, *, keep_vips: bool) -> None:
        self.generation += 1
        self._api_srv.set_first_dynamic(400 + (self.generation * 97) % 500)
        self._seg = StatsSegment(self.n_threads, self.segment_size)
        self._boottime = max(int(time.time()), self._boottime + 1)
        self._seg.set_scalar("/sys/boottime", self._boottime)
        self._seg.add_counter(ROUTE_TO, combined=True)
        old_vips = self._vips if keep_vips else {}
        self._vips, self._routes, self._keys, self._dpo_next = {}, {}, {}, 10
        self._vip_pool, self._route_pool = _IndexPool(1), _IndexPool(0)
        for text in _BOOT_ROUTES:
            self._route_ref(ipaddress.ip_network(text), boot=True)
        for index in sorted(old_vips):
            self._restore_vip(old_vips[index], index)

    # ------------------------------------------------------------ stop ----
    def stats_socket_down(self, *, stale: bool = False) -> None:
        """Stop serving stats.sock; ``stale`` leaves the file with no listener."""
        self._stats_srv.stop(stale=stale)

    def stats_socket_up(self) -> None:
        self._stats_srv.start()

    def api_socket_down(self, *, stale: bool = False) -> None:
        """Stop serving api.sock and drop every client (VPP gone)."""
        self._api_srv.stop(stale=stale)

    def api_socket_up(self) -> None:
        self._api_srv.start()

    def kill(self) -> None:
        """VPP crashed: clients dropped, both socket files left stale."""
        self._api_srv.stop(stale=True)
        self._stats_srv.stop(stale=True)

    def set_in_progress(self, value: int = 1) -> None:
        """Fault: the stats writer holds the lock forever (``in_progress`` stuck)."""
        with self.lock:
            self.segment.set_in_progress(value)

    def corrupt_vector(self, name: str = "first session packet", thread: int = 0) -> None:
        """Fault: one counter row's ``len`` runs past the segment end."""
        with self.lock:
            self.segment.corrupt(name, thread)

    # ---------------------------------------------------------- routes ----
    def _route_ref(self, net: Network, *, boot: bool = False) -> _Route:
        route = self._routes.get(net)
        if route is None:
            route = _Route(self._route_pool.get(), boot=boot)
            self._routes[net] = route
            length = max(self.segment.length(ROUTE_TO), route.stats_index + 1)
            self.segment.validate(ROUTE_TO, length)
            self.segment.zero_index(ROUTE_TO, route.stats_index)
        route.refs += 1
        return route

    def _route_unref(self, net: Network) -> None:
        route = self._routes[net]
        route.refs -= 1
        if route.refs <= 0 and not route.boot:
            del self._routes[net]
            self._route_pool.put(route.stats_index)

    def route_stats_index(self, prefix: str) -> int | None:
        with self.lock:
            route = self._routes.get(ipaddress.ip_network(prefix, strict=False))
            return None if route is None else route.stats_index

    def lookup(self, net: Network, exact: bool) -> tuple[Network, int] | None:
        """``ip_route_lookup`` in table 0: exact match, or longest covering prefix."""
        with self.lock:
            if exact:
                route = self._routes.get(net)
                return None if route is None else (net, route.stats_index)
            best: Network | None = None
            for cand in self._routes:
                if (
                    cand.version == net.version
                    and cand.prefixlen <= net.prefixlen
                    and net.network_address in cand
                    and (best is None or cand.prefixlen > best.prefixlen)
                ):
                    best = cand
            return None if best is None else (best, self._routes[best].stats_index)

    # ------------------------------------------------------------- VIPs ----
    def add_vip(
        self,
        prefix: str,
        *,
        protocol: int = 255,
        port: int = 0,
        encap: str = "gre4",
        new_size: int = 1024,
        src_ip_sticky: bool = False,
        dscp: int | None = None,
        nat_type: str = "clusterip",
        target_port: int | None = None,
    ) -> int:
        """Add a VIP; return its LB pool index (lowest free, index 0 is the placeholder)."""
        net = ipaddress.ip_network(prefix, strict=False)
        if encap not in ENCAPS:
            raise ValueError(f"encap must be one of {ENCAPS}")
        vip = _Vip(
            index=0,
            prefix=net,
            protocol=protocol if port else 255,
            port=port,
            encap=encap,
            new_size=new_size,
            src_ip_sticky=src_ip_sticky,
            dscp=dscp or 0,
            nat_type=nat_type,
            target_port=target_port if target_port is not None else port,
        )
        if vip.vip_type not in VIP_TYPES:
            raise ValueError(f"invalid VIP type {vip.vip_type}")
        with self.lock:
            if (net, vip.protocol, port) in self._keys:
                raise ValueError(f"VIP {prefix} proto {protocol} port {port} exists")
            index = self._vip_pool.get()
            self._insert_vip(vip, index)
            return index

    def _insert_vip(self, vip: _Vip, index: int) -> None:
        vip.index = index
        vip.text = None
        self._vips[index] = vip
        self._keys[(vip.prefix, vip.protocol, vip.port)] = index
        seg = self.segment
        for name in LB_COUNTERS:
            if not seg.has(name):
                seg.add_counter(name, combined=False, length=index + 1)
            elif seg.length(name) < index + 1:
                seg.validate(name, index + 1)
            seg.zero_index(name, index)
        self._route_ref(vip.prefix)

    def del_vip(self, index: int, *, keep_removed: bool = False) -> None:
        """Delete a VIP; ``keep_removed`` lists it as `` removed`` until ``gc()``."""
        with self.lock:
            vip = self._vips[index]
            if vip.removed:
                raise ValueError(f"VIP {index} already removed")
            vip.text = None
            for b in vip.backends:
                if not b.removed:
                    self._route_unref(_host_route(b.address))
                b.removed = True
            self._route_unref(vip.prefix)
            del self._keys[(vip.prefix, vip.protocol, vip.port)]
            if keep_removed:
                vip.removed = True
            else:
                del self._vips[index]
                self._vip_pool.put(index)

    def gc(self) -> None:
        """Free removed VIPs and backends (VPP's lb garbage collection)."""
        with self.lock:
            for index in [i for i, v in self._vips.items() if v.removed]:
                del self._vips[index]
                self._vip_pool.put(index)
            for vip in self._vips.values():
                if any(b.removed for b in vip.backends):
                    vip.backends = [b for b in vip.backends if not b.removed]
                    vip.text = None

    def vip_indices(self) -> list[int]:
        with self.lock:
            return sorted(self._vips)

    def add_backend(self, vip_index: int, address: str, *, weight: int = 100) -> None:
        with self.lock:
            self._add_backend_locked(self._vips[vip_index], _address(address), weight)

    def _add_backend_locked(self, vip: _Vip, addr: Address, weight: int) -> None:
        vip.text = None
        for b in vip.backends:
            if b.address == addr:
                if not b.removed:
                    raise ValueError(f"backend {addr} exists on VIP {vip.index}")
                b.removed, b.weight = False, weight
                self._route_ref(_host_route(addr))
                return
        vip.backends.append(_Backend(addr, weight, self._dpo_next))
        self._dpo_next += 1
        self._route_ref(_host_route(addr))

    def remove_backend(self, vip_index: int, address: str) -> None:
        """Flag a backend removed; it stays listed (`` removed``) until ``gc()``."""
        with self.lock:
            b = self._backend(vip_index, address)
            self._vips[vip_index].text = None
            if not b.removed:
                b.removed = True
                self._route_unref(_host_route(b.address))

    def set_flows(self, vip_index: int, address: str, n: int) -> None:
        with self.lock:
            self._backend(vip_index, address).flows = n

    def add_flows_all(self, delta: int) -> None:
        """Every backend's flow count moves by ``delta`` (not below 0), as on a live LB."""
        with self.lock:
            for vip in self._vips.values():
                for b in vip.backends:
                    b.flows = max(0, b.flows + delta)

    def _backend(self, vip_index: int, address: str) -> _Backend:
        addr = _address(address)
        for b in self._vips[vip_index].backends:
            if b.address == addr:
                return b
        raise KeyError(f"no backend {address} on VIP {vip_index}")

    # --------------------------------------------------------- traffic ----
    def traffic(
        self,
        vip_index: int,
        *,
        thread: int = 1,
        next_packets: int = 0,
        first_packets: int = 0,
        untracked_packets: int = 0,
        no_server_packets: int = 0,
        octets_per_packet: int = 100,
    ) -> None:
        """Count packets as the lb node and ip lookup would, in one thread row."""
        deltas = (next_packets, first_packets, untracked_packets, no_server_packets)
        with self.lock:
            vip = self._vips[vip_index]
            seg = self.segment
            for name, delta in zip(LB_COUNTERS, deltas):
                if delta:
                    seg.add_simple(name, thread, vip_index, delta)
            packets = sum(deltas)
            route = self._routes.get(vip.prefix)
            if packets and route is not None:
                octets = packets * octets_per_packet
                seg.add_combined(ROUTE_TO, thread, route.stats_index, packets, octets)

    def traffic_all(
        self,
        *,
        thread: int = 1,
        next_packets: int = 0,
        first_packets: int = 0,
        untracked_packets: int = 0,
        no_server_packets: int = 0,
        octets_per_packet: int = 100,
    ) -> None:
        """``traffic()`` with the same counts on every VIP, one pass per counter row
        (a live load balancer for the benchmarks: every counter moves)."""
        deltas = (next_packets, first_packets, untracked_packets, no_server_packets)
        with self.lock:
            if not self._vips:
                return
            seg = self.segment
            indices = list(self._vips)
            for name, delta in zip(LB_COUNTERS, deltas):
                if delta:
                    seg.add_simple_many(name, thread, indices, delta)
            packets = sum(deltas)
            routes = (self._routes.get(vip.prefix) for vip in self._vips.values())
            stats = [route.stats_index for route in routes if route is not None]
            if packets and stats:
                octets = packets * octets_per_packet
                seg.add_combined_many(ROUTE_TO, thread, stats, packets, octets)

    def set_counter(
        self, name: str, thread: int, index: int, value: int, octets: int | None = None
    ) -> None:
        """Store an exact value (``octets`` too for ``/net/route/to``)."""
        with self.lock:
            if name == ROUTE_TO:
                octets = value if octets is None else octets
                self.segment.set_combined(name, thread, index, value, octets)
            else:
                self.segment.set_simple(name, thread, index, value)

    def counter_sum(self, name: str, index: int) -> int:
        with self.lock:
            seg = self.segment
            if not seg.has(name):
                return 0
            return sum(seg.get_simple(name, t, index) for t in range(self.n_threads))

    def heartbeat(self, value: int | None = None) -> None:
        with self.lock:
            if value is None:
                value = int(time.time())
            self.segment.set_scalar("/sys/heartbeat", value)

    # ------------------------------------------------------------- CLI ----
    def cli(self, cmd: str) -> tuple[int, str]:
        """``cli_inband``: (retval, reply text)."""
        if self.faults.cli_empty:
            return 0, ""
        words = cmd.split()
        if words[:1] == ["show"] and words[1:2] == ["version"]:
            return 0, f"vpp v{self.version} built by root on vm at 2026-11-25T02:37:27\n"
        if words[:2] == ["show", "lb"] and self.faults.lb_plugin:
            rest = words[2:]
            if not rest:
                return 0, self.show_lb()
            if rest == ["vips", "verbose"]:
                return 0, self.show_vips_verbose()
            if rest == ["vips"]:
                return 0, ""  # unformat fails and returns 0 on <= 26.06
        head, tail = (words[0], " ".join(words[1:])) if words else ("", "")
        return -1, f"{head}: unknown input `{tail}'\n"

    def lb_conf(
        self,
        *,
        ip4_src: str | None = None,
        ip6_src: str | None = None,
        sticky_buckets_per_core: int | None = None,
        flow_timeout_s: int | None = None,
    ) -> None:
        """`lb conf ...`: VPP requires a power-of-two bucket count."""
        if sticky_buckets_per_core is not None and (
            sticky_buckets_per_core <= 0 or sticky_buckets_per_core & (sticky_buckets_per_core - 1)
        ):
            raise ValueError("sticky_buckets_per_core must be a power of two")
        with self.lock:
            if ip4_src is not None:
                self.ip4_src = str(ipaddress.IPv4Address(ip4_src))
            if ip6_src is not None:
                self.ip6_src = str(ipaddress.IPv6Address(ip6_src))
            if sticky_buckets_per_core is not None:
                self.sticky_buckets_per_core = sticky_buckets_per_core
            if flow_timeout_s is not None:
                self.flow_timeout_s = flow_timeout_s

    def show_lb(self) -> str:
        with self.lock:
            n_as = sum(len(v.backends) for v in self._vips.values())
            out = [
                f"lb_main ip4-src-address: {self.ip4_src} \n ip6-src-address: {self.ip6_src} \n"
                f" #vips: {len(self._vips) + 1}\n #ass: {n_as}\n"
            ]
            flows = sum(b.flows for v in self._vips.values() for b in v.backends)
            # lb_hash_size(): buckets_mask + LBHASH_ENTRY_PER_BUCKET (4) = buckets + 3
            size = self.sticky_buckets_per_core + 3
            for core in range(1, self.n_threads):
                usage = min(flows // max(self.workers, 1), size)
                out.append(
                    f"core {core}\n  timeout: {self.flow_timeout_s}s\n  usage: {usage} / {size}\n"
                )
            return "".join(out)

    def _counter_rows(self) -> list[list[int]]:
        """Per LB counter, the sum over threads for every index (one bulk read)."""
        seg = self.segment
        sums: list[list[int]] = []
        for name in LB_COUNTERS:
            if not seg.has(name):
                sums.append([])
                continue
            n = seg.length(name)
            total = [0] * n
            for t in range(self.n_threads):
                row = seg.row_values(name, t, n)
                total = [a + b for a, b in zip(total, row)]
            sums.append(total)
        return sums

    def show_vips_verbose(self) -> str:
        with self.lock:
            e, f, u, n = self._counter_rows()
            out: list[str] = []
            for index in sorted(self._vips):
                vip = self._vips[index]
                if vip.text is None:
                    vip.text = self._format_vip_parts(vip)
                head, tail = vip.text
                extra = self.faults.cli_extra.get(index)
                if extra:
                    first, rest = head.split("\n", 1)
                    head = f"{first}\n{extra}{rest}"
                out.append(
                    f"{head}    packet from existing sessions: "
                    f"{e[index] if index < len(e) else 0}\n"
                    f"    first session packet: {f[index] if index < len(f) else 0}\n"
                    f"    untracked packet: {u[index] if index < len(u) else 0}\n"
                    f"    no server configured: {n[index] if index < len(n) else 0}\n"
                    f"{tail % tuple(b.flows for b in vip.backends)}"
                )
            return "".join(out)

    def _format_vip_parts(self, vip: _Vip) -> tuple[str, str]:
        """The text before and after the counter lines (cached until the VIP changes);
        the flow counts, which move all the time, are a %d each in the tail."""
        sticky = " src_ip_sticky" if vip.src_ip_sticky and self.cli_style != "pre-23.02" else ""
        removed = " removed" if vip.removed else ""
        lines = [
            f" {vip.vip_type} [{vip.index}] {vip.prefix}{sticky}{removed}\n",
            f"  new_size:{vip.new_size}\n",
        ]
        if vip.port != 0:
            lines.append(f"  protocol:{vip.protocol} port:{vip.port}\n")
        if vip.encap == "l3dsr":
            lines.append(f"  dscp:{vip.dscp}\n")
        elif vip.encap in ("nat4", "nat6"):
            # VPP prints ntohs(port) here and no newline: "  counters:" follows on the line
            swapped = ((vip.port >> 8) | (vip.port << 8)) & 0xFFFF
            lines.append(f"  type:{vip.nat_type} port:{swapped} target_port:{vip.target_port}")
        lines.append("  counters:\n")
        tail = [f"  #as:{len(vip.backends)}\n"]
        for b, buckets in zip(vip.backends, vip.buckets()):
            state = " removed" if b.removed else "used"
            address = str(b.address).replace("%", "%%")  # an IPv6 scope id
            if self.cli_style == "master":
                tail.append(
                    f"    {address} weight:{b.weight} buckets:{buckets} flows:%d"
                    f" dpo:{b.dpo} {state}\n"
                )
            else:
                tail.append(f"    {address} {buckets} buckets   %d flows  dpo:{b.dpo} {state}\n")
        tail.append("\n")
        return "".join(lines), "".join(tail)

    # ------------------------------------------------------------- API ----
    def _handle_api(self, name: str, req: Any) -> list[tuple[str, dict[str, Any] | bytes]] | None:
        # One main thread answers every request: while it is busy (a
        # startup-config running), requests wait, as on a real VPP.
        with self.lock:
            return self._handle_api_locked(name, req)

    def _handle_api_locked(
        self, name: str, req: Any
    ) -> list[tuple[str, dict[str, Any] | bytes]] | None:
        if name == "control_ping":
            reply = {"retval": 0, "client_index": 0, "vpe_pid": os.getpid()}
            return [("control_ping_reply", reply)]
        if name == "cli_inband":
            rv, text = self.cli(req.cmd)
            return [("cli_inband_reply", {"retval": rv, "reply": text})]
        if name == "show_version":
            return [
                (
                    "show_version_reply",
                    {
                        "retval": 0,
                        "program": "vpe",
                        "version": self.version,
                        "build_date": "2026-11-25T02:37:27",
                        "build_directory": "/root/vpp",
                    },
                )
            ]
        if name == "get_api_json":
            return [("get_api_json_reply", {"retval": 0, "json": self._codec.api_json_array()})]
        if name == "ip_route_lookup":
            return [("ip_route_lookup_reply", self._route_lookup_reply(req))]  # packed
        if name == "lb_vip_dump":
            return self._lb_vip_details()
        if name == "lb_as_dump":
            return self._lb_as_details(req)
        if name == "lb_conf":
            return [("lb_conf_reply", {"retval": 0})]
        return [] if name.endswith("_reply") else None

    def _route_lookup_reply(self, req: Any) -> bytes:
        size = 4 if req.af == 0 else 16
        net = ipaddress.ip_network(
            (ipaddress.ip_address(req.address[:size]), req.prefix_len), strict=False
        )
        found = self.lookup(net, bool(req.exact)) if req.table_id == 0 else None
        if self.faults.route_miss and str(net) in self.faults.route_miss:
            found = None
        return self.packed_route_reply(found)

    def packed_route_reply(self, found: tuple[Network, int] | None) -> bytes:
        """`ip_route_lookup_reply` for `found`, id and context 0 (filled in when sent).

        vpp_papi packs one reply per kind of answer (a miss; a route of each
        family, default route or not: the path differs) and each answer is
        that template with its prefix and stats_index written in, the bytes
        vpp_papi would give for it (tests/test_emulator_api.py compares
        them). Packing each of 50,000 answers with vpp_papi cost ~0.2 ms.
        """
        key = None if found is None else (found[0].version, found[0].prefixlen == 0)
        template = self._route_replies.get(key)
        if template is None:
            fields = {"_vl_msg_id": 0, "context": 0, **self._route_lookup_fields(found)}
            template = self._codec.messages["ip_route_lookup_reply"].pack(fields)
            self._route_replies[key] = template
        if found is None:
            return template
        prefix, stats_index = found
        data = bytearray(template)
        _ROUTE_REPLY_HEAD.pack_into(
            data, 0, 0, 0, 0, 0, stats_index, 1 if prefix.version == 6 else 0,
            prefix.network_address.packed, prefix.prefixlen,
        )  # fmt: skip
        return bytes(data)

    @staticmethod
    def _route_lookup_fields(found: tuple[Network, int] | None) -> dict[str, Any]:
        if found is None:
            return {"retval": NO_SUCH_ENTRY, "route": {"prefix": {"address": {"af": 0}, "len": 0}}}
        prefix, stats_index = found
        is_default = prefix.prefixlen == 0
        path: dict[str, Any] = {
            "sw_if_index": 0xFFFFFFFF,
            "table_id": 0,
            "weight": 1,
            "type": 2 if is_default else 0,
            "proto": 0 if prefix.version == 4 else 1,
            "label_stack": [{}] * 16,
        }
        return {
            "retval": 0,
            "route": {
                "table_id": 0,
                "stats_index": stats_index,
                "prefix": prefix,
                "n_paths": 1,
                "paths": [path],
            },
        }

    @staticmethod
    def _raw_prefix(net: Network, buggy_len: bool) -> dict[str, Any]:
        # lb_vip_dump sends IPv4 lengths as ip46 lengths (plen + 96) on <= 26.06
        plen = net.prefixlen + (96 if buggy_len and net.version == 4 else 0)
        return {"address": str(net.network_address), "len": plen}

    @classmethod
    def _raw_vip(cls, vip: _Vip) -> dict[str, Any]:
        # (u8)htonl(protocol) is 0 in the <= 26.06 handler
        return {"pfx": cls._raw_prefix(vip.prefix, True), "protocol": 0, "port": vip.port}

    def _lb_vip_details(self) -> list[tuple[str, dict[str, Any] | bytes]]:
        with self.lock:
            out: list[tuple[str, dict[str, Any] | bytes]] = []
            for vip in (self._vips[i] for i in sorted(self._vips)):
                out.append(
                    (
                        "lb_vip_details",
                        {
                            "vip": self._raw_vip(vip),
                            "encap": VIP_TYPES.index(vip.vip_type),
                            "dscp": vip.dscp,
                            "srv_type": 1 if vip.nat_type == "nodeport" else 0,
                            "target_port": vip.target_port,
                            "flow_table_length": 0,
                        },
                    )
                )
            return out

    def _lb_as_details(self, req: Any) -> list[tuple[str, dict[str, Any] | bytes]]:
        if req.pfx.len != 0 or any(_address_bytes(req.pfx.address)):
            return []  # the 25.10 handler compares ports in mixed byte order: nothing matches
        with self.lock:
            out: list[tuple[str, dict[str, Any] | bytes]] = []
            for vip in (self._vips[i] for i in sorted(self._vips)):
                for b in vip.backends:
                    out.append(
                        (
                            "lb_as_details",
                            {
                                "vip": self._raw_vip(vip),
                                "app_srv": str(b.address),
                                "flags": 0 if b.removed else 1,
                                "in_use_since": 0,
                            },
                        )
                    )
            return out


def _address_bytes(raw: Any) -> bytes:
    """The bytes of a raw `vl_api_address_t` (af 0: IPv4, 1: IPv6)."""
    return bytes(raw.un.ip4 if int(raw.af) == 0 else raw.un.ip6)
