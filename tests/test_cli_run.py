"""`agentx-lb run` and `dump` as processes, against the emulated VPP and a private snmpd.

SIGTERM must end `run` with status 0 in every state (snmpd absent, VPP absent,
VPP hanging); SIGUSR1 toggles DEBUG; `dump` prints JSON or one error line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from agentx_lb.emulator import EmulatedVpp
from agentx_lb.snmpd import PrivateSnmpd, SnmpError

pytestmark = pytest.mark.integration
ROOT = "1.3.6.1.4.1.8072.9999.9999.8298"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTX_LB_")}
    env.pop("JOURNAL_STREAM", None)
    return env


def _flags(vpp_dir: str, agentx_socket: str, state_dir: str) -> list[str]:
    return [
        "--vpp-api-socket", os.path.join(vpp_dir, "api.sock"),
        "--vpp-stats-socket", os.path.join(vpp_dir, "stats.sock"),
        "--agentx-socket", agentx_socket,
        "--state-dir", state_dir,
        "--interval", "0.5",
        "--vpp-timeout", "0.5",
    ]  # fmt: skip


class Agent:
    """`python -m agentx_lb run ...` with its stderr read line by line."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentx_lb", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.lines: list[str] = []

    def wait_for(self, pattern: str) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if re.search(pattern, line):
                return line
        raise AssertionError(f"exited before {pattern!r}: {self.lines}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _out, err = self.proc.communicate(timeout=30)
        self.lines.extend(err.splitlines())
        return self.proc.returncode, "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.kill()


def test_sigterm_with_nothing_running(short_tmpdir: str, agents: list[Agent]) -> None:
    agent = Agent(
        ["run", *_flags(short_tmpdir, os.path.join(short_tmpdir, "ax.sock"), short_tmpdir)]
    )
    agents.append(agent)
    agent.wait_for("scrape failed")  # VPP absent; snmpd absent too
    rc, log = agent.stop()
    assert rc == 0, log
    assert "Traceback" not in log
    assert "stopped status=0" in log


def test_sigterm_while_vpp_hangs(
    make_vpp: Callable[..., EmulatedVpp], short_tmpdir: str, agents: list[Agent]
) -> None:
    vpp: EmulatedVpp = make_vpp(workers=2)
    vpp.faults.handshake_hang = True  # the API socket accepts and never answers
    agent = Agent(
        ["run", *_flags(str(vpp.run_dir), os.path.join(short_tmpdir, "ax.sock"), short_tmpdir)]
    )
    agents.append(agent)
    agent.wait_for("starting ")
    agent.wait_for("scrape failed")  # a bounded timeout, not a hang
    rc, log = agent.stop()
    assert rc == 0, log
    assert "Traceback" not in log


def test_run_serves_vpp_through_snmpd_and_keeps_state(
    make_vpp: Callable[..., EmulatedVpp],
    snmpd: PrivateSnmpd,
    short_tmpdir: str,
    agents: list[Agent],
) -> None:
    vpp: EmulatedVpp = make_vpp(workers=2)
    index = vpp.add_vip("192.0.2.7/32", protocol=6, port=443)
    vpp.add_backend(index, "10.0.0.7")
    vpp.traffic(index, thread=2, next_packets=1234, first_packets=5)
    state_dir = os.path.join(short_tmpdir, "state")
    os.mkdir(state_dir)
    agent = Agent(["run", *_flags(str(vpp.run_dir), snmpd.agentx_socket, state_dir)])
    agents.append(agent)
    agent.wait_for("agentx connected")
    oid = f"{ROOT}.1.2.1.14.{index}"  # vppLbVipNextPackets
    deadline = time.monotonic() + 20
    while True:
        try:
            out = snmpd.get(oid)
        except SnmpError:
            out = ""
        if "Counter64: 1234" in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert f".{oid} = Counter64: 1234" in out

    agent.proc.send_signal(signal.SIGUSR1)
    agent.wait_for("log level changed level=debug")
    rc, log = agent.stop(signal.SIGINT)
    assert rc == 0, log
    assert os.path.exists(os.path.join(state_dir, "counters.json"))


def test_dump_prints_json(make_vpp: Callable[..., EmulatedVpp]) -> None:
    vpp: EmulatedVpp = make_vpp(workers=2)
    index = vpp.add_vip("2001:db8::1/128", protocol=17, port=53, encap="gre6")
    vpp.add_backend(index, "2001:db8:1::1")
    vpp.traffic(index, thread=1, next_packets=10)
    proc = subprocess.run(
        [sys.executable, "-m", "agentx_lb", "--vpp-api-socket", vpp.api_socket, "dump",
         "--vpp-stats-socket", vpp.stats_socket],
        capture_output=True, text=True, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "2001:db8::1" in proc.stdout
    assert isinstance(doc, dict)


def test_dump_into_a_closed_pipe_exits_0_silently(make_vpp: Callable[..., EmulatedVpp]) -> None:
    # `agentx-lb dump | head`: head leaves after the first lines.
    vpp: EmulatedVpp = make_vpp(workers=1)
    for i in range(400):
        vpp.add_backend(vpp.add_vip(f"192.0.2.{i % 250}/32", protocol=6, port=i), "10.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentx_lb", "dump", "--vpp-api-socket", vpp.api_socket,
         "--vpp-stats-socket", vpp.stats_socket],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout, proc.stderr:
        assert proc.stdout.read(10).startswith(b"{")
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stderr.read() == b""


def test_dump_vpp_unreachable_is_one_line(short_tmpdir: str) -> None:
    api = os.path.join(short_tmpdir, "api.sock")
    proc = subprocess.run(
        [sys.executable, "-m", "agentx_lb", "dump", "--vpp-api-socket", api,
         "--vpp-stats-socket", os.path.join(short_tmpdir, "stats.sock")],
        capture_output=True, text=True, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("agentx-lb: dump: ")
    assert api in lines[0]
