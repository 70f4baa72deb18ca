"""Tests for agentx_lb.vpp.cli_parse: every VPP CLI style, feature and failure mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentx_lb.errors import CliParseError
from agentx_lb.model import Backend, Encap, LbSettings, Vip
from agentx_lb.vpp.cli_parse import (
    parse_lb_settings,
    parse_lb_vip_count,
    parse_vips,
    parse_vips_strict,
)

DATA = Path(__file__).parent / "data" / "cli"


def _text(name: str) -> str:
    return (DATA / name).read_text()


_GRE4_80 = Vip(
    index=1,
    address="192.0.2.1",
    prefix_length=32,
    ip_version=4,
    encap=Encap.GRE4,
    protocol=6,
    port=80,
    flow_table_length=1024,
    backends=(
        Backend("10.0.0.3", buckets=512, flows=54, used=True),
        Backend("10.0.0.2", buckets=512, flows=46, used=True),
    ),
)

EXPECTED: dict[str, tuple[Vip, ...]] = {
    "vips_22.10.txt": (
        _GRE4_80,
        Vip(
            2,
            "192.0.2.2",
            32,
            4,
            Encap.L3DSR,
            protocol=17,
            port=53,
            flow_table_length=1024,
            backends=(Backend("10.0.0.4", 1024, 0, True),),
            dscp=10,
        ),
        Vip(
            3,
            "192.0.2.3",
            32,
            4,
            Encap.NAT4,
            protocol=6,
            port=80,
            flow_table_length=1024,
            target_port=8080,
        ),
        Vip(
            4,
            "2001:db8::1",
            128,
            6,
            Encap.GRE6,
            protocol=6,
            port=443,
            flow_table_length=64,
            backends=(
                Backend("2001:db8:ff::4", 32, 1, True),
                Backend("2001:db8:ff::5", 32, 0, False),
            ),
        ),
        Vip(6, "203.0.113.0", 24, 4, Encap.GRE6, flow_table_length=1024, removed=True),
        Vip(
            7,
            "2001:db8::7",
            128,
            6,
            Encap.NAT6,
            protocol=17,
            port=5353,
            flow_table_length=1024,
            backends=(Backend("2001:db8:ff::7", 1024, 0, True),),
            target_port=53,
        ),
    ),
    "vips_25.10.txt": (
        _GRE4_80,
        Vip(
            3,
            "2001:db8::1",
            128,
            6,
            Encap.GRE6,
            protocol=6,
            port=443,
            src_ip_sticky=True,
            flow_table_length=64,
            backends=(
                Backend("2001:db8:ff::4", 21, 1, True),
                Backend("2001:db8:ff::5", 21, 0, True),
                Backend("2001:db8:ff::6", 22, 0, False),
            ),
        ),
        Vip(
            4,
            "2001:db8::a0",
            124,
            6,
            Encap.GRE4,
            flow_table_length=1024,
            backends=(Backend("10.0.0.9", 1024, 0, True),),
        ),
        Vip(
            5,
            "192.0.2.1",
            32,
            4,
            Encap.GRE4,
            protocol=17,
            port=53,
            src_ip_sticky=True,
            flow_table_length=1024,
            removed=True,
        ),
    ),
    "vips_master.txt": (
        Vip(
            1,
            "192.0.2.1",
            32,
            4,
            Encap.GRE4,
            protocol=6,
            port=80,
            flow_table_length=1024,
            backends=(
                Backend("10.0.0.3", 683, 54, True, weight=100),
                Backend("10.0.0.2", 341, 46, True, weight=50),
            ),
        ),
        Vip(
            2,
            "198.51.100.1",
            32,
            4,
            Encap.NAT4,
            protocol=6,
            port=443,
            src_ip_sticky=True,
            flow_table_length=2048,
            backends=(
                Backend("10.1.0.1", 0, 0, False, weight=0),
                Backend("10.1.0.2", 2048, 5, True, weight=100),
            ),
            target_port=30443,
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_vpp_style_parses_to_exact_values(name: str) -> None:
    parsed = parse_vips(_text(name))
    assert parsed.problems == ()
    assert parsed.vips == EXPECTED[name]
    assert parse_vips_strict(_text(name)) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_crlf_line_endings_parse_the_same(name: str) -> None:
    crlf = _text(name).replace("\n", "\r\n")
    assert parse_vips_strict(crlf) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_blank_lines_are_not_significant(name: str) -> None:
    text = _text(name).replace("\n\n", "\n").replace("  #as:", "\n\n  #as:")
    assert parse_vips_strict(text) == EXPECTED[name]


def test_empty_text_is_zero_vips() -> None:
    assert parse_vips("")[:2] == ((), ())
    assert parse_vips("\n\n")[:2] == ((), ())


@pytest.mark.parametrize(
    ("type_name", "prefix", "encap", "address"),
    [
        ("ip6-gre6", "2001:db8::1/128", Encap.GRE6, "2001:db8::1"),
        ("ip6-gre4", "2001:DB8::1/128", Encap.GRE4, "2001:db8::1"),
        ("ip4-gre6", "192.0.2.9/32", Encap.GRE6, "192.0.2.9"),
        ("ip4-gre4", "192.0.2.9/32", Encap.GRE4, "192.0.2.9"),
        ("ip4-l3dsr", "192.0.2.9/32", Encap.L3DSR, "192.0.2.9"),
        ("ip4-nat4", "192.0.2.9/32", Encap.NAT4, "192.0.2.9"),
        ("ip6-nat6", "2001:db8:0::0:1/128", Encap.NAT6, "2001:db8::1"),
    ],
)
def test_every_vip_type_maps_to_its_encap(
    type_name: str, prefix: str, encap: Encap, address: str
) -> None:
    text = _block(header=f" {type_name} [9] {prefix}")
    (vip,) = parse_vips_strict(text)
    assert (vip.encap, vip.address, vip.ip_version) == (encap, address, 6 if ":" in address else 4)
    assert (vip.protocol, vip.port) == (255, 0)


def _block(
    header: str = " ip4-gre4 [9] 192.0.2.9/32",
    head: str = "",
    as_lines: tuple[str, ...] = (),
    as_count: int | None = None,
) -> str:
    count = len(as_lines) if as_count is None else as_count
    body = "".join(f"    {line}\n" for line in as_lines)
    return (
        f"{header}\n  new_size:1024\n{head}  counters:\n"
        "    packet from existing sessions: 0\n    first session packet: 0\n"
        "    untracked packet: 0\n    no server configured: 0\n"
        f"  #as:{count}\n{body}\n"
    )


@pytest.mark.parametrize(
    ("head", "as_lines", "reason"),
    [
        ("  protocol:6 port:70000\n", (), "port 70000 out of range"),
        ("  protocol:256 port:80\n", (), "protocol 256 out of range"),
        ("  dscp:10\n", (), "unexpected dscp"),
        (
            "  type:clusterip port:1 target_port:2  counters:\n",
            (),
            "NAT type line on a non-NAT VIP",
        ),
        ("  bogus line\n", (), "unexpected line in VIP header"),
        ("", ("10.0.0.1 1 buckets   0 flows  dpo:1 maybe",), "unexpected line in backends"),
        ("", ("10.0.0.999 1 buckets   0 flows  dpo:1 used",), "bad backend address"),
        ("", ("10.0.0.1 1 buckets   0 flows  dpo:1 used",) * 2, "duplicate backend address"),
    ],
)
def test_bad_line_skips_the_block_and_reports_it(
    head: str, as_lines: tuple[str, ...], reason: str
) -> None:
    bad = _block(header=" ip4-gre4 [2] 192.0.2.2/32", head=head, as_lines=as_lines)
    text = _text("vips_25.10.txt") + bad
    parsed = parse_vips(text)
    assert parsed.vips == EXPECTED["vips_25.10.txt"]
    (problem,) = parsed.problems
    assert problem.reason == reason
    with pytest.raises(CliParseError) as info:
        parse_vips_strict(text)
    assert info.value.reason == reason
    assert info.value.line_no > 40  # the appended block, not the valid ones


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (" ip4-gre4 [2] 192.0.2.2/33", "prefix length 33 out of range"),
        (" ip6-gre6 [2] 2001:db8::/129", "prefix length 129 out of range"),
        (" ip4-gre4 [2] 2001:db8::2/128", "IPv6 prefix on a ip4-gre4 VIP"),
        (" ip4-gre7 [2] 192.0.2.2/32", "unknown VIP type 'ip4-gre7'"),
        (" ip4-gre4 [0] 192.0.2.2/32", "VIP index 0 out of range"),
        (" ip4-gre4 [4294967296] 192.0.2.2/32", "VIP index 4294967296 out of range"),
        (" ip4-gre4 [2] 192.0.2.256/32", "bad VIP address"),
        (" ip6-gre6 [2] fe80::1%eth0/128", "bad VIP address"),
    ],
)
def test_bad_header_is_reported(header: str, reason: str) -> None:
    parsed = parse_vips(_block(header=header) + _block())
    assert [p.reason for p in parsed.problems] == [reason]
    assert [v.index for v in parsed.vips] == [9]
    assert parsed.problems[0].line_no == 1


def test_as_count_mismatch_and_truncation_are_reported() -> None:
    short = _block(as_lines=("10.0.0.1 1 buckets   0 flows  dpo:1 used",), as_count=2)
    assert [p.reason for p in parse_vips(short).problems] == ["#as:2 but 1 backend lines"]
    truncated = " ip4-gre4 [9] 192.0.2.9/32\n  new_size:1024\n  counters:\n"
    assert [p.reason for p in parse_vips(truncated).problems] == ["VIP block ends before #as"]


def test_duplicate_index_keeps_the_first() -> None:
    parsed = parse_vips(_block(head="  protocol:6 port:80\n") + _block())
    assert [(v.index, v.port) for v in parsed.vips] == [(9, 80)]
    assert [p.reason for p in parsed.problems] == ["duplicate VIP index 9"]


def test_stray_line_before_first_vip_is_reported() -> None:
    parsed = parse_vips("lb: something\n" + _block())
    assert [v.index for v in parsed.vips] == [9]
    assert [(p.line_no, p.reason) for p in parsed.problems] == [(1, "line outside any VIP block")]


def test_src_ip_sticky_and_removed_in_either_order() -> None:
    (a,) = parse_vips_strict(_block(header=" ip4-gre4 [9] 192.0.2.9/32 removed src_ip_sticky"))
    assert (a.src_ip_sticky, a.removed) == (True, True)


def test_unicode_digits_are_not_numbers() -> None:
    parsed = parse_vips(_block(head="  protocol:\u0666 port:80\n"))
    assert parsed.vips == ()
    assert [p.reason for p in parsed.problems] == ["unexpected line in VIP header"]


def test_ten_thousand_vips_parse() -> None:
    blocks = []
    for i in range(1, 10_001):
        backends = tuple(
            f"10.{i // 256}.{i % 256}.{b} 128 buckets   {b} flows  dpo:{b} used" for b in range(8)
        )
        blocks.append(
            _block(
                header=f" ip4-gre4 [{i}] 198.18.{i // 256}.{i % 256}/32",
                head=f"  protocol:6 port:{i}\n",
                as_lines=backends,
            )
        )
    vips = parse_vips_strict("".join(blocks))
    assert len(vips) == 10_000
    assert vips[-1].index == 10_000
    assert vips[-1].address == "198.18.39.16"
    assert vips[-1].port == 10_000
    assert [b.flows for b in vips[-1].backends] == list(range(8))


# --- show lb -----------------------------------------------------------------


def test_show_lb_settings() -> None:
    text = _text("show_lb_25.10.txt")
    assert parse_lb_settings(text) == LbSettings(
        ip4_src_address="10.0.0.1",
        ip6_src_address="2001:db8:ff::1",
        sticky_buckets_per_core=1024,
        flow_timeout_s=40,
    )
    assert parse_lb_vip_count(text) == 3


def test_show_lb_before_traffic_has_no_per_core_facts() -> None:
    text = _text("show_lb_idle.txt")
    assert parse_lb_settings(text) == LbSettings("0.0.0.0", "::", None, None)
    assert parse_lb_vip_count(text) == 0


def test_show_lb_unknown_text_gives_nothing() -> None:
    assert parse_lb_settings("") == LbSettings()
    assert parse_lb_settings("usage: 1 / 1000\n") == LbSettings()  # 997: not a power of two
    assert parse_lb_vip_count("") is None


# --- properties -----------------------------------------------------------------

_VALID_LINES = [line for name in sorted(EXPECTED) for line in _text(name).split("\n")]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    _check_total(text)


_mutation = st.tuples(
    st.sampled_from(["drop", "dup", "garble", "swap"]),
    st.integers(min_value=0, max_value=len(_VALID_LINES) - 1),
    st.text(max_size=8),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutation, max_size=6))
def test_mutated_valid_text_never_raises_anything_else(
    mutations: list[tuple[str, int, str]],
) -> None:
    lines = list(_VALID_LINES)
    for op, at, junk in mutations:
        at %= len(lines) if lines else 1
        if not lines:
            break
        if op == "drop":
            del lines[at]
        elif op == "dup":
            lines.insert(at, lines[at])
        elif op == "garble":
            cut = len(junk) % (len(lines[at]) + 1)
            lines[at] = lines[at][:cut] + junk + lines[at][cut:]
        else:
            lines[at], lines[-1 - at] = lines[-1 - at], lines[at]
    _check_total("\n".join(lines))


def _check_total(text: str) -> None:
    parsed = parse_vips(text)
    for vip in parsed.vips:
        assert 0 <= vip.prefix_length <= (32 if vip.ip_version == 4 else 128)
        assert 0 <= vip.port <= 0xFFFF
        assert 0 <= vip.protocol <= 255
        assert vip.index >= 1
    assert len({v.index for v in parsed.vips}) == len(parsed.vips)
    try:
        strict = parse_vips_strict(text)
    except CliParseError:
        assert parsed.problems
    else:
        assert strict == parsed.vips
        assert not parsed.problems
    parse_lb_settings(text)
    parse_lb_vip_count(text)
