"""Parse the lb plugin's CLI text: `show lb vips verbose` and `show lb`.

Pure: standard library only. Every VPP style is understood (docs/vpp.md, "CLI formats"):

* 20.09-22.10: `` ip4-gre4 [1] 192.0.2.1/32``, backends ``A 512 buckets   54 flows  dpo:18 used``;
* 23.02-26.06: the header may carry `` src_ip_sticky``;
* master (2026-04): backends ``A weight:W buckets:B flows:F dpo:D used``.

A removed VIP or backend ends in `` removed`` (two spaces after ``dpo:N`` for a
backend). NAT VIPs print ``type:... port:... target_port:N`` with no newline,
so ``  counters:`` follows on the same line. All-port VIPs have no
``protocol:`` line (protocol 255, port 0). Lines may end in CRLF (vppctl).

The lenient parser skips a whole VIP block when one of its lines is not
understood and records a `ParseProblem`; the other VIPs are still returned.

`VipParser` keeps what the last parse found per VIP block, so a scrape of
10,000 VIPs re-parses only the blocks that changed, apart from their printed
counter values (which change with every packet and are not used); within a
block, only the backend lines that changed. `parse_vips` is the stateless form.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import operator
import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple, cast

from agentx_lb.errors import CliParseError
from agentx_lb.model import (
    PORT_ANY,
    PROTOCOL_ANY,
    Backend,
    Encap,
    LbSettings,
    ParseProblem,
    Vip,
    with_flows,
)

__all__ = [
    "ParsedVips",
    "VipParser",
    "parse_lb_settings",
    "parse_lb_vip_count",
    "parse_vips",
    "parse_vips_strict",
]

# `format_lb_vip_type` names: VIP address family, then the encap.
_VIP_TYPES: dict[str, tuple[int, Encap]] = {
    "ip6-gre6": (6, Encap.GRE6),
    "ip6-gre4": (6, Encap.GRE4),
    "ip4-gre6": (4, Encap.GRE6),
    "ip4-gre4": (4, Encap.GRE4),
    "ip4-l3dsr": (4, Encap.L3DSR),
    "ip4-nat4": (4, Encap.NAT4),
    "ip6-nat6": (6, Encap.NAT6),
}

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFFFFFF

_N = "([0-9]{1,20})"  # ASCII digits only (int() would accept other scripts' digits)
_HEADER = re.compile(rf"^\s*(\S+) \[{_N}\] (\S+?)/{_N}((?: +(?:src_ip_sticky|removed))*)\s*$")
_NEW_SIZE = re.compile(r"^new_size:\s*([0-9]{1,20})$")
_PROTO_PORT = re.compile(r"^protocol:([0-9]{1,20}) port:([0-9]{1,20})$")
_DSCP = re.compile(r"^dscp:([0-9]{1,20})$")
# NAT: VPP forgets the newline, so `counters:` may follow on the same line.
_NAT = re.compile(rf"^type:(clusterip|nodeport) port:{_N} target_port:{_N}(\s+counters:)?$")
_COUNTERS = re.compile(r"^counters:$")
_COUNTER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9 _-]*: [0-9]{1,20}$")
_AS_COUNT = re.compile(r"^#as:\s*([0-9]{1,20})$")
_AS_OLD = re.compile(rf"^(\S+) {_N} buckets +{_N} flows +dpo:{_N} +(used|removed)$")
_AS_MASTER = re.compile(rf"^(\S+) weight:{_N} buckets:{_N} flows:{_N} dpo:{_N} +(used|removed)$")


class ParsedVips(NamedTuple):
    """Result of the lenient parser: the VIPs understood and the problems seen.

    `flows` (from `VipParser`): every backend's flow count, the backends of
    `vips` back to back; then the `Backend.flows` inside `vips` are not read
    (`with_flows()` puts them in). None: each `Backend.flows` is the count.
    """

    vips: tuple[Vip, ...]
    problems: tuple[ParseProblem, ...]
    flows: Sequence[int] | None = None

    def with_flows(self) -> tuple[Vip, ...]:
        """The VIPs with their backends' flow counts in place."""
        if self.flows is None:
            return self.vips
        out = []
        at = 0
        for vip in self.vips:
            n = len(vip.backends)
            out.append(with_flows(vip, self.flows[at : at + n]))
            at += n
        return tuple(out)


