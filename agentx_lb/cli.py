"""Command line: argv + environment + file -> Config; logging; signals; wiring; exit codes.

    agentx-lb [options] [run]      serve the tables to snmpd over AgentX (default)
    agentx-lb [options] dump       one scrape printed as JSON
    agentx-lb [options] show       one scrape printed as tables for a person
    agentx-lb [options] top        live per-VIP rates in the terminal
    agentx-lb [options] mib        the MIB module for the configured oid_root
    agentx-lb [options] demo       emulated VPP + private snmpd + the agent, no root

Options are accepted before and after the command. Exit codes: 0 ok, 1 runtime
failure, 2 configuration or usage error (one stderr line, no traceback).

This is the only module that reads ``os.environ``/``sys.argv``, installs signal
handlers, configures logging and decides the exit status.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from agentx_lb import __version__, config, logs
from agentx_lb.config import Config
from agentx_lb.errors import ConfigError, SourceError

if TYPE_CHECKING:  # imported when serving, not for --help or dump
    from agentx_lb.agentx import LbAgent
    from agentx_lb.pipeline import Pipeline
    from agentx_lb.vpp.source import VppSource

log = logging.getLogger(__name__)

PROG = "agentx-lb"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
COMMANDS = ("run", "dump", "show", "top", "mib", "demo")
# How long `run` waits for the scrape thread after a stop. It is a daemon
# thread: one stuck in a VPP call is left behind (SIGTERM exits in < 0.5 s).
JOIN_TIMEOUT_S = 0.1
# The GIL hand-over interval while serving (process-wide, so set here): a
# request arriving during a table build waits for the scrape thread to yield
# the GIL, 5 ms by default, per PDU.
GIL_SWITCH_S = 0.0005
SCRAPE_THREAD = "scrape"  # pipeline.run_in_thread's thread name

_FLAG_HELP: Mapping[str, str] = {
    "vpp_stats_socket": "VPP stats segment socket (default /run/vpp/stats.sock)",
    "vpp_api_socket": "VPP binary API socket (default /run/vpp/api.sock)",
    "vpp_api_dir": "directory of VPP *.api.json files (default: ask VPP, else /usr/share/vpp/api)",
    "vpp_timeout_s": "seconds to wait for VPP per request (default 1.0)",
    "agentx_socket": "snmpd's AgentX master socket (default /var/agentx/master)",
    "interval_s": "seconds between scrapes (default 5)",
    "max_stale_intervals": "intervals without a good scrape before the VIP rows are withdrawn "
    "(default 3)",
    "vip_retention_s": "seconds a VIP absent from VPP keeps its counter offsets, e.g. while a "
    "restarted VPP re-creates its VIPs (default 600)",
    "oid_root": "OID under which the MIB is served (default 1.3.6.1.4.1.8072.9999.9999.8298)",
    "state_dir": "directory of the counter state file (default /var/lib/agentx-lb)",
    "log_level": "debug, info, warning or error (default info)",
    "metrics_listen": "serve Prometheus /metrics on HOST:PORT, e.g. 127.0.0.1:9744 (default: off)",
    "notifications": "send SNMP notifications through snmpd: true or false (default true)",
    "notify_holddown_s": "seconds: at most one notification per VIP, backend and the VPP "
    "connection per this long; a change held back is sent when it ends (default 10)",
}


class UsageError(Exception):
    """A command-line mistake: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _options() -> _Parser:
    """Options shared by the main parser and every command (SUPPRESS: no default)."""
    opts = _Parser(add_help=False)
    s = argparse.SUPPRESS
    opts.add_argument(
        "--config",
        metavar="PATH",
        default=s,
        help=(
            f"TOML config file (default {config.DEFAULT_CONFIG_PATH} if present; "
            f"env {config.ENV_CONFIG_PATH})"
        ),
    )
    opts.add_argument(
        "--check-config",
        action="store_true",
        default=s,
        help="validate the configuration and exit (0 ok, 2 with one line naming the problem)",
    )
    for key, flag in config.FLAGS.items():
        opts.add_argument(
            flag,
            dest=key,
            metavar=key.upper(),
            default=s,
            help=f"{_FLAG_HELP[key]}; env {config.env_name(key)}",
        )
    return opts


