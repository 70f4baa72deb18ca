"""The emulator's CLI text in the three VPP styles (docs/vpp.md, "CLI formats") and `show lb`."""

from __future__ import annotations

from collections.abc import Callable

from agentx_lb.emulator import EmulatedVpp
from vppfixtures import api_client


def _populate(vpp: EmulatedVpp) -> None:
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80, src_ip_sticky=True)
    vpp.add_backend(a, "10.0.0.2")
    vpp.add_backend(a, "10.0.0.3")
    vpp.remove_backend(a, "10.0.0.3")
    b = vpp.add_vip("2001:db8:0:0::1/128", encap="gre6", new_size=64)
    for addr in ("2001:db8:ff::2", "2001:db8:ff::3", "2001:db8:ff::4"):
        vpp.add_backend(b, addr)
    vpp.set_flows(b, "2001:db8:ff::4", 1)
    c = vpp.add_vip("192.0.2.5/32", encap="l3dsr", dscp=10, protocol=17, port=53)
    d = vpp.add_vip("192.0.2.9/32", encap="nat4", protocol=6, port=80, target_port=8080)
    vpp.traffic(d, thread=2, first_packets=3)
    e = vpp.add_vip("192.0.2.10/32")
    vpp.del_vip(e, keep_removed=True)
    assert (a, b, c, d, e) == (1, 2, 3, 4, 5)


COUNTERS0 = """\
  counters:
    packet from existing sessions: 0
    first session packet: 0
    untracked packet: 0
    no server configured: 0
"""

EXPECTED_25_10 = (
    " ip4-gre4 [1] 192.0.2.1/32 src_ip_sticky\n"
    "  new_size:1024\n"
    "  protocol:6 port:80\n" + COUNTERS0 + "  #as:2\n"
    "    10.0.0.2 1024 buckets   0 flows  dpo:10 used\n"
    "    10.0.0.3 0 buckets   0 flows  dpo:11  removed\n"
    "\n"
    " ip6-gre6 [2] 2001:db8::1/128\n"
    "  new_size:64\n" + COUNTERS0 + "  #as:3\n"
    "    2001:db8:ff::2 22 buckets   0 flows  dpo:12 used\n"
    "    2001:db8:ff::3 21 buckets   0 flows  dpo:13 used\n"
    "    2001:db8:ff::4 21 buckets   1 flows  dpo:14 used\n"
    "\n"
    " ip4-l3dsr [3] 192.0.2.5/32\n"
    "  new_size:1024\n"
    "  protocol:17 port:53\n"
    "  dscp:10\n" + COUNTERS0 + "  #as:0\n"
    "\n"
    " ip4-nat4 [4] 192.0.2.9/32\n"
    "  new_size:1024\n"
    "  protocol:6 port:80\n"
    "  type:clusterip port:20480 target_port:8080  counters:\n"
    "    packet from existing sessions: 0\n"
    "    first session packet: 3\n"
    "    untracked packet: 0\n"
    "    no server configured: 0\n"
    "  #as:0\n"
    "\n"
    " ip4-gre4 [5] 192.0.2.10/32 removed\n"
    "  new_size:1024\n" + COUNTERS0 + "  #as:0\n"
    "\n"
)


def test_25_10_style(make_vpp: Callable[..., EmulatedVpp]) -> None:
    vpp = make_vpp(cli_style="25.10")
    _populate(vpp)
    assert vpp.cli("show lb vips verbose") == (0, EXPECTED_25_10)


def test_pre_23_02_style_has_no_sticky(make_vpp: Callable[..., EmulatedVpp]) -> None:
    vpp = make_vpp(cli_style="pre-23.02")
    _populate(vpp)
    expected = EXPECTED_25_10.replace(" src_ip_sticky", "")
    assert vpp.show_vips_verbose() == expected


def test_master_style_as_lines(make_vpp: Callable[..., EmulatedVpp]) -> None:
    vpp = make_vpp(cli_style="master")
    _populate(vpp)
    text = vpp.show_vips_verbose()
    assert "    10.0.0.2 weight:100 buckets:1024 flows:0 dpo:10 used\n" in text
    assert "    10.0.0.3 weight:100 buckets:0 flows:0 dpo:11  removed\n" in text
    assert "    2001:db8:ff::4 weight:100 buckets:21 flows:1 dpo:14 used\n" in text
    assert " buckets   " not in text


def test_gc_drops_removed_entries(vpp: EmulatedVpp) -> None:
    _populate(vpp)
    vpp.gc()
    text = vpp.show_vips_verbose()
    assert "removed" not in text
    assert "[5]" not in text
    assert vpp.add_vip("192.0.2.77/32") == 5


def test_show_lb_and_non_verbose(vpp: EmulatedVpp) -> None:
    _populate(vpp)
    with api_client(vpp) as client:
        lb = client.api.cli_inband(cmd="show lb")
        plain = client.api.cli_inband(cmd="show lb vips")
        bad = client.api.cli_inband(cmd="show frobnicate")
    assert lb.retval == 0
    assert lb.reply.startswith(
        "lb_main ip4-src-address: 10.0.0.1 \n ip6-src-address: 2001:db8:ff::1 \n"
        " #vips: 6\n #ass: 5\n"
    )
    assert "core 1\n  timeout: 40s\n  usage: " in lb.reply
    assert "core 2\n" in lb.reply
    assert (plain.retval, plain.reply) == (0, "")
    assert bad.retval == -1
    assert "unknown input" in bad.reply


def test_cli_counters_equal_summed_stats(vpp: EmulatedVpp) -> None:
    i = vpp.add_vip("198.51.100.1/32", protocol=6, port=443)
    for thread in (0, 1, 2):
        vpp.traffic(i, thread=thread, next_packets=thread + 1, untracked_packets=2)
    text = vpp.show_vips_verbose()
    assert "    packet from existing sessions: 6\n" in text
    assert "    untracked packet: 6\n" in text
    assert vpp.counter_sum("packet from existing sessions", i) == 6