def _lines(text: str) -> list[str]:
    # Only \n splits (str.splitlines would also split on \x0b, \x1c, U+2028 ...
    # which VPP never emits as line ends); a trailing \r is vppctl's CRLF.
    if "\r" not in text:  # cli_inband: no copy per line
        return text.split("\n")
    return [line.removesuffix("\r") for line in text.split("\n")]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # ipaddress also accepts scope ids ("fe80::1%eth0") which VPP never prints.
    if "%" in text:
        raise ValueError("scope id")
    return ipaddress.ip_address(text)


# Dotted decimal without leading zeros: how VPP prints IPv4, and already the
# canonical text, so the common case needs neither ipaddress nor a cache.
_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_CANONICAL = re.compile(rf"(?:{_IPV4_OCTET}\.){{3}}{_IPV4_OCTET}")


def _canonical(text: str) -> tuple[int, str, int]:
    """(version, canonical text, max prefix length); ValueError if not an address."""
    if _IPV4_CANONICAL.fullmatch(text) is not None:
        return 4, text, 32
    return _canonical_other(text)


# Small on purpose: an entry costs ~300 bytes and the parser asks only for
# addresses it has not seen in the same place last scrape (see _parse_tail).
@functools.lru_cache(maxsize=1 << 12)
def _canonical_other(text: str) -> tuple[int, str, int]:
    addr = _address(text)
    return addr.version, addr.compressed, addr.max_prefixlen


def _parse_backend(s: str, known_address: str = "") -> Backend | str:
    """A backend line (stripped) -> its Backend, or the reason it is not one.

    `known_address`: the canonical address the same line had last scrape; the
    new Backend shares that string when the line still names it.
    """
    weight: int | None = None
    if (m := _AS_OLD.match(s)) is not None:
        addr_text, buckets, flows, _, state = m.groups()
    elif (m := _AS_MASTER.match(s)) is not None:
        addr_text, raw_weight, buckets, flows, _, state = m.groups()
        weight = int(raw_weight)
    else:
        return "unexpected line in backends"
    if addr_text == known_address:
        address = known_address
    else:
        try:
            address = _canonical(addr_text)[1]
        except ValueError:
            return "bad backend address"
    return Backend(address, int(buckets), int(flows), state == "used", weight)


class _Header(NamedTuple):
    """What a VIP header line says, or the first problem with it."""

    problem: str | None
    index: int  # type: ignore[assignment]  # shadows tuple.index, never called on a _Header
    type_name: str
    removed: bool
    src_ip_sticky: bool
    ip_version: int
    encap: Encap
    address: str
    prefix_length: int


def _parse_header(match: re.Match[str]) -> _Header:
    type_name = match.group(1)
    index = int(match.group(2))
    flags = match.group(5).split()
    removed = "removed" in flags
    sticky = "src_ip_sticky" in flags

    def bad(reason: str, version: int = 4, encap: Encap = Encap.GRE4) -> _Header:
        return _Header(reason, index, type_name, removed, sticky, version, encap, "", 0)

    vip_type = _VIP_TYPES.get(type_name)
    if vip_type is None:
        return bad(f"unknown VIP type {type_name!r}")
    family, encap = vip_type
    if not 1 <= index <= _U32_MAX:
        return bad(f"VIP index {index} out of range", encap=encap)
    try:
        version, address, max_len = _canonical(match.group(3))
    except ValueError:
        return bad("bad VIP address", encap=encap)
    if version != family:
        return bad(f"IPv{version} prefix on a {type_name} VIP", version, encap)
    prefix_length = int(match.group(4))
    problem = None
    if prefix_length > max_len:
        problem = f"prefix length {prefix_length} out of range"
    return _Header(
        problem, index, type_name, removed, sticky, version, encap, address, prefix_length
    )


