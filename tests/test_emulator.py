"""The emulator seen through the unmodified vpp_papi client (happy paths)."""

from __future__ import annotations

import ipaddress

import pytest

from agentx_lb.emulator import LB_COUNTERS, ROUTE_TO, EmulatedVpp
from vppfixtures import api_client, stats_client

VERBOSE_25_10 = """\
 ip4-gre4 [1] 192.0.2.1/32
  new_size:1024
  protocol:6 port:80
  counters:
    packet from existing sessions: 10
    first session packet: 100
    untracked packet: 0
    no server configured: 7
  #as:2
    10.0.0.2 512 buckets   54 flows  dpo:10 used
    10.0.0.3 512 buckets   46 flows  dpo:11 used

"""


def test_cli_inband_show_lb_vips_verbose(vpp: EmulatedVpp) -> None:
    i = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.add_backend(i, "10.0.0.2")
    vpp.add_backend(i, "10.0.0.3")
    vpp.set_flows(i, "10.0.0.2", 54)
    vpp.set_flows(i, "10.0.0.3", 46)
    vpp.traffic(i, thread=1, next_packets=10, first_packets=60)
    vpp.traffic(i, thread=2, first_packets=40, no_server_packets=7)
    with api_client(vpp) as client:
        r = client.api.cli_inband(cmd="show lb vips verbose")
    assert r.retval == 0
    assert r.reply == VERBOSE_25_10


def test_stats_rows_per_thread_after_traffic(vpp: EmulatedVpp) -> None:
    i = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    vpp.traffic(i, thread=1, next_packets=10, first_packets=100, octets_per_packet=100)
    vpp.traffic(i, thread=2, untracked_packets=3, octets_per_packet=60)
    route = vpp.route_stats_index("192.0.2.1/32")
    assert route is not None
    with stats_client(vpp) as stats:
        patterns = [r"^packet from", r"^first session", r"^untracked", r"^no server"]
        names = stats.ls([*patterns, "^/net/route/to$"])
        d = stats.dump(names)
    assert sorted(names) == sorted([*LB_COUNTERS, ROUTE_TO])
    assert d["packet from existing sessions"] == [[0, 0], [0, 10], [0, 0]]
    assert d["first session packet"] == [[0, 0], [0, 100], [0, 0]]
    assert d["untracked packet"] == [[0, 0], [0, 0], [0, 3]]
    assert d["no server configured"][:, i].sum() == 0
    col = d[ROUTE_TO][:, route]
    assert col.packets() == [0, 110, 3]
    assert col.octets() == [0, 11000, 180]


def test_route_lookup_hit_miss_and_lpm(vpp: EmulatedVpp) -> None:
    i = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    j = vpp.add_vip("2001:db8::1/128", encap="gre6", protocol=6, port=443)
    assert (i, j) == (1, 2)
    with api_client(vpp) as client:
        hit = client.api.ip_route_lookup(table_id=0, exact=1, prefix="192.0.2.1/32")
        hit6 = client.api.ip_route_lookup(table_id=0, exact=1, prefix="2001:db8::1/128")
        miss = client.api.ip_route_lookup(table_id=0, exact=1, prefix="192.0.2.2/32")
        lpm = client.api.ip_route_lookup(table_id=0, exact=0, prefix="192.0.2.2/32")
    assert hit.retval == 0
    assert hit.route.prefix == ipaddress.ip_network("192.0.2.1/32")
    assert hit.route.stats_index == vpp.route_stats_index("192.0.2.1/32")
    assert hit6.route.stats_index == vpp.route_stats_index("2001:db8::1/128")
    assert hit.route.stats_index != hit6.route.stats_index
    assert miss.retval == -6
    assert miss.route.stats_index == 0 and miss.route.n_paths == 0
    assert lpm.retval == 0
    assert lpm.route.prefix == ipaddress.ip_network("0.0.0.0/0")
    assert lpm.route.stats_index == vpp.route_stats_index("0.0.0.0/0")


def test_lb_counters_are_lazy(vpp: EmulatedVpp) -> None:
    with stats_client(vpp) as stats:
        assert stats.ls([r"^first session packet$"]) == []
        with pytest.raises(KeyError):
            stats["first session packet"]
        assert ROUTE_TO in stats.ls(["^/net/route/to$"])
        vpp.add_vip("192.0.2.1/32")
        assert stats.ls([r"^first session packet$"]) == ["first session packet"]
        assert stats["first session packet"] == [[0, 0], [0, 0], [0, 0]]


def test_index_reuse_zeroes_the_slot(vpp: EmulatedVpp) -> None:
    a = vpp.add_vip("192.0.2.1/32")
    b = vpp.add_vip("192.0.2.2/32")
    vpp.traffic(b, first_packets=5)
    vpp.del_vip(b)
    c = vpp.add_vip("192.0.2.3/32")
    assert (a, b, c) == (1, 2, 2)
    with stats_client(vpp) as stats:
        assert stats["first session packet"][:, c].sum() == 0


