"""vppLbBackendTable end to end: emulated VPP -> VppSource -> Pipeline -> LbAgent -> snmpd.

Everything between the emulator's sockets and net-snmp's client tools is the
production code; only the scrape is triggered by the test (`Served.scrape()`)
instead of the pipeline's timer, so each check sees exactly one known scrape.
Expected cells come from the emulator's own model, never from our parser.
Cells are addressed numerically:
`root.1.3.1.<col>.<vipIndex>.<addrType>.<len>.<addr octets...>`.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from agentx_lb.agentx import LbAgent
from agentx_lb.emulator import EmulatedVpp
from agentx_lb.memory import NoMemoryPolicy
from agentx_lb.model import Snapshot
from agentx_lb.oids import BACKEND_ENTRY, DEFAULT_ROOT, VIP_ENTRY, format_oid
from agentx_lb.pipeline import Pipeline
from agentx_lb.snmpd import PrivateSnmpd
from agentx_lb.vpp.source import VppSource

pytestmark = pytest.mark.integration

ROOT = DEFAULT_ROOT
R = format_oid(ROOT)
BACKEND = f"{R}.{format_oid(BACKEND_ENTRY)}"  # root.1.3.1
VIP = f"{R}.{format_oid(VIP_ENTRY)}"  # root.1.2.1
STATE, WEIGHT, BUCKETS, FLOWS, NAME = 3, 4, 5, 6, 7
USED, REMOVED = 1, 2
ACTIVE_COUNT, OPER_STATUS = 12, 13
UP, NO_ACTIVE = 1, 2
_PROTO = {6: "tcp", 17: "udp"}
_LINE = re.compile(r'^\.([\d.]+) = (?:(INTEGER|Gauge32|STRING): "?(.*?)"?|(.*))$')

Cells = dict[str, tuple[str, object]]


class Served:
    """The real agent path around one EmulatedVpp, served through a private snmpd."""

    def __init__(
        self, vpp: EmulatedVpp, snmpd: PrivateSnmpd, *, max_stale_intervals: int = 3
    ) -> None:
        self.vpp = vpp
        self.snmpd = snmpd
        self.source = VppSource(vpp.stats_socket, vpp.api_socket, vpp.api_dir, timeout_s=5.0)
        self.agent = LbAgent(snmpd.agentx_socket, ROOT, max_age_s=math.inf)
        # A long interval: the test calls tick() itself; run() is never started.
        self.pipeline = Pipeline(
            self.source,
            self.agent.publish,
            root=ROOT,
            interval_s=3600.0,
            max_stale_intervals=max_stale_intervals,
            memory=NoMemoryPolicy(),  # leave pytest's GC alone
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.agent.run, args=(self._stop,), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.agent.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.agent.connected, snmpd.log_tail()

    def scrape(self) -> Snapshot:
        snap = self.pipeline.tick()
        assert snap.health.vpp_connected, snap.health.last_error
        return snap

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.source.close()
        assert not self._thread.is_alive()

    # ---- reading cells through snmpd

    def walk(self, oid: str, reps: int = 25) -> Cells:
        return parse(self.snmpd.bulkwalk(oid, reps=reps))

    def get(self, *oids: str) -> Cells:
        return parse(self.snmpd.get(*oids))


def parse(out: str) -> Cells:
    """`-On` output -> {dotted oid: (type, value)}; type '' for noSuch* messages."""
    cells: Cells = {}
    for line in out.splitlines():
        m = _LINE.match(line)
        assert m is not None, line
        if m.group(2) is None:
            cells[m.group(1)] = ("", m.group(4))
        elif m.group(2) == "STRING":
            cells[m.group(1)] = ("STRING", m.group(3))
        else:
            cells[m.group(1)] = (m.group(2), int(m.group(3)))
    return cells


@pytest.fixture
def serve(
    make_vpp: Callable[..., EmulatedVpp], snmpd: PrivateSnmpd
) -> Iterator[Callable[..., Served]]:
    made: list[Served] = []

    def factory(max_stale_intervals: int = 3, **vpp_kwargs: object) -> Served:
        served = Served(make_vpp(**vpp_kwargs), snmpd, max_stale_intervals=max_stale_intervals)
        made.append(served)
        return served

    yield factory
    for served in made:
        served.close()


# ---------------------------------------------------------------- expectations


def index_suffix(vip_index: int, address: str) -> str:
    """`<vipIndex>.<addrType>.<len>.<octets>` of one backend row."""
    packed = ipaddress.ip_address(address).packed
    atype = 1 if len(packed) == 4 else 2
    return ".".join(map(str, (vip_index, atype, len(packed), *packed)))


def row_vip(oid: str) -> int:
    """The vipIndex of a backend cell OID (the sub-id after the column)."""
    return int(oid.split(".")[len(ROOT) + 4])


def cell(col: int, vip_index: int, address: str) -> str:
    return f"{BACKEND}.{col}.{index_suffix(vip_index, address)}"


def vip_label(prefix: object, protocol: int, port: int) -> str:
    if port == 0:
        return f"{prefix} any"
    return f"{prefix} {_PROTO.get(protocol, f'proto{protocol}')}/{port}"


def expected_backend_cells(vpp: EmulatedVpp) -> Cells:
    """Every backend cell the agent must serve, from the emulator's model."""
    out: Cells = {}
    with vpp.lock:
        vips = {i: v for i, v in vpp._vips.items() if not v.removed}
        for index, v in vips.items():
            label = vip_label(v.prefix, v.protocol, v.port)
            for b, buckets in zip(v.backends, v.buckets()):
                addr = str(b.address)
                out[cell(STATE, index, addr)] = ("INTEGER", REMOVED if b.removed else USED)
                if vpp.cli_style == "master":  # the only style printing `weight:`
                    out[cell(WEIGHT, index, addr)] = ("Gauge32", b.weight)
                out[cell(BUCKETS, index, addr)] = ("Gauge32", buckets)
                out[cell(FLOWS, index, addr)] = ("Gauge32", b.flows)
                out[cell(NAME, index, addr)] = ("STRING", f"{addr} via {label}")
    return out


