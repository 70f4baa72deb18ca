"""The pure halves of `show` and `top`: table text, rates, the top screen and keys."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest

from agentx_lb.model import RawScrape, VipCounters, VipRow
from agentx_lb.views import show
from agentx_lb.views.rates import COUNTERS, RowState, rates
from agentx_lb.views.scrape import Scrape, Scraper
from agentx_lb.views.top import MIN_HEIGHT, MIN_WIDTH, SORT_KEYS, Top, View, layout, rate_text
from snmpfixtures import make_snapshot

ROWS = make_snapshot(indices=(1, 3, 5, 12)).rows


def _row(index: int) -> VipRow:
    return next(r for r in ROWS if r.vip.index == index)


def _bump(row: VipRow, by: int, **changes: object) -> VipRow:
    c = row.counters
    bumped = (None if v is None else v + by for v in dataclasses.astuple(c))
    counters = VipCounters(*bumped)  # type: ignore[arg-type]  # None only where allowed
    return dataclasses.replace(row, counters=counters, **changes)  # type: ignore[arg-type]  # fields of VipRow


# ---------------------------------------------------------------- show


def test_show_prints_every_vip_with_separators_and_aligned_columns() -> None:
    text = show.render(ROWS, vpp_version="25.10-release")
    lines = text.splitlines()
    assert lines[0] == "VPP 25.10-release: 4 VIPs, 8 backends (6 active)"
    head, *body = lines[2:]
    assert head.split() == [
        "IDX",
        "VIP",
        "ENCAP",
        "BACKENDS",
        "STATUS",
        "NEXT",
        "PKTS",
        "FIRST",
        "PKTS",
        "UNTRACKED",
        "NO",
        "SERVER",
        "ROUTE",
        "PKTS",
        "ROUTE",
        "BYTES",
    ]
    assert len(body) == 4
    # Right-aligned numbers end in the same column as their title.
    for title in ("NEXT PKTS", "NO SERVER", "ROUTE BYTES"):
        end = head.index(title) + len(title)
        for line in body:
            assert line[end - 1] != " " and (len(line) == end or line[end] == " "), (title, line)
    one = body[0]
    assert one.split()[:5] == ["1", "192.0.2.1/32", "tcp/80", "gre4", "2/2"]
    assert "18,446,744,073,709,551,615" in one  # thousands separators, Counter64 exact
    three = body[1]
    assert "0/2" in three and "noActiveBackends" in three
    assert "3,000" in three and "1,200" in three
    twelve = body[3]
    assert twelve.split()[-2:] == ["-", "-"]  # unknown route counters: -, never 0


def test_show_backends_table() -> None:
    text = show.render(ROWS, backends=True)
    blocks = text.split("\n\n")
    assert len(blocks) == 3
    head, *lines = blocks[2].splitlines()
    assert head.split() == ["IDX", "VIP", "BACKEND", "STATE", "WEIGHT", "BUCKETS", "FLOWS"]
    assert len(lines) == 8
    assert lines[0].split() == [
        "1",
        "192.0.2.1/32",
        "tcp/80",
        "10.0.1.1",
        "used",
        "0",
        "1,024",
        "10",
    ]
    assert lines[2].split()[4] == "removed"
    assert lines[-1].split()[-3:] == ["-", "2,048", "121"]  # no weight printed by VPP


def test_show_without_vips_says_so() -> None:
    assert show.render((), vpp_version="25.10-release", backends=True) == (
        "VPP 25.10-release: no VIPs configured\n\nno backends\n"
    )


def test_plain_style_has_no_escapes_and_a_style_marks_header_and_alerts() -> None:
    assert "\x1b" not in show.render(ROWS, backends=True)
    marked = show.Style(header=lambda t: f"<{t}>", alert=lambda t: f"!{t}!")
    text = show.render(ROWS, style=marked)
    assert "<IDX>" in text
    assert "!noActiveBackends!" in text
    # Styles wrap padded cells: without the marks the text is the plain one.
    plain = re.sub(r"[<>!]", "", text)
    assert [ln.rstrip() for ln in plain.splitlines()] == show.render(ROWS).splitlines()


def test_terminal_style_is_plain_when_not_a_terminal() -> None:
    assert show.terminal_style(io.StringIO()) is show.PLAIN


# ---------------------------------------------------------------- rates


def test_rates_are_deltas_over_the_real_elapsed_time() -> None:
    before = (_row(1), _row(12))
    now = (_bump(_row(1), 50), _bump(_row(12), 50))
    got = {r.row.vip.index: r for r in rates(before, 10.0, now, 12.5)}
    assert got[1].state is RowState.OK
    assert got[1].per_s == (20.0,) * len(COUNTERS)  # 50 over 2.5 s
    assert got[12].rate("first_packets") == 20.0
    assert got[12].rate("route_packets") is None  # unknown route counter: no rate


def test_moved_discontinuity_or_new_identity_is_a_reset_never_a_rate() -> None:
    one = _row(1)
    restarted = dataclasses.replace(_bump(one, 5), discontinuity_cs=one.discontinuity_cs + 700)
    recreated = dataclasses.replace(
        _bump(_row(3), 0), vip=dataclasses.replace(_row(3).vip, port=8080)
    )
    # Even a counter that went down (which reduce never serves) is not a rate.
    backwards = _bump(_row(5), -1)
    got = {
        r.row.vip.index: r
        for r in rates(
            (one, _row(3), _row(5)),
            0.0,
            (restarted, recreated, backwards, _row(12)),
            1.0,
        )
    }
    assert got[1].state is RowState.RESET and set(got[1].per_s) == {None}
    assert got[3].state is RowState.RESET
    assert got[5].state is RowState.RESET
    assert got[12].state is RowState.NEW and set(got[12].per_s) == {None}


def test_first_scrape_has_no_rates() -> None:
    assert {r.state for r in rates(None, 0.0, ROWS, 1.0)} == {RowState.NEW}


class _Source:
    def __init__(self, raws: list[RawScrape]) -> None:
        self.raws = raws

    def read(self) -> RawScrape:
        return self.raws.pop(0)

    def close(self) -> None:
        pass


def test_scraper_carries_reduce_state_and_stamps_each_read() -> None:
    seen = []

    def fake_reduce(
        raw: RawScrape, state: object, now_cs: int
    ) -> tuple[tuple[VipRow, ...], object]:
        seen.append((state, now_cs))
        return ROWS, f"state after {now_cs}"

    clock = iter([100.0, 101.0, 102.5]).__next__
    raw = RawScrape(
        vips=(), problems=(), lb_counters={}, route_to=(), stats_index={}, vpp_instance="x"
    )
    scraper = Scraper(_Source([raw, raw]), clock=clock, reduce=fake_reduce)
    a = scraper.scrape()
    b = scraper.scrape()
    assert (a.at_s, b.at_s) == (101.0, 102.5)
    assert seen == [(None, 100), ("state after 100", 250)]


# ---------------------------------------------------------------- the top screen


def _text(lines: list[list[tuple[str, str]]]) -> list[str]:
    return ["".join(t for t, _ in line) for line in lines]


def _scrape(rows: tuple[VipRow, ...], at_s: float) -> Scrape:
    raw = RawScrape(
        vips=(),
        problems=(),
        lb_counters={},
        route_to=(),
        stats_index={},
        vpp_instance="x",
        vpp_version="25.10-release",
    )
    return Scrape(raw=raw, rows=rows, at_s=at_s)


def _top_after_two_scrapes() -> Top:
    top = Top(interval_s=1.0)
    top.on_scrape(_scrape((_row(1), _row(3), _row(5)), 0.0))
    bumped = (_bump(_row(1), 10), _bump(_row(3), 40), _bump(_row(5), 20))
    top.on_scrape(_scrape(bumped, 2.0))
    return top


def test_top_screen_shows_rates_keys_and_sorts() -> None:
    top = _top_after_two_scrapes()
    lines = _text(layout(top.view, 120, 20))
    assert lines[0].startswith("agentx-lb top  VPP 25.10-release  3 VIPs  every 1s")
    for key, (label, _) in SORT_KEYS.items():
        assert f"[{key}]{label}" in lines[1]
    assert "[f]first/s*" in lines[1] and "[q]uit" in lines[1]
    head = lines[3].split()
    assert head[:5] == ["IDX", "VIP", "BACKENDS", "FIRST/s", "DROPS/s"]
    body = [ln.split() for ln in lines[4:] if ln.strip()]
    assert [b[0] for b in body] == ["3", "5", "1"]  # first/s 20, 10, 5
    assert body[0][4:7] == ["20.0", "20.0", "20.0"]
    assert top.on_key("i")
    body = [ln.split() for ln in _text(layout(top.view, 120, 20))[4:] if ln.strip()]
    assert [b[0] for b in body] == ["1", "3", "5"]
    assert top.on_key("r")
    body = [ln.split() for ln in _text(layout(top.view, 120, 20))[4:] if ln.strip()]
    assert [b[0] for b in body] == ["5", "3", "1"]
    assert not top.on_key("q")


def test_top_shows_a_reset_not_a_number() -> None:
    top = Top(interval_s=1.0)
    one = _row(1)
    top.on_scrape(_scrape((one,), 0.0))
    restarted = dataclasses.replace(_bump(one, 3), discontinuity_cs=one.discontinuity_cs + 1)
    top.on_scrape(_scrape((restarted,), 1.0))
    row = _text(layout(top.view, 120, 10))[4]
    assert row.split()[4:] == ["reset"] * 6
    assert not re.search(r"-\d", row)


def test_top_narrow_terminal_drops_optional_columns_then_says_too_small() -> None:
    top = _top_after_two_scrapes()
    wide = _text(layout(top.view, 120, 10))[3]
    narrow = _text(layout(top.view, MIN_WIDTH, 10))
    assert "ROUTE bit/s" in wide and "ROUTE bit/s" not in narrow[3]
    assert {"FIRST/s", "DROPS/s", "NEXT/s"} <= set(narrow[3].split())
    assert all(len(ln) <= MIN_WIDTH for ln in narrow)
    small = _text(layout(top.view, MIN_WIDTH - 1, 10))
    assert "terminal too small" in " ".join(small)
    assert all(len(ln) <= MIN_WIDTH - 1 for ln in small)
    short = _text(layout(top.view, 120, MIN_HEIGHT - 1))
    assert short[0].startswith("terminal too small: 120x4")


def test_top_more_vips_than_lines() -> None:
    top = Top(interval_s=1.0)
    top.on_scrape(_scrape(make_snapshot().rows, 0.0))
    lines = _text(layout(top.view, 100, 8))
    assert len(lines) == 8
    assert lines[-1] == "... 12 more VIPs"


def test_top_error_keeps_rates_and_says_why() -> None:
    top = _top_after_two_scrapes()
    top.on_error("scrape failed: api socket /run/vpp/api.sock: no such socket")
    lines = layout(top.view, 120, 10)
    assert lines[2] == [("scrape failed: api socket /run/vpp/api.sock: no such socket", "alert")]
    assert len([ln for ln in _text(lines)[4:] if ln.strip()]) == 3


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0.0, "0"),
        (0.25, "0.2"),
        (99.94, "99.9"),
        (1234.5, "1,234"),
        (1e9, "1,000,000,000"),
    ],
)
def test_rate_text(value: float | None, text: str) -> None:
    assert rate_text(value) == text


def test_view_defaults_to_first_packets() -> None:
    assert View().sort == "f"
