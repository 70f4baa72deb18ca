"""VipParser's memo: every parse in a sequence equals a fresh parse of the same text."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentx_lb.model import Vip
from agentx_lb.vpp import cli_parse
from agentx_lb.vpp.cli_parse import ParsedVips, VipParser, _BlockParser, parse_vips

DATA = Path(__file__).parent / "data" / "cli"


def _key(parsed: ParsedVips) -> tuple[object, ...]:
    # Compare what each problem says, its text included.
    problems = tuple((p.line_no, p.line, p.reason, str(p)) for p in parsed.problems)
    return parsed.vips, problems


def _check(parser: VipParser, text: str) -> ParsedVips:
    got = parser.parse(text)
    assert got.flows is not None
    assert _key(ParsedVips(got.with_flows(), got.problems)) == _key(parse_vips(text))
    return got


# --- a small model of VPP's output, to mutate ---------------------------------


@dataclass
class _As:
    address: str
    flows: int = 0
    used: bool = True


@dataclass
class _Vip:
    index: int
    kind: str = "ip4-gre4"  # or "ip4-nat4", "ip4-l3dsr", "ip6-gre6"
    port: int = 80
    counters: tuple[int, int, int, int] = (0, 0, 0, 0)
    backends: list[_As] = field(default_factory=list)
    as_count_off: int = 0  # a wrong `#as:` count (a problem)
    layout: int = 0  # 1: blank + counter line before `#as:`; 2: a backend line
    # before `#as:` (a problem); 3: blank line among the backends


def _render_vip(v: _Vip, master: bool) -> str:
    six = v.kind.startswith("ip6")
    prefix = f"2001:db8::{v.index:x}/128" if six else f"198.18.0.{v.index}/32"
    out = [f" {v.kind} [{v.index}] {prefix}\n", "  new_size:1024\n"]
    if v.port:
        out.append(f"  protocol:6 port:{v.port}\n")
    if v.kind == "ip4-l3dsr":
        out.append("  dscp:10\n")
    if v.kind == "ip4-nat4":
        out.append("  type:clusterip port:20480 target_port:8080")  # no newline (VPP)
    e, f, u, n = v.counters
    out.append(
        f"  counters:\n    packet from existing sessions: {e}\n    first session packet: {f}\n"
        f"    untracked packet: {u}\n    no server configured: {n}\n"
    )
    lines = []
    for b in v.backends:
        state = "used" if b.used else " removed"
        if master:
            lines.append(f"    {b.address} weight:1 buckets:8 flows:{b.flows} dpo:3 {state}\n")
        else:
            lines.append(f"    {b.address} 8 buckets   {b.flows} flows  dpo:3 {state}\n")
    as_line = f"  #as:{len(v.backends) + v.as_count_off}\n"
    if v.layout == 1:
        out.append("\n    extra counter: 1\n")
    elif v.layout == 2 and lines:
        out.append(lines.pop(0))
    elif v.layout == 3:
        lines.insert(len(lines) // 2, "\n")
    out.append(as_line)
    out.extend(lines)
    out.append("\n")
    return "".join(out)


def _render(vips: list[_Vip], master: bool = False, crlf: bool = False) -> str:
    text = "".join(_render_vip(v, master) for v in vips)
    return text.replace("\n", "\r\n") if crlf else text


def _model(n: int) -> list[_Vip]:
    return [
        _Vip(i, backends=[_As(f"10.0.{i}.{k}", flows=k) for k in range(1, 4)])
        for i in range(1, n + 1)
    ]


# --- examples -------------------------------------------------------------------


def test_only_counters_changed_gives_the_same_vip_objects() -> None:
    vips = _model(3)
    parser = VipParser()
    first = _check(parser, _render(vips))
    for v in vips:
        v.counters = (v.counters[0] + 7, 1, 2, 3)
    second = _check(parser, _render(vips))
    assert all(a is b for a, b in zip(first.vips, second.vips, strict=True))


def test_a_changed_flow_count_changes_only_that_vip() -> None:
    vips = _model(3)
    parser = VipParser()
    first = _check(parser, _render(vips))
    vips[1].backends[2].flows = 99
    second = _check(parser, _render(vips))
    # A flow count moves with traffic: it is a column, every Vip object stays.
    assert all(a is b for a, b in zip(first.vips, second.vips, strict=True))
    assert second.flows == [1, 2, 3, 1, 2, 99, 1, 2, 3]
    assert [b.flows for b in second.with_flows()[1].backends] == [1, 2, 99]


def test_a_cached_problem_is_reported_at_its_new_line() -> None:
    vips = _model(3)
    vips[2].as_count_off = 1
    parser = VipParser()
    first = _check(parser, _render(vips))
    (problem,) = first.problems
    assert problem.reason == "#as:4 but 3 backend lines"
    vips.insert(0, _Vip(9))  # 10 more lines before the bad block
    (moved,) = _check(parser, _render(vips)).problems
    assert moved.line_no == problem.line_no + 10
    assert moved.reason == problem.reason


@pytest.mark.parametrize("crlf", [False, True])
def test_problem_in_the_backends_after_a_clean_parse(crlf: bool) -> None:
    vips = _model(2)
    parser = VipParser()
    _check(parser, _render(vips, crlf=crlf))
    vips[1].backends[1].address = vips[1].backends[0].address
    parsed = _check(parser, _render(vips, crlf=crlf))
    assert [p.reason for p in parsed.problems] == ["duplicate backend address"]
    vips[1].backends[1].address = "10.0.2.200"
    assert _check(parser, _render(vips, crlf=crlf)).problems == ()


def test_unusual_tails_after_a_clean_parse() -> None:
    vips = _model(2)
    parser = VipParser()
    clean = _check(parser, _render(vips))
    vips[1].layout = 1  # a blank line, then a counter line before `#as:`: still valid
    assert _check(parser, _render(vips)).vips == clean.vips
    vips[1].layout = 3  # a blank line among the backends: still valid
    assert _check(parser, _render(vips)).vips == clean.vips
    vips[1].layout = 2  # a known backend line before `#as:`
    parsed = _check(parser, _render(vips))
    assert [p.reason for p in parsed.problems] == ["unexpected line in counters"]
    vips[1].layout = 0
    assert _check(parser, _render(vips)).vips == clean.vips


def test_same_vips_in_crlf_and_master_style() -> None:
    vips = _model(2)
    parser = VipParser()
    plain = _check(parser, _render(vips))
    assert _check(parser, _render(vips, crlf=True)).with_flows() == plain.with_flows()
    vips[0].backends[0].flows = 50
    _check(parser, _render(vips, crlf=True))
    _check(parser, _render(vips, master=True))
    _check(parser, _render(vips, master=True, crlf=True))


def test_the_memo_holds_only_the_last_parse() -> None:
    parser = VipParser()
    _check(parser, _render(_model(50)))
    _check(parser, _render(_model(2)))
    assert len(parser._blocks) == 2  # white box: memory follows the VIP list
    _check(parser, _render(_model(3), crlf=True))  # the exact parse: its memo only
    assert not parser._blocks and len(parser._exact._known) == 3
    _check(parser, "")
    exact = parser._exact
    assert not parser._blocks and not exact._known and not exact._whole and not exact._headers


def test_the_memo_keeps_no_copy_of_vpp_shaped_backend_lines() -> None:
    # White box, for memory: in VPP's shape the lines are the tail's own and are
    # split out again when needed; kept only where they are not (CRLF).
    parser = _BlockParser()  # the exact parse (any text VipParser's fast path refuses)
    vips = _model(3)
    parser.parse(_render(vips))
    assert [k.lines for k in parser._known.values()] == [None] * 3
    vips[0].backends[1].flows = 42  # the fast path builds the next entry
    parser.parse(_render(vips))
    assert [k.lines for k in parser._known.values()] == [None] * 3
    crlf = _BlockParser()
    crlf.parse(_render(vips, crlf=True))
    assert all(k.lines is not None and len(k.lines) == 3 for k in crlf._known.values())


@pytest.mark.parametrize("six", [False, True])
def test_a_changed_line_shares_the_address_string(six: bool) -> None:
    vips = [
        _Vip(
            1,
            kind="ip6-gre6" if six else "ip4-gre4",
            backends=[_As("2001:db8::a" if six else "10.0.0.1")],
        )
    ]
    parser = VipParser()
    first = _check(parser, _render(vips))
    vips[0].backends[0].flows = 5
    second = _check(parser, _render(vips)).with_flows()
    assert second[0].backends[0].flows == 5
    assert second[0].backends[0].address is first.vips[0].backends[0].address


def test_vip_fields_are_the_ones_the_memo_copies() -> None:
    # `_with_backends` builds a Vip positionally: a new field must be added there.
    assert [f.name for f in dataclasses.fields(Vip)] == [
        "index", "address", "prefix_length", "ip_version", "encap", "protocol", "port",
        "src_ip_sticky", "flow_table_length", "removed", "backends", "dscp", "target_port",
        "prefix", "identity",  # not in __init__: made from the others
    ]  # fmt: skip


def test_sequence_of_the_recorded_vpp_outputs() -> None:
    parser = VipParser()
    texts = [
        (DATA / n).read_text() for n in ("vips_22.10.txt", "vips_25.10.txt", "vips_master.txt")
    ]
    for text in texts + texts[::-1] + [t.replace("\n", "\r\n") for t in texts]:
        _check(parser, text)
        _check(parser, text.replace(": 0\n", ": 5\n"))


# --- property: random edits of the model and of the text ------------------------

_OPS = [
    "counters", "flows", "drop_backend", "add_backend", "swap_backends", "remove_backend",
    "add_vip", "drop_vip", "port", "kind", "as_count", "dup_vip", "layout", "same_address",
    "nothing",
]  # fmt: skip
_KINDS = ["ip4-gre4", "ip4-nat4", "ip4-l3dsr", "ip6-gre6"]


def _apply(vips: list[_Vip], op: str, a: int, b: int) -> None:
    if op == "add_vip" or not vips:
        vips.insert(a % (len(vips) + 1), _Vip(100 + a, backends=[_As(f"10.9.{a % 250}.1")]))
        return
    v = vips[a % len(vips)]
    if op == "counters":
        v.counters = (v.counters[0] + b, v.counters[1] + 1, b, 0)
    elif op == "drop_vip":
        vips.remove(v)
    elif op == "dup_vip":
        vips.append(replace(v, backends=list(v.backends)))
    elif op == "port":
        v.port = b % 3 * 443  # 0 = all-port VIP (no protocol line)
    elif op == "kind":
        v.kind = _KINDS[b % len(_KINDS)]
    elif op == "as_count":
        v.as_count_off = b % 3 - 1
    elif op == "layout":
        v.layout = b % 4
    elif op == "add_backend":
        v.backends.insert(b % (len(v.backends) + 1), _As(f"10.8.{a % 250}.{b % 250}", b))
    elif v.backends:
        k = b % len(v.backends)
        if op == "flows":
            v.backends[k] = replace(v.backends[k], flows=v.backends[k].flows + b + 1)
        elif op == "drop_backend":
            del v.backends[k]
        elif op == "swap_backends":
            v.backends[0], v.backends[k] = v.backends[k], v.backends[0]
        elif op == "remove_backend":
            v.backends[k] = replace(v.backends[k], used=not v.backends[k].used)
        elif op == "same_address":
            v.backends[k] = replace(v.backends[k], address=v.backends[0].address)


def _garble(text: str, at: int, junk: str) -> str:
    lines = text.split("\n")
    i = at % len(lines)
    cut = at % (len(lines[i]) + 1)
    lines[i] = lines[i][:cut] + junk + lines[i][cut:]
    return "\n".join(lines)


_step = st.tuples(
    st.lists(
        st.tuples(st.sampled_from(_OPS), st.integers(0, 1000), st.integers(0, 1000)),
        max_size=4,
    ),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["", " ", "x", "\r", ": 1"])), max_size=2
    ),
    st.integers(0, 5),  # 0: master style, 1: CRLF (rarer: most steps keep the style)
    st.one_of(st.none(), st.integers(0, 10_000)),  # cut the text short there
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 5), st.lists(_step, min_size=1, max_size=8))
def test_any_sequence_of_edits_parses_as_a_fresh_parser_would(
    n: int,
    steps: list[tuple[list[tuple[str, int, int]], list[tuple[int, str]], int, int | None]],
) -> None:
    vips = _model(n)
    parser = VipParser()
    _check(parser, _render(vips))
    for ops, garbles, style, cut in steps:
        for op, a, b in ops:
            _apply(vips, op, a, b)
        text = _render(vips, master=style == 0, crlf=style == 1)
        for at, junk in garbles:
            text = _garble(text, at, junk)
        if cut is not None:
            text = text[: cut % (len(text) + 1)]
        _check(parser, text)
        _check(parser, text)  # the same text again: all from the memo


def test_small_chunks_parse_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fast path cuts the text a chunk of whole VIP blocks at a time (so no
    # C call holds the GIL long); chunks of ~one block must change nothing.
    monkeypatch.setattr(cli_parse, "_CHUNK", 40)
    vips = _model(5)
    parser = VipParser()
    first = _check(parser, _render(vips))
    vips[3].backends[1].flows = 77
    vips[1].counters = (9, 9, 9, 9)
    second = _check(parser, _render(vips))
    assert all(a is b for a, b in zip(first.vips, second.vips, strict=True))
    assert [b.flows for b in second.with_flows()[3].backends] == [1, 77, 3]
    vips[2].backends.pop()
    _check(parser, _render(vips))
    assert len(parser._blocks) == 5  # white box: the fast path did it (not the exact parse)
    _check(parser, _render(vips, master=True))
    assert len(parser._blocks) == 5
