"""cli.main: parsing, precedence, exit codes, one-line errors, serve() wiring."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from agentx_lb import cli, config
from agentx_lb.config import Config


def run_main(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(argv, environ=environ or {}, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def one_line_error(err: str, prefix: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    assert "Traceback" not in err
    return lines[0]


def parsed(argv: list[str], environ: dict[str, str] | None = None) -> tuple[Config, Any]:
    args = cli.build_parser().parse_args(argv)
    cfg, _used = cli.parse_config(args, environ or {})
    return cfg, args


# ---- options before and after the command


@pytest.mark.parametrize(
    "argv",
    [
        ["--vpp-api-socket", "/p/api.sock", "--interval", "2", "dump"],
        ["dump", "--vpp-api-socket", "/p/api.sock", "--interval", "2"],
        ["--vpp-api-socket", "/p/api.sock", "dump", "--interval", "2"],
    ],
)
def test_options_before_or_after_command(argv: list[str]) -> None:
    cfg, args = parsed(argv)
    assert args.command == "dump"
    assert cfg.vpp_api_socket == "/p/api.sock"
    assert cfg.interval_s == 2.0


def test_after_the_command_wins_over_before() -> None:
    cfg, _ = parsed(["--interval", "2", "run", "--interval", "3"])
    assert cfg.interval_s == 3.0


def test_no_command_means_run_and_defaults() -> None:
    cfg, args = parsed([])
    assert args.command is None
    assert cfg == Config()


def test_every_flag_sets_its_key() -> None:
    d = "/tmp"
    argv = [
        "--vpp-stats-socket", "/a/s.sock", "--vpp-api-socket", "/a/a.sock",
        "--vpp-api-dir", d, "--vpp-timeout", "2", "--agentx-socket", "/a/x",
        "--interval", "4", "--max-stale-intervals", "7", "--oid-root", "1.3.6.1.4.1.4242",
        "--state-dir", "/a/state", "--log-level", "debug", "run",
    ]  # fmt: skip
    cfg, _ = parsed(argv)
    assert cfg == Config(
        vpp_stats_socket="/a/s.sock",
        vpp_api_socket="/a/a.sock",
        vpp_api_dir=d,
        vpp_timeout_s=2.0,
        agentx_socket="/a/x",
        interval_s=4.0,
        max_stale_intervals=7,
        oid_root=(1, 3, 6, 1, 4, 1, 4242),
        state_dir="/a/state",
        log_level="debug",
    )


def test_env_then_flag_precedence(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("interval_s = 10\nmax_stale_intervals = 9\nvpp_timeout_s = 3\n")
    env = {
        "AGENTX_LB_CONFIG": str(conf),
        "AGENTX_LB_INTERVAL_S": "20",
        "AGENTX_LB_MAX_STALE_INTERVALS": "8",
    }
    cfg, _ = parsed(["--interval", "30"], env)
    assert (cfg.interval_s, cfg.max_stale_intervals, cfg.vpp_timeout_s) == (30.0, 8, 3.0)


# ---- --check-config and the one-line errors


def test_check_config_ok(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("interval_s = 10\n")
    rc, out, err = run_main(["--config", str(conf), "--check-config"])
    assert (rc, err) == (0, "")
    assert out == f"agentx-lb: config ok: {conf}\n"


BAD_FILES = {
    "unknown_key": ("intervl_s = 5\n", "unknown key 'intervl_s'"),
    "wrong_type": ('interval_s = "5s"\n', "interval_s: must be a number"),
    "interval_zero": ("interval_s = 0\n", "interval_s: must be > 0"),
    "interval_absurd": ("interval_s = 7200\n", "<= 3600"),
    "stale_zero": ("max_stale_intervals = 0\n", "max_stale_intervals: must be between 1"),
    "timeout_range": ("vpp_timeout_s = 0\n", "vpp_timeout_s: must be > 0"),
    "toml_syntax": ("interval_s = 5\nlog_level = \n", "TOML syntax error"),
    "socket_is_dir": ('vpp_api_socket = "/tmp"\n', "/tmp is a directory"),
    "relative_path": ('agentx_socket = "master"\n', "must be an absolute path"),
    "bad_log_level": ('log_level = "verbose"\n', "log_level: must be one of"),
    "bad_oid": ('oid_root = "1.3.6.x"\n', "oid_root: not a dotted OID"),
    "oid_in_mib2": ('oid_root = "1.3.6.1.2.1.4"\n', "snmpd serves itself"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_config_file_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    content, expected = BAD_FILES[case]
    conf = tmp_path / "agentx-lb.toml"
    conf.write_text(content)
    rc, out, err = run_main(["--config", str(conf), "--check-config"])
    assert rc == 2
    assert out == ""
    line = one_line_error(err, f"agentx-lb: config: file {conf}: ")
    assert expected in line


def test_missing_explicit_config_file() -> None:
    rc, _, err = run_main(["--config", "/nonexistent/agentx-lb.toml", "--check-config"])
    assert rc == 2
    line = one_line_error(err, "agentx-lb: config: file /nonexistent/agentx-lb.toml")
    assert "no such file" in line


def test_bad_env_and_bad_flag() -> None:
    rc, _, err = run_main(["--check-config"], {"AGENTX_LB_INTERVAL_S": "-1"})
    assert rc == 2
    assert "env AGENTX_LB_INTERVAL_S: interval_s" in one_line_error(err, "agentx-lb: config: ")
    rc, _, err = run_main(["--check-config"], {"AGENTX_LB_NOPE": "1"})
    assert rc == 2
    assert "AGENTX_LB_NOPE: unknown setting" in one_line_error(err, "agentx-lb: config: ")
    rc, _, err = run_main(["dump", "--max-stale-intervals", "many"])
    assert rc == 2
    assert "flag --max-stale-intervals" in one_line_error(err, "agentx-lb: config: ")


def test_usage_error_is_one_line() -> None:
    rc, _, err = run_main(["--nope"])
    assert rc == 2
    assert "--nope" in one_line_error(err, "agentx-lb: usage: ")
    rc, _, err = run_main(["frobnicate"])
    assert rc == 2
    assert "frobnicate" in one_line_error(err, "agentx-lb: usage: ")


def test_config_error_before_any_command_runs() -> None:
    # `run` with a bad config must not try to connect anywhere: exit 2 at once.
    rc, _, err = run_main(["run", "--interval", "0"])
    assert rc == 2
    one_line_error(err, "agentx-lb: config: flag --interval")


def _python_module(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTX_LB_")}
    return subprocess.run(
        [sys.executable, "-m", "agentx_lb", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        **kw,
    )


def test_subprocess_bad_config(tmp_path: Path) -> None:
    conf = tmp_path / "agentx-lb.toml"
    conf.write_text("[section]\nx = 1\n")
    proc = _python_module(["--config", str(conf), "--check-config"])
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "unknown key 'section'" in one_line_error(proc.stderr, "agentx-lb: config: file ")


def _main_as_nobody(argv: list[str]) -> tuple[int, str]:
    """cli.main in a forked child that dropped to uid/gid 65534 (root reads everything)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 99
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            stderr = io.StringIO()
            rc = cli.main(argv, environ={}, stdout=io.StringIO(), stderr=stderr)
            os.write(w, f"{rc}\n{stderr.getvalue()}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read().decode()
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0, data
    rc_text, _, err = data.partition("\n")
    return int(rc_text), err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_config_as_unprivileged_user(short_tmpdir: str) -> None:
    os.chmod(short_tmpdir, 0o755)  # nobody may enter the directory, not read the file
    conf = Path(short_tmpdir) / "agentx-lb.toml"
    conf.write_text("interval_s = 5\n")
    conf.chmod(0o600)
    rc, err = _main_as_nobody(["--config", str(conf), "--check-config"])
    assert rc == 2
    assert "permission denied" in one_line_error(err, f"agentx-lb: config: file {conf}")


def test_mib_for_configured_root() -> None:
    rc, out, err = run_main(["mib", "--oid-root", "1.3.6.1.4.1.4242.1"])
    assert (rc, err) == (0, "")
    assert "IPNG-VPP-LB-MIB DEFINITIONS ::= BEGIN" in out
    assert "4242" in out
    _, default_out, _ = run_main(["mib"])
    assert "4242" not in default_out


# ---- serve(): the run loop's wiring, with fakes


class FakeAgent:
    def __init__(self, crash: bool = False) -> None:
        self.crash = crash
        self.ran = False

    def run(self, stop: threading.Event) -> None:
        self.ran = True
        if self.crash:
            raise RuntimeError("agent bug")
        stop.wait()


class FakePipeline:
    def __init__(self, crash: bool = False) -> None:
        self.crash = crash
        self.started = threading.Event()
        self.closed = False

    def run(self, stop: Any) -> None:
        self.started.set()
        if self.crash:
            raise RuntimeError("pipeline bug")
        stop.wait()

    def close(self) -> bool:  # the clean stop's state write
        self.closed = True
        return False


class FakeSource:
    closed = False

    def close(self) -> None:
        self.closed = True


def _serve(
    agent: FakeAgent, pipeline: FakePipeline, source: FakeSource, stop: threading.Event
) -> int:
    """cli.serve with the fakes, which stand in for LbAgent, Pipeline and VppSource."""
    return cli.serve(agent, pipeline, source, stop)  # type: ignore[arg-type]  # duck-typed fakes


def test_serve_stops_cleanly_on_stop_event() -> None:
    stop = threading.Event()
    pipeline, source = FakePipeline(), FakeSource()

    def stopper() -> None:
        pipeline.started.wait(10)
        stop.set()  # what the SIGTERM handler does

    t = threading.Thread(target=stopper)
    t.start()
    assert _serve(FakeAgent(), pipeline, source, stop) == 0
    t.join()
    assert source.closed
    assert pipeline.closed


def test_serve_exits_1_when_scrape_thread_crashes() -> None:
    stop = threading.Event()
    assert _serve(FakeAgent(), FakePipeline(crash=True), FakeSource(), stop) == 1


def test_serve_exits_1_when_agent_crashes() -> None:
    stop = threading.Event()
    source = FakeSource()
    assert _serve(FakeAgent(crash=True), FakePipeline(), source, stop) == 1
    assert stop.is_set()
    assert source.closed


def test_env_names_match_flags() -> None:
    # Every option has a flag and an AGENTX_LB_ variable named after its key.
    help_text = cli.build_parser().format_help()
    for key, flag in config.FLAGS.items():
        assert flag in help_text
        assert config.env_name(key) in help_text
