"""`agentx-lb top`: a live terminal view of per-VIP rates.

Two halves. `layout()` is pure: rates, sort key, terminal size in, screen
lines out (each a list of (text, emphasis) segments), including the "terminal
too small" screen. `run_top()` is the I/O: curses from the standard library
(no dependency; terminfo does the escape sequences, `curses.wrapper` restores
the terminal on any exit), a scrape thread so that keys stay responsive while
VPP is read, and a loop that redraws on a new scrape, a key or a resize.

Keys: the sort keys shown on the second line, `r` reverses, `q` quits.
Ctrl-C and SIGTERM set the stop event (the CLI's handlers) and end the loop
within one key timeout; the terminal is left as it was found.
"""

from __future__ import annotations

import curses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentx_lb.errors import SourceError
from agentx_lb.views.rates import RowState, VipRate, rates
from agentx_lb.views.scrape import Scrape

__all__ = ["SORT_KEYS", "Scrapes", "Top", "View", "layout", "run_top"]

log = logging.getLogger(__name__)

# Emphasis of a segment: plain, bold (the prominent rates), header, alert.
PLAIN, BOLD, HEADER, ALERT = "", "bold", "header", "alert"
Segment = tuple[str, str]
Line = list[Segment]

KEY_TIMEOUT_MS = 200  # how long getch waits: the latency of a stop signal
MIN_NAME = 18  # the VIP column is never narrower


@dataclass(frozen=True, slots=True)
class Col:
    title: str
    width: int
    counter: str | None = None  # VipCounters field whose rate this is
    scale: int = 1  # 8: octets/s shown as bit/s
    emphasis: str = PLAIN
    optional: bool = False  # dropped, right to left, when the terminal is narrow


RATE_COLS = (
    Col("FIRST/s", 10, "first_packets", emphasis=BOLD),
    Col("DROPS/s", 10, "no_server_packets", emphasis=BOLD),
    Col("NEXT/s", 11, "next_packets"),
    Col("UNTRK/s", 9, "untracked_packets", optional=True),
    Col("ROUTE pps", 11, "route_packets", optional=True),
    Col("ROUTE bit/s", 13, "route_octets", scale=8, optional=True),
)
IDX_WIDTH, BACKENDS_WIDTH = 5, 8
MIN_WIDTH = (
    IDX_WIDTH
    + 1
    + MIN_NAME
    + 1
    + BACKENDS_WIDTH
    + sum(1 + c.width for c in RATE_COLS if not c.optional)
)
HEAD_LINES = 4  # title, keys, status, column titles
MIN_HEIGHT = HEAD_LINES + 1


def _by_rate(counter: str, scale: int = 1) -> Callable[[VipRate], tuple[Any, ...]]:
    def key(r: VipRate) -> tuple[Any, ...]:
        value = r.rate(counter)
        # Highest first; rows without a rate (new, reset, unknown) after every number.
        return (value is None, -(value or 0.0) * scale, r.row.vip.index)

    return key


def _active(r: VipRate) -> tuple[Any, ...]:
    backends = r.row.vip.backends
    return (sum(1 for b in backends if b.used), -len(backends), r.row.vip.index)


# key -> (label, sort key): what the second line of the screen shows. drops/s are
# VPP's `no server configured` packets; pps and bit/s the VIP prefix's route counters.
SORT_KEYS: dict[str, tuple[str, Callable[[VipRate], tuple[Any, ...]]]] = {
    "f": ("first/s", _by_rate("first_packets")),
    "d": ("drops/s", _by_rate("no_server_packets")),
    "n": ("next/s", _by_rate("next_packets")),
    "u": ("untrk/s", _by_rate("untracked_packets")),
    "p": ("pps", _by_rate("route_packets")),
    "b": ("bit/s", _by_rate("route_octets")),
    "a": ("active", _active),
    "i": ("index", lambda r: (r.row.vip.index,)),
    "v": ("vip", lambda r: (r.row.vip.name, r.row.vip.index)),
}
DEFAULT_SORT = "f"