def build_parser() -> argparse.ArgumentParser:
    opts = _options()
    parser = _Parser(
        prog=PROG,
        parents=[opts],
        description="SNMP AgentX subagent for the fd.io VPP lb plugin.",
        epilog="Options may also be given after the command. Precedence: defaults < "
        "config file < AGENTX_LB_* environment < flags.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("run", parents=[opts], help="serve the tables to snmpd (the default)")
    sub.add_parser("dump", parents=[opts], help="scrape VPP once and print it as JSON")
    show = sub.add_parser(
        "show", parents=[opts], help="scrape VPP once and print aligned tables (VIPs, counters)"
    )
    show.add_argument("--backends", action="store_true", help="also print the backend table")
    top = sub.add_parser(
        "top",
        parents=[opts],
        help="live per-VIP rates, refreshed every interval_s (q quits)",
    )
    top.add_argument(
        "--sort",
        default="f",
        metavar="KEY",
        choices=_sort_keys(),
        help="initial sort key (shown on screen: f first/s, d drops/s, n next/s, ...; default f)",
    )
    sub.add_parser("mib", parents=[opts], help="print the MIB module for the configured root")
    demo = sub.add_parser(
        "demo",
        parents=[opts],
        help="emulated VPP + private snmpd + the agent (no VPP, no root needed)",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds (default: until Ctrl-C)",
    )
    return parser


def parse_config(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Config, str | None]:
    """Namespace + environment -> (Config, config file used or None)."""
    flags = {k: getattr(args, k) for k in config.KEYS if hasattr(args, k)}
    path = getattr(args, "config", None) or environ.get(config.ENV_CONFIG_PATH) or None
    explicit = path is not None
    cfg = config.load(flags=flags, environ=environ, config_path=path, explicit=explicit)
    used = path or config.DEFAULT_CONFIG_PATH
    return cfg, used if os.path.isfile(used) else None


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Entry point of the `agentx-lb` script; returns the exit status."""
    faulthandler.enable()
    argv_is_process = argv is None  # the process's own command line: may exit at once
    argv = sys.argv[1:] if argv is None else list(argv)
    environ = os.environ if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        err.write(f"{PROG}: usage: {exc} (see {PROG} --help)\n")
        return EXIT_USAGE
    try:
        cfg, used = parse_config(args, environ)
    except ConfigError as exc:
        err.write(f"{PROG}: config: {exc}\n")
        return EXIT_USAGE
    if getattr(args, "check_config", False):
        out.write(f"{PROG}: config ok: {used or 'defaults (no config file)'}\n")
        return EXIT_OK

    command = args.command or "run"
    if command == "mib":
        from agentx_lb.mib import render_mib

        out.write(render_mib(cfg.oid_root))
        return EXIT_OK

    logs.configure(cfg.log_level, stream=err, journal="JOURNAL_STREAM" in environ)
    if command == "dump":
        return _dump(cfg, out, err)
    if command == "show":
        return _show(cfg, out, err, backends=args.backends)
    stop = threading.Event()
    with _signals(stop, cfg.log_level):
        if command == "top":
            return _top(cfg, stop, out, err, sort=args.sort)
        if command == "demo":
            from agentx_lb import demo

            return demo.run_demo(cfg, stop, out, duration_s=args.duration)
        status = run(cfg, stop, err=err)
    if argv_is_process and _scrape_left_behind():
        _exit_now(status)
    return status


def _scrape_left_behind() -> bool:
    return any(t.name == SCRAPE_THREAD and t.is_alive() for t in threading.enumerate())


def _exit_now(status: int) -> NoReturn:
    """Exit without the interpreter's clean-up: the scrape thread is stuck in a
    VPP call and vpp_papi's atexit hook would send VPP a disconnect and wait
    for its answer. Everything of ours is done (Close sent, state written)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@contextmanager
def _signals(stop: threading.Event, log_level: str) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop`; SIGUSR1 toggles DEBUG; restored on exit."""

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            return
        log.info("stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    def on_usr1(_signum: int, _frame: FrameType | None) -> None:
        logs.toggle_debug(log_level)

    handlers: dict[int, Callable[[int, FrameType | None], Any]] = {
        signal.SIGTERM: on_stop,
        signal.SIGINT: on_stop,
        signal.SIGUSR1: on_usr1,
    }
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be handled on the main thread (in-process tests)
        return
    previous = {sig: signal.signal(sig, h) for sig, h in handlers.items()}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _dump(cfg: Config, out: TextIO, err: TextIO) -> int:
    from agentx_lb.dumpjson import scrape_document, to_text
    from agentx_lb.reduce import reduce
    from agentx_lb.vpp.source import VppSource

    source = VppSource(
        cfg.vpp_stats_socket, cfg.vpp_api_socket, cfg.vpp_api_dir, timeout_s=cfg.vpp_timeout_s
    )
    try:
        raw = source.read()
    except SourceError as exc:
        err.write(f"{PROG}: dump: {_source_problem(cfg, exc)}\n")
        return EXIT_FAILURE
    finally:
        source.close()
    rows, _state = reduce(raw, None, 0)
    try:
        # One write (json.dump writes each token: 1.25 M writes at 10,000 VIPs).
        out.write(to_text(scrape_document(raw, rows)))
        out.flush()
    except BrokenPipeError:
        # `agentx-lb dump | head`: the reader has what it wanted. Point stdout
        # at /dev/null so the interpreter's flush at exit fails no more.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    return EXIT_OK


def _sort_keys() -> list[str]:
    from agentx_lb.views.top import SORT_KEYS

    return list(SORT_KEYS)


def _vpp_source(cfg: Config) -> Any:
    from agentx_lb.vpp.source import VppSource

    return VppSource(
        cfg.vpp_stats_socket, cfg.vpp_api_socket, cfg.vpp_api_dir, timeout_s=cfg.vpp_timeout_s
    )


def _show(cfg: Config, out: TextIO, err: TextIO, *, backends: bool) -> int:
    """One scrape, read and reduced as `dump` does, printed as tables."""
    from agentx_lb.views.scrape import Scraper
    from agentx_lb.views.show import render, terminal_style

    scraper = Scraper(_vpp_source(cfg))
    try:
        scrape = scraper.scrape()
    except SourceError as exc:
        err.write(f"{PROG}: show: {_source_problem(cfg, exc)}\n")
        return EXIT_FAILURE
    finally:
        scraper.close()
    text = render(
        scrape.rows,
        vpp_version=scrape.raw.vpp_version,
        backends=backends,
        style=terminal_style(out),
    )
    out.write(text)
    if scrape.raw.problems:
        n = len(scrape.raw.problems)
        err.write(
            f"{PROG}: show: {n} line{'s' if n != 1 else ''} of VPP's `show lb vips verbose` "
            f"skipped (`{PROG} dump` lists them)\n"
        )
    return EXIT_OK


def _top(cfg: Config, stop: threading.Event, out: TextIO, err: TextIO, *, sort: str) -> int:
    """The live view; scrapes every interval_s like the agent, until q/Ctrl-C/SIGTERM."""
    from agentx_lb.views.scrape import Scraper
    from agentx_lb.views.top import run_top

    if not (out.isatty() and sys.stdin.isatty()):
        err.write(f"{PROG}: top: needs a terminal (for a one-off, use `{PROG} show`)\n")
        return EXIT_USAGE
    # run_top closes the scraper (unless its thread is stuck in a VPP call).
    return run_top(Scraper(_vpp_source(cfg)), interval_s=cfg.interval_s, stop=stop, sort=sort)


def _source_problem(cfg: Config, exc: SourceError) -> str:
    """One line naming the socket(s) and why VPP could not be read."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if cfg.vpp_api_socket in text or cfg.vpp_stats_socket in text:
        return f"cannot read VPP: {text}"
    return (
        f"cannot read VPP (api socket {cfg.vpp_api_socket}, "
        f"stats socket {cfg.vpp_stats_socket}): {text}"
    )


def run(cfg: Config, stop: threading.Event, *, err: TextIO | None = None) -> int:
    """Serve until `stop` is set: scrape thread + AgentX loop on this thread.

    With `metrics_listen`, /metrics is served from a daemon thread out of the
    snapshot the pipeline publishes; a bind failure is one line on `err`, exit 2.
    """
    from agentx_lb.memory import big_blocks_mapped, one_malloc_arena
    from agentx_lb.wiring import wire

    metrics = None
    if cfg.metrics_listen:
        from agentx_lb.metrics import MetricsListenError, MetricsServer

        try:  # before anything else starts: a bad address is a usage error
            metrics = MetricsServer(cfg.metrics_listen)
        except MetricsListenError as exc:
            (err or sys.stderr).write(f"{PROG}: metrics: {exc}\n")
            return EXIT_USAGE
    one_malloc_arena()
    big_blocks_mapped()
    serving_settings()

    log.info(
        "starting version=%s vpp_api=%s vpp_stats=%s agentx=%s root=%s interval_s=%g "
        "notifications=%s notify_holddown_s=%g",
        __version__,
        cfg.vpp_api_socket,
        cfg.vpp_stats_socket,
        cfg.agentx_socket,
        ".".join(map(str, cfg.oid_root)),
        cfg.interval_s,
        "on" if cfg.notifications else "off",
        cfg.notify_holddown_s,
    )
    wired = wire(cfg)
    pipeline = wired.pipeline
    if metrics is not None:
        # One attribute read per /metrics request: the pipeline replaces it whole.
        metrics.start(lambda: pipeline.snapshot)
    try:
        return serve(wired.agent, pipeline, wired.source, stop)
    finally:
        if metrics is not None:
            metrics.close()


def serving_settings() -> None:
    """Process-wide settings for serving: a short GIL hand-over interval."""
    if sys.getswitchinterval() > GIL_SWITCH_S:
        sys.setswitchinterval(GIL_SWITCH_S)


def serve(agent: LbAgent, pipeline: Pipeline, source: VppSource, stop: threading.Event) -> int:
    """Run the scrape thread and the agent loop; the exit status says how it ended.

    On stop the agent closes its session, the counter state is written once
    more (marked clean) and the scrape thread gets `JOIN_TIMEOUT_S`: one stuck
    in a VPP call is a daemon thread and is left behind, not waited for.
    """
    from agentx_lb.pipeline import run_in_thread

    crashed = threading.Event()
    thread = run_in_thread(pipeline, stop, crashed)
    status = EXIT_OK
    try:
        agent.run(stop)
    except Exception:
        log.exception("agentx loop crashed")
        status = EXIT_FAILURE
    finally:
        stop.set()
        thread.join(JOIN_TIMEOUT_S)
        if not crashed.is_set():
            pipeline.close()  # after a crash the state is not known to be sound
        if thread.is_alive():
            log.warning("scrape thread busy in a VPP call at exit: left behind")
        else:
            source.close()
    if crashed.is_set():
        log.error("exiting after a crash in the scrape thread")
        status = EXIT_FAILURE
    log.info("stopped status=%d", status)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
