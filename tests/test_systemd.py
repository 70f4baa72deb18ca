"""The shipped systemd unit and example config."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agentx_lb import config
from agentx_lb.config import Config

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "agentx-lb.service"
EXAMPLE = SYSTEMD / "agentx-lb.toml"
MAX_EXPOSURE = 2.0


def unit_settings(unit: Path = UNIT) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def security_exposure(unit: Path) -> float:
    """`systemd-analyze security --offline=true` of a unit file: its exposure level."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze not found: cannot rate the unit's hardening")
    proc = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


def test_security_exposure_at_most_2() -> None:
    assert security_exposure(UNIT) <= MAX_EXPOSURE


def test_no_exec_reload() -> None:
    # SIGHUP is not handled: a reload would kill the agent.
    assert "ExecReload" not in unit_settings()


def test_unit_shape() -> None:
    s = unit_settings()
    assert s["ExecStartPre"] == [
        "/usr/local/bin/agentx-lb --config /etc/agentx-lb/agentx-lb.toml --check-config"
    ]
    assert s["ExecStart"][0].endswith(" run")
    assert s["Restart"] == ["always"]
    assert s["RestartSec"] == ["5s"]
    assert s["User"] == ["agentx-lb"]
    assert s["SupplementaryGroups"] == ["vpp"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert s["ConditionPathExists"] == [config.DEFAULT_CONFIG_PATH]
    # StateDirectory= creates exactly the default state_dir.
    assert "/var/lib/" + s["StateDirectory"][0] == Config().state_dir


def test_example_config_is_the_defaults() -> None:
    cfg = config.load(flags={}, environ={}, config_path=str(EXAMPLE), explicit=True)
    assert cfg == Config()


def test_example_config_lists_every_key() -> None:
    text = EXAMPLE.read_text()
    for key in config.KEYS:
        assert re.search(rf"^#? ?{key} = ", text, re.M), key