def _header(line: str) -> _Header | None:
    """The parsed header if `line` is a VIP header line, else None."""
    match = _HEADER.match(line)
    return None if match is None else _parse_header(match)


class _Block:
    """Accumulates one VIP block; `fail()` marks it unusable with the first problem."""

    def __init__(self, line_no: int, line: str, header: _Header) -> None:
        self.problem: ParseProblem | None = None
        self.line_no = line_no
        self.index = header.index
        self.type_name = header.type_name
        self.removed = header.removed
        self.src_ip_sticky = header.src_ip_sticky
        self.address = header.address
        self.prefix_length = header.prefix_length
        self.ip_version = header.ip_version
        self.encap = header.encap
        self.new_size: int | None = None
        self.protocol = PROTOCOL_ANY
        self.port = PORT_ANY
        self.dscp: int | None = None
        self.target_port: int | None = None
        self.as_count: int | None = None
        self.backends: list[Backend] = []
        self.addresses: set[str] = set()
        self.lines: list[str] = []  # the backend lines (CR removed)
        # Which section the next line may belong to: "head", "counters", "as".
        self.section = "head"
        if header.problem is not None:
            self.fail(line_no, line, header.problem)

    def fail(self, line_no: int, line: str, reason: str) -> None:
        if self.problem is None:
            self.problem = ParseProblem(line_no, line, reason)

    def feed(self, line_no: int, line: str, s: str) -> None:
        """One non-blank line inside the block (`s`: the line stripped)."""
        if self.section == "head":
            self._feed_head(line_no, line, s)
        elif self.section == "counters":
            if _COUNTER_LINE.match(s):
                return
            m = _AS_COUNT.match(s)
            if m is None:
                self.fail(line_no, line, "unexpected line in counters")
                return
            self.as_count = int(m.group(1))
            self.section = "as"
        else:
            self._feed_backend(line_no, line, s)

    def _feed_head(self, line_no: int, line: str, s: str) -> None:
        if (m := _NEW_SIZE.match(s)) is not None:
            if self.new_size is not None:
                self.fail(line_no, line, "duplicate new_size")
            self.new_size = int(m.group(1))
            if self.new_size > _U32_MAX:
                self.fail(line_no, line, "new_size out of range")
        elif (m := _PROTO_PORT.match(s)) is not None:
            self.protocol, self.port = int(m.group(1)), int(m.group(2))
            if self.protocol > 255:
                self.fail(line_no, line, f"protocol {self.protocol} out of range")
            if self.port > _U16_MAX:
                self.fail(line_no, line, f"port {self.port} out of range")
        elif (m := _DSCP.match(s)) is not None:
            self.dscp = int(m.group(1))
            if self.encap is not Encap.L3DSR or self.dscp > 63:
                self.fail(line_no, line, "unexpected dscp")
        elif (m := _NAT.match(s)) is not None:
            # The `port:` here is VPP's ntohs() of a host-order value (garbage);
            # the protocol line carries the real port.
            self.target_port = int(m.group(3))
            if self.encap not in (Encap.NAT4, Encap.NAT6):
                self.fail(line_no, line, "NAT type line on a non-NAT VIP")
            if self.target_port > _U16_MAX:
                self.fail(line_no, line, f"target_port {self.target_port} out of range")
            if m.group(4):
                self.section = "counters"
        elif _COUNTERS.match(s):
            self.section = "counters"
        else:
            self.fail(line_no, line, "unexpected line in VIP header")
        if self.section == "counters" and self.new_size is None:
            self.fail(line_no, line, "counters before new_size")

    def _feed_backend(self, line_no: int, line: str, s: str) -> None:
        backend = _parse_backend(s)
        if isinstance(backend, str):
            self.fail(line_no, line, backend)
        elif backend.address in self.addresses:
            self.fail(line_no, line, "duplicate backend address")
        else:
            self.addresses.add(backend.address)
            self.backends.append(backend)
            self.lines.append(line)

    def finish(self, last_line_no: int, last_line: str) -> Vip | None:
        """The Vip, or None after recording why the block is incomplete."""
        if self.problem is None:
            if self.section != "as":
                self.fail(last_line_no, last_line, "VIP block ends before #as")
            elif self.as_count != len(self.backends):
                self.fail(
                    last_line_no,
                    last_line,
                    f"#as:{self.as_count} but {len(self.backends)} backend lines",
                )
        if self.problem is not None:
            return None
        assert self.new_size is not None  # checked when the counters section began
        return Vip(
            index=self.index,
            address=self.address,
            prefix_length=self.prefix_length,
            ip_version=self.ip_version,
            encap=self.encap,
            protocol=self.protocol,
            port=self.port,
            src_ip_sticky=self.src_ip_sticky,
            flow_table_length=self.new_size,
            removed=self.removed,
            backends=tuple(self.backends),
            dscp=self.dscp,
            target_port=self.target_port,
        )


