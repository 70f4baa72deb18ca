"""`agentx-lb show`: one scrape as aligned plain-text tables for a person.

`render()` is pure: reduced rows in, text out. Numbers are right-aligned with
thousands separators; an unknown route counter is `-`, never 0. A `Style`
decides how the header and the alarming cells look: `PLAIN` (the default,
and always when stdout is not a terminal) adds nothing at all;
`terminal_style()` takes bold and standout from the terminal's terminfo
entry, so no escape sequence is written by hand.
"""

from __future__ import annotations

import curses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from agentx_lb.model import VipRow

__all__ = ["PLAIN", "Style", "count", "render", "terminal_style"]

ALIGN_LEFT, ALIGN_RIGHT = "l", "r"


@dataclass(frozen=True, slots=True)
class Style:
    """How to emphasise padded cells: header cells and alarming values."""

    header: Callable[[str], str] = str
    alert: Callable[[str], str] = str


PLAIN = Style()


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    align: str = ALIGN_RIGHT


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    alert: bool = False


def count(value: int | None) -> str:
    """12345 -> `12,345`; None (unknown) -> `-`."""
    return "-" if value is None else f"{value:,}"


def table(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], style: Style = PLAIN
) -> list[str]:
    """Aligned lines: two spaces between columns, no trailing blanks when plain."""
    widths = [len(c.title) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell.text))

    def pad(text: str, i: int) -> str:
        return text.ljust(widths[i]) if columns[i].align == ALIGN_LEFT else text.rjust(widths[i])

    lines = ["  ".join(style.header(pad(c.title, i)) for i, c in enumerate(columns)).rstrip()]
    for row in rows:
        parts = []
        for i, cell in enumerate(row):
            text = pad(cell.text, i)
            parts.append(style.alert(text) if cell.alert else text)
        lines.append("  ".join(parts).rstrip())
    return lines


VIP_COLUMNS = (
    Column("IDX"),
    Column("VIP", ALIGN_LEFT),
    Column("ENCAP", ALIGN_LEFT),
    Column("BACKENDS"),
    Column("STATUS", ALIGN_LEFT),
    Column("NEXT PKTS"),
    Column("FIRST PKTS"),
    Column("UNTRACKED"),
    Column("NO SERVER"),
    Column("ROUTE PKTS"),
    Column("ROUTE BYTES"),
)
BACKEND_COLUMNS = (
    Column("IDX"),
    Column("VIP", ALIGN_LEFT),
    Column("BACKEND", ALIGN_LEFT),
    Column("STATE", ALIGN_LEFT),
    Column("WEIGHT"),
    Column("BUCKETS"),
    Column("FLOWS"),
)


def _vip_cells(row: VipRow) -> list[Cell]:
    vip, c = row.vip, row.counters
    active = sum(1 for b in vip.backends if b.used)
    return [
        Cell(str(vip.index)),
        Cell(vip.name),
        Cell(vip.encap.name.lower()),
        Cell(f"{active}/{len(vip.backends)}", alert=active == 0),
        Cell("up" if active else "noActiveBackends", alert=active == 0),
        Cell(count(c.next_packets)),
        Cell(count(c.first_packets)),
        Cell(count(c.untracked_packets)),
        Cell(count(c.no_server_packets), alert=c.no_server_packets > 0),
        Cell(count(c.route_packets)),
        Cell(count(c.route_octets)),
    ]


def _backend_rows(rows: Sequence[VipRow]) -> list[list[Cell]]:
    out = []
    for row in rows:
        for b in row.vip.backends:
            out.append(
                [
                    Cell(str(row.vip.index)),
                    Cell(row.vip.name),
                    Cell(b.address),
                    Cell("used" if b.used else "removed", alert=not b.used),
                    Cell(count(b.weight)),
                    Cell(count(b.buckets)),
                    Cell(count(b.flows)),
                ]
            )
    return out


def summary(rows: Sequence[VipRow], vpp_version: str) -> str:
    backends = [b for row in rows for b in row.vip.backends]
    active = sum(1 for b in backends if b.used)
    version = f"VPP {vpp_version}" if vpp_version else "VPP"
    if not rows:
        return f"{version}: no VIPs configured"
    return (
        f"{version}: {len(rows):,} VIP{'s' if len(rows) != 1 else ''}, "
        f"{len(backends):,} backends ({active:,} active)"
    )


def render(
    rows: Sequence[VipRow], *, vpp_version: str = "", backends: bool = False, style: Style = PLAIN
) -> str:
    """The `show` text: a summary line, the VIP table and, with `backends`, the backend table."""
    lines = [summary(rows, vpp_version)]
    if rows:
        lines += ["", *table(VIP_COLUMNS, [_vip_cells(r) for r in rows], style)]
    if backends:
        backend_rows = _backend_rows(rows)
        lines.append("")
        if backend_rows:
            lines += table(BACKEND_COLUMNS, backend_rows, style)
        else:
            lines.append("no backends")
    return "\n".join(lines) + "\n"


def terminal_style(stream: TextIO) -> Style:
    """Bold headers and standout alerts from terminfo when `stream` is a terminal, else PLAIN."""
    try:
        if not stream.isatty():
            return PLAIN
        curses.setupterm(fd=stream.fileno())
        bold, standout, reset = (curses.tigetstr(c) for c in ("bold", "smso", "sgr0"))
    except (curses.error, OSError, ValueError, AttributeError):
        return PLAIN
    if not bold or not reset:
        return PLAIN
    b, r = bold.decode("ascii", "replace"), reset.decode("ascii", "replace")
    s = standout.decode("ascii", "replace") if standout else b
    return Style(header=lambda t: f"{b}{t}{r}", alert=lambda t: f"{s}{t}{r}")