def rate_text(value: float | None) -> str:
    """Per-second rate: `12,345` from 100 up, `12.3` below, `0`, `-` when unknown."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


@dataclass
class View:
    """What the screen shows; `layout()` turns it into lines."""

    rates: list[VipRate] = field(default_factory=list)
    vpp_version: str = ""
    interval_s: float = 5.0
    elapsed_s: float | None = None  # real time between the last two scrapes
    status: str = "waiting for the first scrape of VPP"
    status_alert: bool = False
    sort: str = DEFAULT_SORT
    reverse: bool = False


def layout(view: View, width: int, height: int) -> list[Line]:
    """The screen as at most `height` lines of at most `width` characters."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        text = f"terminal too small: {width}x{height}, agentx-lb top needs {MIN_WIDTH}x{MIN_HEIGHT}"
        words, wrapped, line = text.split(), [], ""
        for word in words:  # wrap at word boundaries into what there is
            if line and len(line) + 1 + len(word) > width:
                wrapped.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        wrapped.append(line)
        return [[(ln[:width], ALERT)] for ln in wrapped[: max(height, 0)]]

    n_vips = len(view.rates)
    title = (
        f"agentx-lb top  VPP {view.vpp_version or '?'}  {n_vips:,} VIP{'s' if n_vips != 1 else ''}"
        f"  every {view.interval_s:g}s"
    )
    if view.elapsed_s is not None:
        title += f"  last interval {view.elapsed_s:.2f}s"
    # Quit first, so that it shows on the narrowest screen.
    keys: Line = [(f"[q]uit [r]everse{'*' if view.reverse else ''}  sort:", PLAIN)]
    for key, (label, _) in SORT_KEYS.items():
        chosen = key == view.sort
        keys.append((f" [{key}]{label}{'*' if chosen else ''}", HEADER if chosen else PLAIN))

    # Columns that fit: the VIP name gets what the rate columns leave.
    cols = list(RATE_COLS)
    longest = max((len(r.row.vip.name) for r in view.rates), default=MIN_NAME)

    def fixed(cs: Sequence[Col]) -> int:
        return IDX_WIDTH + 1 + 1 + BACKENDS_WIDTH + sum(1 + c.width for c in cs)

    while width - fixed(cols) < MIN_NAME and cols[-1].optional:
        cols.pop()
    name_w = max(MIN_NAME, min(longest, width - fixed(cols)))

    head = f"{'IDX':>{IDX_WIDTH}} {'VIP':<{name_w}} {'BACKENDS':>{BACKENDS_WIDTH}}"
    head += "".join(f" {c.title:>{c.width}}" for c in cols)
    lines: list[Line] = [
        [(title[:width], HEADER)],
        _clip(keys, width),
        [(view.status[:width], ALERT if view.status_alert else PLAIN)],
        [(head[:width], HEADER)],
    ]
    ordered = sorted(view.rates, key=SORT_KEYS[view.sort][1], reverse=view.reverse)
    room = height - HEAD_LINES
    shown = ordered if len(ordered) <= room else ordered[: room - 1]
    for r in shown:
        vip = r.row.vip
        active = sum(1 for b in vip.backends if b.used)
        name = vip.name if len(vip.name) <= name_w else vip.name[: name_w - 1] + "~"
        segs: Line = [
            (f"{vip.index:>{IDX_WIDTH}} {name:<{name_w}} ", PLAIN),
            (
                f"{f'{active}/{len(vip.backends)}':>{BACKENDS_WIDTH}}",
                ALERT if active == 0 else PLAIN,
            ),
        ]
        for c in cols:
            if r.state is RowState.OK:
                value = r.rate(c.counter or "")
                text = rate_text(None if value is None else value * c.scale)
                alert = c.counter == "no_server_packets" and bool(value)
                segs.append((f" {text:>{c.width}}", ALERT if alert else c.emphasis))
            else:
                word = r.state.value if r.state is RowState.RESET else "-"
                segs.append((f" {word:>{c.width}}", ALERT if r.state is RowState.RESET else PLAIN))
        lines.append(_clip(segs, width))
    if len(shown) < len(ordered):
        lines.append([(f"... {len(ordered) - len(shown):,} more VIPs"[:width], PLAIN)])
    return lines


def _clip(segments: Line, width: int) -> Line:
    out: Line = []
    used = 0
    for text, emphasis in segments:
        if used >= width:
            break
        out.append((text[: width - used], emphasis))
        used += len(out[-1][0])
    return out


class Top:
    """The state between scrapes: the last good scrape, the view, the keys."""

    def __init__(self, interval_s: float, sort: str = DEFAULT_SORT) -> None:
        self.view = View(interval_s=interval_s, sort=sort)
        self._last: Scrape | None = None

    def on_scrape(self, scrape: Scrape) -> None:
        before = self._last
        self.view.rates = rates(
            before.rows if before else None,
            before.at_s if before else 0.0,
            scrape.rows,
            scrape.at_s,
        )
        self.view.vpp_version = scrape.raw.vpp_version
        self.view.elapsed_s = None if before is None else scrape.at_s - before.at_s
        if before is None:
            self.view.status = "first scrape: rates from the next one"
        else:
            self.view.status = ""
        self.view.status_alert = False
        self._last = scrape

    def on_error(self, message: str) -> None:
        # Rates are kept as they were; the next good scrape is compared with the
        # last good one, over the real time between them.
        self.view.status = message
        self.view.status_alert = True

    def on_key(self, key: str) -> bool:
        """Apply a key; False when it means quit."""
        if key in ("q", "Q"):
            return False
        if key in SORT_KEYS:
            if key == self.view.sort:
                self.view.reverse = not self.view.reverse
            else:
                self.view.sort, self.view.reverse = key, False
        elif key == "r":
            self.view.reverse = not self.view.reverse
        return True