def _parse_block(block: str, header: _Header) -> tuple[Vip | ParseProblem, tuple[str, ...]]:
    """One VIP block (its first line is the header) -> its Vip or its first problem.

    Line numbers are relative to the block (the header is line 1). Also returns
    the backend lines, for the next parse of the same VIP.
    """
    lines = _lines(block)
    first = lines[0]
    current = _Block(1, first, header)
    last = (1, first)
    for line_no in range(2, len(lines) + 1):
        line = lines[line_no - 1]
        s = line.strip()
        if s:
            current.feed(line_no, line, s)
            last = (line_no, line)
    vip = current.finish(*last)
    if vip is None:
        assert current.problem is not None
        return current.problem, ()
    return vip, tuple(current.lines)


def _with_backends(vip: Vip, backends: tuple[Backend, ...]) -> Vip:
    # Positional: about twice as fast as keywords or dataclasses.replace, and
    # test_cli_parse_memo pins Vip's field order.
    return Vip(
        vip.index, vip.address, vip.prefix_length, vip.ip_version, vip.encap,
        vip.protocol, vip.port, vip.src_ip_sticky, vip.flow_table_length,
        vip.removed, backends, vip.dscp, vip.target_port,
    )  # fmt: skip


def _parse_tail(tail: str, known: _Known) -> _Known | None:
    """A block's text after its counter lines, given the same VIP's block in
    the last parse, with the same text before them. None if anything is
    unusual: the caller then parses the whole block, which finds the problem."""
    n = len(known.vip.backends)
    known_lines = known.backend_lines()
    if "\r" not in tail:
        # VPP's shape: the same `#as:` line as before, as many backend lines,
        # then blank lines. Only the lines that changed are parsed.
        lines = tail.split("\n")
        if lines[0] == known.as_line and len(lines) > n and not any(lines[n + 1 :]):
            del lines[n + 1 :]
            del lines[0]
            backends = list(known.vip.backends)
            moved = False  # a backend line now names another address
            changed = list(map(operator.ne, lines, known_lines))
            i = -1
            for _ in range(changed.count(True)):
                i = changed.index(True, i + 1)
                parsed = _parse_backend(lines[i].strip(), backends[i].address)
                if parsed.__class__ is str:
                    return None
                moved = moved or parsed.address != backends[i].address  # type: ignore[union-attr]  # str ruled out above
                backends[i] = parsed  # type: ignore[assignment]  # str ruled out above
            if moved and len(set(map(_ADDRESS, backends))) != n:
                return None
            vip = _with_backends(known.vip, tuple(backends))
            return _Known(tail, vip, None, known.as_line)
    # Any other shape: line by line, as the counters section would.
    seen = dict(zip(known_lines, known.vip.backends))
    counting = True  # still in the counters section: before `#as:`
    as_count = -1
    found: list[Backend] = []
    found_lines: list[str] = []
    for line in _lines(tail):
        backend = seen.get(line)
        if backend is None:
            s = line.strip()
            if not s:
                continue
            if counting:
                if _COUNTER_LINE.match(s):
                    continue
                m = _AS_COUNT.match(s)
                if m is None:
                    return None
                as_count = int(m.group(1))
                counting = False
                continue
            parsed = _parse_backend(s)
            if isinstance(parsed, str):
                return None
            backend = parsed
        elif counting:
            return None
        found.append(backend)
        found_lines.append(line)
    if counting or as_count != len(found):
        return None
    if len(set(map(_ADDRESS, found))) != len(found):
        return None
    vip = _with_backends(known.vip, tuple(found))
    return _Known.of(tail, vip, found_lines)