def test_vips_on_one_prefix_share_the_route_counter(vpp: EmulatedVpp) -> None:
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    b = vpp.add_vip("192.0.2.1/32", protocol=6, port=443)
    vpp.traffic(a, first_packets=1, octets_per_packet=10)
    vpp.traffic(b, first_packets=2, octets_per_packet=10)
    with api_client(vpp) as client:
        r = client.api.ip_route_lookup(table_id=0, exact=1, prefix="192.0.2.1/32")
    with stats_client(vpp) as stats:
        assert stats[ROUTE_TO][:, r.route.stats_index].sum_packets() == 3
        assert stats["first session packet"][:, a].sum() == 1
        assert stats["first session packet"][:, b].sum() == 2


@pytest.mark.parametrize("value", [0, 2**64 - 1])
def test_exact_values_round_trip(vpp: EmulatedVpp, value: int) -> None:
    i = vpp.add_vip("192.0.2.1/32")
    vpp.set_counter("first session packet", 2, i, value)
    route = vpp.route_stats_index("192.0.2.1/32")
    assert route is not None
    vpp.set_counter(ROUTE_TO, 1, route, value, octets=value)
    with stats_client(vpp) as stats:
        assert stats["first session packet"][2][i] == value
        assert tuple(stats[ROUTE_TO][1][route]) == (value, value)


def test_control_ping_and_show_version(vpp: EmulatedVpp) -> None:
    with api_client(vpp) as client:
        assert client.api.control_ping().retval == 0
        v = client.api.show_version()
        r = client.api.cli_inband(cmd="show version")
    assert v.version == "25.10-release"
    assert r.reply.startswith("vpp v25.10-release built by ")


def test_ten_thousand_vips_fit_and_read_back(vpp: EmulatedVpp) -> None:
    for n in range(10_000):
        low = f"{(n // 256) % 256}.{n % 256}"
        i = vpp.add_vip(f"10.100.{low}/32", port=80, protocol=6)
        vpp.add_backend(i, f"172.16.{low}")
    vpp.traffic(10_000, thread=2, first_packets=9)
    last = vpp.route_stats_index("10.100.39.15/32")
    assert last is not None and last > 20_000
    with stats_client(vpp) as stats:
        d = stats.dump(stats.ls(["^first session packet$", "^/net/route/to$"]))
    assert all(len(row) == 10_001 for row in d["first session packet"])
    assert d["first session packet"][:, 10_000].sum() == 9
    assert d[ROUTE_TO][:, last].sum_packets() == 9


def test_bulk_traffic_and_flows_match_the_per_vip_calls(make_vpp) -> None:
    # traffic_all / add_flows_all (the benchmarks' live load balancer) count
    # exactly what traffic() / set_flows() on each VIP would, as vpp_papi reads it.
    one, bulk = make_vpp(), make_vpp()
    for vpp in (one, bulk):
        for k in range(3):
            i = vpp.add_vip(f"192.0.2.{k + 1}/32", protocol=6, port=80)
            vpp.add_backend(i, f"10.0.{k}.2")
            vpp.add_backend(i, f"10.0.{k}.3")
        vpp.del_vip(2)  # a hole in the index pool
    counts = {"next_packets": 3, "first_packets": 1, "no_server_packets": 2}
    for i in one.vip_indices():
        one.traffic(i, thread=2, octets_per_packet=50, **counts)
        for k, address in enumerate(("10.0.{}.2", "10.0.{}.3")):
            one.set_flows(i, address.format(i - 1), 5 + k)
    bulk.traffic_all(thread=2, octets_per_packet=50, **counts)
    bulk.set_flows(1, "10.0.0.3", 1)  # add_flows_all moves every backend from where it is
    bulk.set_flows(3, "10.0.2.3", 1)
    bulk.add_flows_all(5)
    names = [*LB_COUNTERS, ROUTE_TO]
    with stats_client(one) as a, stats_client(bulk) as b:
        da, db = a.dump(names), b.dump(names)
    for name in LB_COUNTERS:
        assert da[name] == db[name], name
    assert [list(row) for row in da[ROUTE_TO]] == [list(row) for row in db[ROUTE_TO]]
    assert one.show_vips_verbose() == bulk.show_vips_verbose()
    assert "    10.0.2.3 512 buckets   6 flows  dpo:" in bulk.show_vips_verbose()
    bulk.add_flows_all(-100)  # never below 0
    assert " 0 flows " in bulk.show_vips_verbose() and " 6 flows " not in bulk.show_vips_verbose()