# ---------------------------------------------------------------- terminal I/O


class _LastLog(logging.Handler):
    """While curses owns the terminal, log records go to the status line, not stderr."""

    def __init__(self, top: Top, lock: threading.Lock) -> None:
        super().__init__(logging.WARNING)
        self._top, self._lock = top, lock

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self._top.on_error(f"{record.levelname.lower()}: {record.getMessage()}")


def _scrape_loop(
    scrape: Callable[[], Scrape],
    interval_s: float,
    stop: threading.Event,
    results: queue.Queue[Any],
) -> None:
    deadline = time.monotonic()
    while not stop.is_set():
        try:
            results.put(scrape())
        except SourceError as exc:
            results.put(exc)
        except Exception as exc:
            log.debug("scrape crashed", exc_info=True)
            results.put(RuntimeError(f"scrape crashed: {exc!r}"))
            return
        deadline += interval_s
        now = time.monotonic()
        if now >= deadline:  # overran: skip the missed slots, no burst
            deadline += ((now - deadline) // interval_s + 1) * interval_s
        stop.wait(deadline - now)


class Scrapes(Protocol):
    """What `run_top` needs: `agentx_lb.views.scrape.Scraper`."""

    def scrape(self) -> Scrape: ...

    def close(self) -> None: ...


def run_top(
    scraper: Scrapes, *, interval_s: float, stop: threading.Event, sort: str = DEFAULT_SORT
) -> int:
    """Run the live view until q, Ctrl-C or SIGTERM (`stop`); 0, or 1 after a crash.

    The scraper is closed on the way out, unless its thread is still stuck in
    a VPP call (a daemon thread: it cannot hold the exit).
    """
    top = Top(interval_s, sort)
    lock = threading.Lock()
    results: queue.Queue[Any] = queue.Queue()
    worker_stop = threading.Event()
    worker = threading.Thread(
        target=_scrape_loop,
        args=(scraper.scrape, interval_s, worker_stop, results),
        name="top-scrape",
        daemon=True,
    )
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = _LastLog(top, lock)
    root.handlers[:] = [handler]
    status = 0
    try:
        worker.start()
        status = curses.wrapper(_loop, top, lock, results, stop)
    finally:
        worker_stop.set()
        root.handlers[:] = saved
        worker.join(1.0)
        if not worker.is_alive():
            scraper.close()
    return status


def _attrs() -> dict[str, int]:
    alert = curses.A_REVERSE
    if curses.has_colors():
        try:
            curses.use_default_colors()
            curses.init_pair(1, curses.COLOR_RED, -1)
            alert = curses.color_pair(1) | curses.A_BOLD
        except curses.error:
            pass
    return {PLAIN: curses.A_NORMAL, BOLD: curses.A_BOLD, HEADER: curses.A_REVERSE, ALERT: alert}


def _loop(
    screen: Any, top: Top, lock: threading.Lock, results: queue.Queue[Any], stop: threading.Event
) -> int:
    try:
        curses.curs_set(0)
    except curses.error:
        pass  # a terminal without an invisible cursor
    screen.timeout(KEY_TIMEOUT_MS)
    screen.keypad(True)
    attrs = _attrs()
    status = 0
    dirty = True
    while not stop.is_set():
        while True:  # every scrape that arrived
            try:
                item = results.get_nowait()
            except queue.Empty:
                break
            with lock:
                if isinstance(item, Scrape):
                    top.on_scrape(item)
                elif isinstance(item, RuntimeError):
                    top.on_error(str(item))
                    stop.set()
                    status = 1
                else:
                    top.on_error(f"scrape failed: {' '.join(str(item).split())}")
            dirty = True
        if dirty:
            with lock:
                _draw(screen, top.view, attrs)
            dirty = False
        key = screen.getch()
        if key == -1:
            continue
        if key == curses.KEY_RESIZE:
            curses.update_lines_cols()
            dirty = True
            continue
        if 0 <= key < 256:
            with lock:
                if not top.on_key(chr(key)):
                    break
            dirty = True
    return status


def _draw(screen: Any, view: View, attrs: dict[str, int]) -> None:
    height, width = screen.getmaxyx()
    screen.erase()
    for y, line in enumerate(layout(view, width, height)):
        x = 0
        for text, emphasis in line:
            if not text:
                continue
            try:
                screen.addstr(y, x, text, attrs[emphasis])
            except curses.error:
                pass  # the bottom-right cell cannot be written without scrolling
            x += len(text)
    screen.refresh()