_ADDRESS = operator.attrgetter("address")


def _as_line(tail: str) -> str | None:
    """The tail's first line if it is the `#as:` line (for `_parse_tail`)."""
    first = tail.split("\n", 1)[0]
    return first if _AS_COUNT.match(first.strip()) is not None else None


class _Known(NamedTuple):
    """A VIP block seen in the last parse, filed under its text before the counters."""

    tail: str  # the text after the counter lines
    vip: Vip
    # The backend lines (CR removed), one per vip.backends, or None when they
    # are the tail's lines 1..n (VPP's shape): then they are split out of the
    # tail again when needed rather than kept, ~8 MB at 80,000 backends.
    lines: tuple[str, ...] | None
    as_line: str | None  # the tail's first line if it is the `#as:` line

    @classmethod
    def of(cls, tail: str, vip: Vip, lines: Sequence[str]) -> _Known:
        as_line = _as_line(tail)
        n = len(lines)
        if (
            as_line is not None
            and "\r" not in tail
            and tail.split("\n", n + 1)[1 : n + 1] == list(lines)
        ):
            return cls(tail, vip, None, as_line)
        return cls(tail, vip, tuple(lines), as_line)

    def backend_lines(self) -> Sequence[str]:
        if self.lines is not None:
            return self.lines
        n = len(self.vip.backends)
        return self.tail.split("\n", n + 1)[1 : n + 1]