def expected_vip_status(vpp: EmulatedVpp) -> Cells:
    out: Cells = {}
    with vpp.lock:
        for index, v in vpp._vips.items():
            if v.removed:
                continue
            active = sum(1 for b in v.backends if not b.removed)
            out[f"{VIP}.{ACTIVE_COUNT}.{index}"] = ("Gauge32", active)
            out[f"{VIP}.{OPER_STATUS}.{index}"] = ("INTEGER", UP if active else NO_ACTIVE)
    return out


def served_vip_status(served: Served) -> Cells:
    return {**served.walk(f"{VIP}.{ACTIVE_COUNT}"), **served.walk(f"{VIP}.{OPER_STATUS}")}


def mixed_setup(vpp: EmulatedVpp) -> dict[str, int]:
    """IPv4 and IPv6 VIPs and backends, a VIP without backends, a removed backend."""
    web = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    dns6 = vpp.add_vip("2001:db8::53/128", protocol=17, port=53, encap="gre6")
    empty = vpp.add_vip("198.51.100.0/24")
    mixed = vpp.add_vip("203.0.113.9/32", protocol=6, port=443, encap="gre6")
    for n, weight in ((2, 100), (3, 50), (4, 0)):
        vpp.add_backend(web, f"10.0.0.{n}", weight=weight)
    vpp.add_backend(dns6, "2001:db8:1::2", weight=30)
    vpp.add_backend(dns6, "2001:db8:1::a", weight=70)
    vpp.add_backend(mixed, "2001:db8:2::1")
    vpp.add_backend(mixed, "2001:db8:2::2")
    vpp.set_flows(web, "10.0.0.2", 123)
    vpp.set_flows(web, "10.0.0.3", 7)
    vpp.set_flows(dns6, "2001:db8:1::a", 4_000_000)
    vpp.remove_backend(web, "10.0.0.3")  # still listed ` removed`, flows draining
    return {"web": web, "dns6": dns6, "empty": empty, "mixed": mixed}


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("style", ["pre-23.02", "25.10", "master"])
def test_every_backend_cell_for_each_cli_style(serve: Callable[..., Served], style: str) -> None:
    served = serve(workers=2, cli_style=style)
    vips = mixed_setup(served.vpp)
    served.scrape()

    want = expected_backend_cells(served.vpp)
    got = served.walk(f"{R}.1.3")
    assert got == want
    assert len(got) == 7 * (5 if style == "master" else 4)  # 7 rows, weight only in master

    # The removed backend is served, as removed(2), with its draining flows.
    web = vips["web"]
    assert got[cell(STATE, web, "10.0.0.3")] == ("INTEGER", REMOVED)
    assert got[cell(FLOWS, web, "10.0.0.3")] == ("Gauge32", 7)
    assert got[cell(BUCKETS, web, "10.0.0.3")] == ("Gauge32", 0)
    # IPv6 backend index: type 2, length 16, 16 octets.
    assert cell(STATE, vips["dns6"], "2001:db8:1::a").endswith(
        f".{vips['dns6']}.2.16.32.1.13.184.0.1.0.0.0.0.0.0.0.0.0.10"
    )
    assert got[cell(NAME, vips["dns6"], "2001:db8:1::a")] == (
        "STRING",
        "2001:db8:1::a via 2001:db8::53/128 udp/53",
    )
    # Nothing under the VIP without backends.
    assert {row_vip(oid) for oid in got} == {vips["web"], vips["dns6"], vips["mixed"]}


def test_weight_present_exactly_in_master_style(serve: Callable[..., Served]) -> None:
    master = serve(workers=2, cli_style="master")
    vips = mixed_setup(master.vpp)
    master.scrape()
    web, dns6 = vips["web"], vips["dns6"]
    got = master.get(
        cell(WEIGHT, web, "10.0.0.2"),
        cell(WEIGHT, web, "10.0.0.4"),
        cell(WEIGHT, dns6, "2001:db8:1::2"),
        cell(WEIGHT, dns6, "2001:db8:1::a"),
    )
    assert [v for _, v in got.values()] == [100, 0, 30, 70]
    assert {t for t, _ in got.values()} == {"Gauge32"}


