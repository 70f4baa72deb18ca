"""config.load: precedence, conversion and one-line errors naming key and source."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentx_lb import config, oids
from agentx_lb.config import Config, ConfigError


def load(
    flags: dict[str, object] | None = None,
    environ: dict[str, str] | None = None,
    path: str | None = None,
    explicit: bool = True,
) -> Config:
    return config.load(
        flags=flags or {},
        environ=environ or {},
        config_path=path,
        explicit=explicit if path else False,
    )


@pytest.fixture
def toml(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "agentx-lb.toml"


def test_defaults_when_nothing_given() -> None:
    # The default path does not exist here, and is then simply not used.
    assert not os.path.exists(config.DEFAULT_CONFIG_PATH)
    cfg = load()
    assert cfg == Config()
    assert cfg.oid_root == oids.DEFAULT_ROOT
    assert cfg.state_path == "/var/lib/agentx-lb/counters.json"


def test_precedence_file_env_flag(toml: Path) -> None:
    toml.write_text('interval_s = 7\nvpp_timeout_s = 2.5\nlog_level = "debug"\n')
    cfg = load(
        flags={"interval_s": "9"},
        environ={"AGENTX_LB_INTERVAL_S": "8", "AGENTX_LB_VPP_TIMEOUT_S": "3"},
        path=str(toml),
    )
    assert cfg.interval_s == 9.0  # flag beats env beats file
    assert cfg.vpp_timeout_s == 3.0  # env beats file
    assert cfg.log_level == "debug"  # file beats default
    assert cfg.max_stale_intervals == 3  # default


def test_every_key_from_env_and_flags() -> None:
    d = tempfile.mkdtemp(prefix="axlb-", dir="/tmp")
    try:
        env = {
            "AGENTX_LB_VPP_STATS_SOCKET": "/x/stats.sock",
            "AGENTX_LB_VPP_API_SOCKET": "/x/api.sock",
            "AGENTX_LB_VPP_API_DIR": d,
            "AGENTX_LB_VPP_TIMEOUT_S": "0.5",
            "AGENTX_LB_AGENTX_SOCKET": "/x/master",
            "AGENTX_LB_INTERVAL_S": "2",
            "AGENTX_LB_MAX_STALE_INTERVALS": "4",
            "AGENTX_LB_OID_ROOT": ".1.3.6.1.4.1.99999.1",
            "AGENTX_LB_STATE_DIR": "/x/state",
            "AGENTX_LB_LOG_LEVEL": "WARNING",
            "AGENTX_LB_CONFIG": "/ignored/by/load",  # the CLI's business
            "OTHER": "ignored",
        }
        cfg = load(environ=env)
        assert cfg == Config(
            vpp_stats_socket="/x/stats.sock",
            vpp_api_socket="/x/api.sock",
            vpp_api_dir=d,
            vpp_timeout_s=0.5,
            agentx_socket="/x/master",
            interval_s=2.0,
            max_stale_intervals=4,
            oid_root=(1, 3, 6, 1, 4, 1, 99999, 1),
            state_dir="/x/state",
            log_level="warning",
        )
        assert load(flags={"vpp_api_dir": ""}).vpp_api_dir is None
    finally:
        os.rmdir(d)


def test_file_values_typed(toml: Path) -> None:
    toml.write_text(
        'oid_root = "1.3.6.1.4.1.8072.9999.9999.1"\nmax_stale_intervals = 5\ninterval_s = 1.5\n'
    )
    cfg = load(path=str(toml))
    assert cfg.oid_root == (1, 3, 6, 1, 4, 1, 8072, 9999, 9999, 1)
    assert cfg.max_stale_intervals == 5
    assert cfg.interval_s == 1.5


def check_error(exc: pytest.ExceptionInfo[ConfigError], *words: str) -> None:
    text = str(exc.value)
    assert "\n" not in text
    for word in words:
        assert word in text, (word, text)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("intervl_s = 5\n", ["unknown key", "'intervl_s'"]),
        ('interval_s = "fast"\n', ["interval_s", "must be a number"]),
        ("interval_s = 0\n", ["interval_s", "> 0"]),
        ("interval_s = -1\n", ["interval_s", "> 0"]),
        ("interval_s = 86400\n", ["interval_s", "3600"]),
        ("interval_s = true\n", ["interval_s", "must be a number"]),
        ("max_stale_intervals = 0\n", ["max_stale_intervals", "between 1"]),
        ("max_stale_intervals = 2.5\n", ["max_stale_intervals", "integer"]),
        ("vpp_timeout_s = 0\n", ["vpp_timeout_s", "> 0"]),
        ("vpp_timeout_s = 120\n", ["vpp_timeout_s", "60"]),
        ('log_level = "loud"\n', ["log_level", "debug, info"]),
        ('oid_root = "1.3.six"\n', ["oid_root", "dotted OID"]),
        ('oid_root = "1.3.6"\n', ["oid_root", "too short"]),
        ('oid_root = "7.3.6.1.4.1.1"\n', ["oid_root", "first arc"]),
        ('oid_root = "1.3.6.1.2.1.99"\n', ["oid_root", "snmpd serves itself"]),
        ('oid_root = "' + ".".join(["1.3.6.1.4.1"] + ["1"] * 110) + '"\n', ["oid_root", "sub-ids"]),
        ('vpp_api_socket = "run/api.sock"\n', ["vpp_api_socket", "absolute"]),
        ('vpp_api_socket = ""\n', ["vpp_api_socket", "empty"]),
        ("vpp_api_socket = 5\n", ["vpp_api_socket", "must be a string"]),
        ('agentx_socket = "/tmp"\n', ["agentx_socket", "is a directory"]),
        ('agentx_socket = "/' + "a" * 120 + '"\n', ["agentx_socket", "107"]),
        ('vpp_api_dir = "/nonexistent/api"\n', ["vpp_api_dir", "no such directory"]),
        ('state_dir = "/etc/hostname"\n', ["state_dir", "not a directory"]),
        ("interval_s = \n", ["TOML syntax error", "line 1"]),
        ("[vpp]\nstats = 1\n", ["unknown key", "'vpp'"]),
        ('notifications = "false"\n', ["notifications", "true or false"]),
        ("notifications = 0\n", ["notifications", "true or false"]),
        ("notify_holddown_s = -1\n", ["notify_holddown_s", ">= 0"]),
        ("notify_holddown_s = 7200\n", ["notify_holddown_s", "3600"]),
    ],
)
def test_bad_file_values(toml: Path, content: str, words: list[str]) -> None:
    toml.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load(path=str(toml))
    check_error(exc, f"file {toml}", *words)


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError) as exc:
        load(path="/nonexistent/agentx-lb.toml", explicit=True)
    check_error(exc, "/nonexistent/agentx-lb.toml", "no such file")


def test_missing_implicit_file_is_fine() -> None:
    assert load(path="/nonexistent/agentx-lb.toml", explicit=False) == Config()


def test_directory_as_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(path=str(tmp_path))
    check_error(exc, "is a directory")


def test_not_utf8(toml: Path) -> None:
    toml.write_bytes(b'log_level = "\xff"\n')
    with pytest.raises(ConfigError) as exc:
        load(path=str(toml))
    check_error(exc, f"file {toml}")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("AGENTX_LB_INTERVAL", "5", ["env AGENTX_LB_INTERVAL", "unknown setting"]),
        ("AGENTX_LB_INTERVAL_S", "soon", ["env AGENTX_LB_INTERVAL_S", "not a number"]),
        ("AGENTX_LB_MAX_STALE_INTERVALS", "1.5", ["MAX_STALE_INTERVALS", "not an integer"]),
        ("AGENTX_LB_VPP_TIMEOUT_S", "nan", ["VPP_TIMEOUT_S", "> 0"]),
        ("AGENTX_LB_LOG_LEVEL", "trace", ["LOG_LEVEL", "must be one of"]),
    ],
)
def test_bad_env(name: str, value: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        load(environ={name: value})
    check_error(exc, *words)


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError) as exc:
        load(flags={"interval_s": "0"})
    check_error(exc, "flag --interval", "interval_s", "> 0")
    with pytest.raises(ConfigError) as exc:
        load(flags={"nonsense": "0"})
    check_error(exc, "unknown setting")


def test_flags_cover_every_key() -> None:
    assert set(config.FLAGS) == set(config.KEYS)


def test_flag_overrides_bad_env_value_is_still_an_error() -> None:
    # Every source is validated: a broken env value is reported even when a flag wins.
    with pytest.raises(ConfigError) as exc:
        load(flags={"interval_s": "5"}, environ={"AGENTX_LB_INTERVAL_S": "0"})
    check_error(exc, "env AGENTX_LB_INTERVAL_S")


def test_notification_settings(toml: Path) -> None:
    assert (Config().notifications, Config().notify_holddown_s) == (True, 10.0)
    toml.write_text("notifications = false\nnotify_holddown_s = 0\n")
    cfg = load(path=str(toml))
    assert (cfg.notifications, cfg.notify_holddown_s) == (False, 0.0)
    for text, want in [("false", False), ("no", False), ("0", False), ("off", False),
                       ("true", True), ("Yes", True), ("1", True), (" on ", True)]:  # fmt: skip
        assert load(environ={"AGENTX_LB_NOTIFICATIONS": text}).notifications is want
        assert load(flags={"notifications": text}).notifications is want
    assert load(environ={"AGENTX_LB_NOTIFY_HOLDDOWN_S": "2.5"}).notify_holddown_s == 2.5
    with pytest.raises(ConfigError) as exc:
        load(flags={"notifications": "maybe"})
    check_error(exc, "flag --notifications", "true or false")