class _LineNumbers:
    """Line number of an offset; offsets must be asked in increasing order."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._offset = 0
        self._line_no = 1

    def at(self, offset: int) -> int:
        self._line_no += self._text.count("\n", self._offset, offset)
        self._offset = offset
        return self._line_no


# From a block's line ending in `counters:` (the end of the part that sets the
# VIP's configuration) through the counter lines that follow it: the printed
# counter values change with traffic but are not used (the served counters come
# from the stats segment). Every line matched here is one that the counters
# section accepts and ignores; anything unusual is left to the tail.
# (Possessive: no character class can give back what the next element needs,
# so this matches what the plain form matches, without its backtracking.)
_COUNTER_LINES = re.compile(
    r"counters:[ \t\r]*+\n((?:[ \t]*+[A-Za-z][A-Za-z0-9 _-]*+: [0-9]{1,20}+[ \t\r]*+\n)*+)"
)


_MISS = _Header("not parsed yet", 0, "", False, False, 4, Encap.GRE4, "", 0)  # a sentinel


class _BlockParser:
    """Parses successive texts exactly (problems with their line numbers),
    reusing unchanged VIP blocks.

    A VIP block whose text is the same as in the previous parse, apart from its
    printed counter values, gives the same `Vip` object again; one whose
    backend lines changed (a new flow count) re-parses only those lines. The
    memory held is that of the VIPs of the last parse. The result is always
    equal to `parse_vips(text)`. The memo is only read during a parse and
    replaced at its end, so two threads parsing at once stay correct (they
    only cost each other misses).
    """

    def __init__(self) -> None:
        self._headers: dict[str, _Header | None] = {}  # header line -> parse
        self._known: dict[str, _Known] = {}  # block text before the counters
        self._whole: dict[str, Vip | ParseProblem] = {}  # other blocks, whole text

    def parse(self, text: str) -> ParsedVips:
        """Parse `show lb vips verbose`; lenient (bad blocks are skipped and reported)."""
        vips: list[Vip] = []
        problems: list[ParseProblem] = []
        seen: set[int] = set()
        line_numbers = _LineNumbers(text)
        starts = self._block_starts(text)
        first = starts[0][0] if starts else len(text)
        for line_no, line in enumerate(_lines(text[:first]), start=1):
            if line.strip():
                problems.append(ParseProblem(line_no, line, "line outside any VIP block"))
        known_before, known_now = self._known, {}
        whole_before, whole_now = self._whole, {}
        ends = [start for start, _ in starts[1:]]
        ends.append(len(text))
        for (start, header), end in zip(starts, ends):
            result: Vip | ParseProblem | None = None
            m = _COUNTER_LINES.search(text, start, end)
            if m is not None:
                head = text[start : m.start(1)]
                tail = text[m.end(1) : end]
                entry = known_before.get(head)
                if entry is not None:
                    if tail == entry.tail:
                        result = entry.vip
                    else:
                        reparsed = _parse_tail(tail, entry)
                        if reparsed is not None:
                            result = reparsed.vip
                            entry = reparsed
                    if result is not None:
                        known_now[head] = entry
            if result is None:
                block = text[start:end]
                result = whole_before.get(block)
                if result is None:
                    result, backends = _parse_block(block, header)
                    if m is not None and isinstance(result, Vip):
                        known_now[head] = _Known.of(tail, result, backends)
                    else:
                        whole_now[block] = result
                else:
                    whole_now[block] = result
            if isinstance(result, Vip):
                if result.index in seen:
                    problems.append(
                        ParseProblem(
                            line_numbers.at(start), "", f"duplicate VIP index {result.index}"
                        )
                    )
                else:
                    seen.add(result.index)
                    vips.append(result)
            else:
                base = line_numbers.at(start) - 1
                problems.append(ParseProblem(base + result.line_no, result.line, result.reason))
        self._known, self._whole = known_now, whole_now
        return ParsedVips(tuple(vips), tuple(problems))

    def _block_starts(self, text: str) -> list[tuple[int, _Header]]:
        """(offset, parsed header) of every VIP header line, in order."""
        # Every header line has " [", and only header lines in VPP's output do.
        before = self._headers
        now: dict[str, _Header | None] = {}
        starts: list[tuple[int, _Header]] = []
        find = text.find
        at = find(" [")
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = find("\n", at)
            if end < 0:
                end = len(text)
            line = text[start:end]  # a CR left at the end is taken by _HEADER's \s*$
            header = before.get(line, _MISS)
            if header is _MISS:
                header = _header(line)
            now[line] = header
            if header is not None:
                starts.append((start, header))
            at = find(" [", end)
        self._headers = now
        return starts


# The values that move with traffic: the counter lines VPP prints in each VIP
# block (the served counters come from the stats segment) and each backend's
# flow count, in either style. Cut out of the text, what is left changes only
# when VPP's configuration does.
_FLOWS_OLD = re.compile(r"buckets +([0-9]{1,20}) flows ")
_FLOWS_MASTER = re.compile(r" flows:([0-9]{1,20}) dpo:")
# What a cut flow count leaves: a line the block parser reads as 0 flows.
_FLOWS_OLD_LEFT = "buckets 0 flows "
_FLOWS_MASTER_LEFT = " flows:0 dpo:"
# Every VIP block starts on a line ` ip4-...` or ` ip6-...` (`format_lb_vip`).
_BLOCK_SEP = "\n ip"


# Text cut per C call: each regex pass or split over one chunk holds the GIL
# about a millisecond, so a GetNext waiting for it is not held up longer.
_CHUNK = 1 << 17


def _cut_chunks(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """The text (VPP's usual shape: no CR, starting with a VIP) a chunk of
    whole VIP blocks at a time: (the blocks without their moving values, each
    `ip` + the rest of the block; the flow counts in order)."""
    n = len(text)
    start = 0
    while start < n:
        end = text.find(_BLOCK_SEP, start + _CHUNK)
        if end < 0:
            end = n
        rest = _COUNTER_LINES.sub("counters:\n", text[start:end])
        parts = _FLOWS_OLD.split(rest)
        left = _FLOWS_OLD_LEFT
        if len(parts) == 1:
            parts = _FLOWS_MASTER.split(rest)
            left = _FLOWS_MASTER_LEFT
        del rest
        flows = parts[1::2]
        blocks = left.join(parts[0::2]).split(_BLOCK_SEP)
        del parts
        blocks[0] = blocks[0][len(" ip") :]  # each chunk starts with ` ip`
        yield blocks, flows
        start = end + 1  # past the separator's newline


def _ints(digits: list[str]) -> list[int]:
    """`[int(d) for d in digits]` (ASCII digit strings), in C: json reads them
    about a third faster than int() one by one; it refuses a leading zero."""
    try:
        return json.loads("[" + ",".join(digits) + "]")  # type: ignore[no-any-return]  # a list of int
    except ValueError:
        return list(map(int, digits))


class VipParser:
    """Parses successive `show lb vips verbose` texts, reusing unchanged VIP blocks.

    Fast path: the values that move with traffic (counter lines, flow counts)
    are cut out of the text in bulk, the flow counts kept as one column
    (`ParsedVips.flows`); what is left of each VIP block is looked up in the
    last parse, so a block whose configuration did not change gives the same
    `Vip` object again without being read, and only new or changed blocks are
    parsed. Whenever that is not clean (any problem, a text not in VPP's usual
    shape, flow counts that do not line up one per backend line), the whole
    text is parsed exactly instead (`_BlockParser`: problems with their line
    numbers). `parse(text).with_flows()` always equals `parse_vips(text).vips`
    and the problems are the same.

    The memo holds the Vips of the last parse, filed under the `hash()` of
    their block's text without moving values, not the text itself (~550 bytes
    a VIP): str hashes are SipHash under a key drawn at random per process,
    so a changed block takes an old one's Vip with odds of 2**-64.
    """

    def __init__(self) -> None:
        self._blocks: dict[int, Vip] = {}  # hash of a block's text without moving values -> Vip
        self._exact = _BlockParser()

    def parse(self, text: str) -> ParsedVips:
        """Parse `show lb vips verbose`; lenient (bad blocks are skipped and reported)."""
        if "\r" not in text and text.startswith(" ip"):
            fast = self._parse_cut(text)
            if fast is not None:
                return fast
        self._blocks = {}
        parsed = self._exact.parse(text)
        return ParsedVips(
            parsed.vips, parsed.problems, [b.flows for v in parsed.vips for b in v.backends]
        )

    def _parse_cut(self, text: str) -> ParsedVips | None:
        """The fast path; None at the first thing that is not clean."""
        before = self._blocks
        now: dict[int, Vip] = {}
        vips: list[Vip] = []
        flows: list[int] = []
        parsed_any = False
        for blocks, flow_texts in _cut_chunks(text):
            keys = list(map(hash, blocks))
            found = list(map(before.get, keys))
            if None in found:
                parsed_any = True
                for k, vip in enumerate(found):
                    if vip is None:
                        parsed = _block_vip("ip" + blocks[k])
                        if parsed is None:
                            return None
                        found[k] = parsed
            chunk = cast("list[Vip]", found)  # no None left (see above)
            # One cut flow count per backend line: each backend line the block
            # parser accepted holds exactly one, so none came from elsewhere.
            if sum(map(len, map(_BACKENDS, chunk))) != len(flow_texts):
                return None
            vips.extend(chunk)
            flows.extend(_ints(flow_texts))
            now.update(zip(keys, chunk))
        # A duplicate index: the exact parse reports it. With every block from
        # the memo (whose Vips have distinct indexes), only a block listed twice.
        if len(now) != len(vips) if not parsed_any else len(set(map(_INDEX, vips))) != len(vips):
            return None
        self._blocks = now
        return ParsedVips(tuple(vips), (), flows)


_BACKENDS = operator.attrgetter("backends")
_INDEX = operator.attrgetter("index")


def _block_vip(block: str) -> Vip | None:
    """One VIP block on its own (its text without moving values) -> its Vip, or
    None when anything in it is a problem."""
    first = block.split("\n", 1)[0]
    header = _header(" " + first)
    if header is None:
        return None
    result, _ = _parse_block(" " + block, header)
    return result if isinstance(result, Vip) else None


def parse_vips(text: str) -> ParsedVips:
    """Parse `show lb vips verbose`; lenient (bad blocks are skipped and reported).

    Stateless; a scraper parsing the same VIP list again and again should keep
    a `VipParser`.
    """
    return _BlockParser().parse(text)


def parse_vips_strict(text: str) -> tuple[Vip, ...]:
    """Parse `show lb vips verbose`; raise the first `CliParseError`."""
    parsed = parse_vips(text)
    if parsed.problems:
        first = min(parsed.problems, key=lambda p: p.line_no)
        raise CliParseError(first.line_no, first.line, first.reason)
    return parsed.vips


_SRC4 = re.compile(r"ip4-src-address:\s*(\S+)")
_SRC6 = re.compile(r"ip6-src-address:\s*(\S+)")
_VIP_COUNT = re.compile(r"#vips:\s*([0-9]{1,20})")
_TIMEOUT = re.compile(r"^\s*timeout:\s*([0-9]{1,20})s\s*$", re.MULTILINE)
_USAGE = re.compile(r"^\s*usage:\s*[0-9]{1,20}\s*/\s*([0-9]{1,20})\s*$", re.MULTILINE)


def _settings_address(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    if m is None:
        return None
    try:
        return _address(m.group(1)).compressed
    except ValueError:
        return None


def parse_lb_settings(text: str) -> LbSettings:
    """Parse `show lb` (lb.c `format_lb_main`); a field VPP did not print is None.

    The per-core lines (``core N / timeout: Ts / usage: used / size``) exist only
    for threads whose sticky table was created (lazily, on the first packet), so
    before any traffic the timeout and bucket count are unknown (None). `size`
    is `lb_hash_size()` = buckets_mask + LBHASH_ENTRY_PER_BUCKET (4), i.e.
    sticky_buckets_per_core + 3 (VPP's default 1024 prints as 1027); VPP
    requires a power of two, so anything else is reported as unknown.
    """
    buckets: int | None = None
    if (m := _USAGE.search(text)) is not None:
        candidate = int(m.group(1)) - 3
        if candidate > 0 and candidate & (candidate - 1) == 0:
            buckets = candidate
    timeout = _TIMEOUT.search(text)
    return LbSettings(
        ip4_src_address=_settings_address(_SRC4, text),
        ip6_src_address=_settings_address(_SRC6, text),
        sticky_buckets_per_core=buckets,
        flow_timeout_s=int(timeout.group(1)) if timeout is not None else None,
    )


def parse_lb_vip_count(text: str) -> int | None:
    """Number of real VIPs per `show lb` (`#vips` counts VPP's placeholder), or None."""
    m = _VIP_COUNT.search(text)
    if m is None:
        return None
    return max(int(m.group(1)) - 1, 0)