@pytest.mark.parametrize("style", ["pre-23.02", "25.10"])
def test_weight_absent_where_vpp_prints_none(serve: Callable[..., Served], style: str) -> None:
    served = serve(workers=2, cli_style=style)
    vips = mixed_setup(served.vpp)
    served.scrape()
    web = vips["web"]
    got = served.get(cell(WEIGHT, web, "10.0.0.2"), cell(BUCKETS, web, "10.0.0.2"))
    weight, buckets = got.values()
    assert weight == ("", "No Such Instance currently exists at this OID")  # never a made-up 100
    assert buckets[0] == "Gauge32"
    # GETNEXT from the weight column skips straight to the buckets column.
    nxt = parse(served.snmpd.getnext(f"{BACKEND}.{WEIGHT}"))
    assert next(iter(nxt)).startswith(f"{BACKEND}.{BUCKETS}.")


def test_active_count_and_oper_status_follow_the_backends(serve: Callable[..., Served]) -> None:
    served = serve(workers=2, cli_style="25.10")
    vips = mixed_setup(served.vpp)
    served.scrape()
    got = served_vip_status(served)
    assert got == expected_vip_status(served.vpp)
    web, empty, dns6 = vips["web"], vips["empty"], vips["dns6"]
    assert got[f"{VIP}.{ACTIVE_COUNT}.{web}"] == ("Gauge32", 2)  # 3 listed, 1 removed
    assert got[f"{VIP}.{ACTIVE_COUNT}.{empty}"] == ("Gauge32", 0)
    assert got[f"{VIP}.{OPER_STATUS}.{empty}"] == ("INTEGER", NO_ACTIVE)
    assert got[f"{VIP}.{OPER_STATUS}.{web}"] == ("INTEGER", UP)

    # Remove every backend of dns6: listed as removed, the VIP goes noActiveBackends.
    served.vpp.remove_backend(dns6, "2001:db8:1::2")
    served.vpp.remove_backend(dns6, "2001:db8:1::a")
    served.scrape()
    got = served_vip_status(served)
    assert got == expected_vip_status(served.vpp)
    assert got[f"{VIP}.{ACTIVE_COUNT}.{dns6}"] == ("Gauge32", 0)
    assert got[f"{VIP}.{OPER_STATUS}.{dns6}"] == ("INTEGER", NO_ACTIVE)
    assert served.get(cell(STATE, dns6, "2001:db8:1::a"))[cell(STATE, dns6, "2001:db8:1::a")] == (
        "INTEGER",
        REMOVED,
    )
    assert served.walk(f"{R}.1.3") == expected_backend_cells(served.vpp)


def test_adding_or_removing_a_backend_renumbers_nothing(serve: Callable[..., Served]) -> None:
    served = serve(workers=2, cli_style="master")
    vips = mixed_setup(served.vpp)
    served.scrape()
    before = served.walk(f"{R}.1.3")
    web = vips["web"]

    served.vpp.add_backend(web, "10.0.0.1", weight=10)  # sorts before every other row of web
    served.vpp.gc()  # frees the removed 10.0.0.3: the list positions shift
    served.scrape()
    after = served.walk(f"{R}.1.3")
    assert after == expected_backend_cells(served.vpp)
    gone = {oid for oid in before if oid.endswith(index_suffix(web, "10.0.0.3"))}
    new = {oid for oid in after if oid.endswith(index_suffix(web, "10.0.0.1"))}
    assert len(gone) == 5 and len(new) == 5
    # Every other row keeps its OIDs; only buckets (Maglev share) may move.
    assert set(after) - new == set(before) - gone
    for oid in set(before) - gone:
        if not oid.startswith(f"{BACKEND}.{BUCKETS}."):
            assert after[oid] == before[oid], oid


def test_removed_vip_backends_are_not_served(serve: Callable[..., Served]) -> None:
    served = serve(workers=2, cli_style="25.10")
    vips = mixed_setup(served.vpp)
    served.scrape()
    dns6 = vips["dns6"]
    probe = cell(STATE, dns6, "2001:db8:1::2")
    assert served.get(probe)[probe] == ("INTEGER", USED)

    served.vpp.del_vip(dns6, keep_removed=True)  # still listed by VPP as ` removed`
    assert f"[{dns6}] 2001:db8::53/128 removed" in served.vpp.show_vips_verbose()
    served.scrape()
    got = served.walk(f"{R}.1.3")
    assert got == expected_backend_cells(served.vpp)
    assert dns6 not in {row_vip(oid) for oid in got}
    assert served.get(probe)[probe] == ("", "No Such Instance currently exists at this OID")
    assert f"{VIP}.{ACTIVE_COUNT}.{dns6}" not in served_vip_status(served)
    # The other VIPs' rows are untouched.
    assert got[cell(STATE, vips["web"], "10.0.0.2")] == ("INTEGER", USED)
