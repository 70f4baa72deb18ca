"""The agent's configuration: a frozen `Config` and `load()`, which validates it.

Precedence, lowest first: defaults < TOML file < ``AGENTX_LB_<KEY>`` environment
< command-line flags. Every problem raises `ConfigError` whose ``str()`` is one
line naming the source (file, env, flag), the key and what is wrong, so that the
CLI can print it as is and exit 2.

Pure apart from reading the config file and ``stat()``-ing the configured paths;
the caller passes the environment and flags in (only `cli` reads ``os.environ``).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from agentx_lb import oids
from agentx_lb.errors import ConfigError
from agentx_lb.oids import Oid

DEFAULT_CONFIG_PATH = "/etc/agentx-lb/agentx-lb.toml"
ENV_PREFIX = "AGENTX_LB_"
# Not a Config key: the environment's way to name the config file (like --config).
ENV_CONFIG_PATH = ENV_PREFIX + "CONFIG"
STATE_FILE_NAME = "counters.json"

LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_INTERVAL_S = 3600.0
MAX_TIMEOUT_S = 60.0
MAX_STALE_INTERVALS = 100_000
MAX_RETENTION_S = 7 * 24 * 3600.0
MAX_HOLDDOWN_S = 3600.0
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
# SNMP allows 128 sub-ids per OID; the longest OID we serve is the backend
# table's IPv6 cell: root + (1, 3, 1, column, vip, type, 16, 16 address bytes).
_LONGEST_SUFFIX = 7 + 16
MAX_ROOT_LEN = 128 - _LONGEST_SUFFIX
MIN_ROOT_LEN = 6
# Subtrees snmpd serves itself: registering a root there would shadow them.
_RESERVED_SUBTREES: tuple[Oid, ...] = ((1, 3, 6, 1, 2, 1), (1, 3, 6, 1, 6, 3))


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the agent can be told; defaults are the production values."""

    vpp_stats_socket: str = "/run/vpp/stats.sock"
    vpp_api_socket: str = "/run/vpp/api.sock"
    # None: ask VPP for its API definitions (get_api_json) when it offers them,
    # else read /usr/share/vpp/api.
    vpp_api_dir: str | None = None
    vpp_timeout_s: float = 1.0
    agentx_socket: str = "/var/agentx/master"
    interval_s: float = 5.0
    max_stale_intervals: int = 3
    # How long a VIP that VPP no longer lists keeps its counter offsets (a VPP
    # restart: API up, LB still empty until its startup-config has run).
    vip_retention_s: float = 600.0
    oid_root: Oid = oids.DEFAULT_ROOT
    state_dir: str = "/var/lib/agentx-lb"
    log_level: str = "info"
    # None: no /metrics endpoint (the default). "HOST:PORT", "[V6]:PORT" or ":PORT".
    metrics_listen: str | None = None
    # SNMP notifications (AgentX Notify to snmpd, which forwards them to its sinks).
    notifications: bool = True
    # Per VIP, backend and the VPP connection: at most one notification per this long.
    notify_holddown_s: float = 10.0

    @property
    def state_path(self) -> str:
        """The counter-state file inside `state_dir`."""
        return os.path.join(self.state_dir, STATE_FILE_NAME)


KEYS: tuple[str, ...] = tuple(f.name for f in fields(Config))

# The command-line flag of each key (the CLI defines exactly these).
FLAGS: Mapping[str, str] = {
    "vpp_stats_socket": "--vpp-stats-socket",
    "vpp_api_socket": "--vpp-api-socket",
    "vpp_api_dir": "--vpp-api-dir",
    "vpp_timeout_s": "--vpp-timeout",
    "agentx_socket": "--agentx-socket",
    "interval_s": "--interval",
    "max_stale_intervals": "--max-stale-intervals",
    "vip_retention_s": "--vip-retention",
    "oid_root": "--oid-root",
    "state_dir": "--state-dir",
    "log_level": "--log-level",
    "metrics_listen": "--metrics-listen",
    "notifications": "--notifications",
    "notify_holddown_s": "--notify-holddown",
}


def env_name(key: str) -> str:
    """`interval_s` -> `AGENTX_LB_INTERVAL_S`."""
    return ENV_PREFIX + key.upper()


def load(
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    config_path: str | None,
    explicit: bool,
) -> Config:
    """Merge defaults, file, environment and flags into a validated `Config`.

    `flags` maps config keys to values (strings from argv, or typed values).
    `config_path` None means the default path; `explicit` says the user named
    the file (then it must exist; the default file is used only if present).
    """
    values: dict[str, Any] = {}
    path = config_path or DEFAULT_CONFIG_PATH
    for key, value in _read_file(path, explicit=explicit).items():
        values[key] = _convert(key, value, f"file {path}", from_text=False)
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_PATH:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in KEYS:
            raise ConfigError(f"env {name}: unknown setting (known: {_known()})")
        values[key] = _convert(key, value, f"env {name}", from_text=True)
    for key, value in flags.items():
        if key not in KEYS:
            raise ConfigError(f"flag {key}: unknown setting")
        values[key] = _convert(key, value, f"flag {FLAGS[key]}", from_text=isinstance(value, str))
    return Config(**values)


def _known() -> str:
    return ", ".join(env_name(k) for k in KEYS)


def _read_file(path: str, *, explicit: bool) -> dict[str, Any]:
    where = f"file {path}"
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{where}: no such file") from None
        return {}
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(f"{where}: permission denied (cannot read it)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    for key in data:
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
    return data


def _convert(key: str, value: Any, where: str, *, from_text: bool) -> Any:
    """Type-check/convert one value and validate it; `where` names the source."""
    check = _CHECKS[key]
    try:
        return check(value, from_text)
    except _Invalid as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


class _Invalid(Exception):
    """A value problem; `_convert` adds the source and key."""


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _number(value: Any, from_text: bool) -> float:
    if from_text and isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _Invalid(f"not a number: {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"must be a number, got {_shown(value)}")
    return float(value)


def _integer(value: Any, from_text: bool) -> int:
    if from_text and isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise _Invalid(f"not an integer: {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be an integer, got {_shown(value)}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {_shown(value)}")
    return value


def _absolute(value: Any) -> str:
    path = _text(value)
    if not path:
        raise _Invalid("must not be empty")
    if "\0" in path:
        raise _Invalid("contains a NUL byte")
    if not os.path.isabs(path):
        raise _Invalid(f"must be an absolute path, got {path!r}")
    return path


def _socket_path(value: Any, _from_text: bool) -> str:
    path = _absolute(value)
    # A socket may not exist yet (VPP/snmpd start later); a directory is a mistake.
    if os.path.isdir(path):
        raise _Invalid(f"{path} is a directory, not a socket")
    if len(path.encode()) > 107:
        raise _Invalid(f"{path} is longer than a Unix socket path may be (107 bytes)")
    return path


def _directory(value: Any, _from_text: bool) -> str:
    path = _absolute(value)
    if os.path.exists(path) and not os.path.isdir(path):
        raise _Invalid(f"{path} exists and is not a directory")
    return path


def _api_dir(value: Any, from_text: bool) -> str | None:
    # An empty string (e.g. AGENTX_LB_VPP_API_DIR=) means "the default": ask VPP.
    if value is None or value == "":
        return None
    path = _directory(value, from_text)
    if not os.path.isdir(path):
        raise _Invalid(f"{path}: no such directory")
    return path


def _interval(value: Any, from_text: bool) -> float:
    seconds = _number(value, from_text)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_INTERVAL_S:
        raise _Invalid(f"must be > 0 and <= {MAX_INTERVAL_S:g} seconds, got {seconds:g}")
    return seconds


def _timeout(value: Any, from_text: bool) -> float:
    seconds = _number(value, from_text)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT_S:
        raise _Invalid(f"must be > 0 and <= {MAX_TIMEOUT_S:g} seconds, got {seconds:g}")
    return seconds


def _stale(value: Any, from_text: bool) -> int:
    count = _integer(value, from_text)
    if not 1 <= count <= MAX_STALE_INTERVALS:
        raise _Invalid(f"must be between 1 and {MAX_STALE_INTERVALS}, got {count}")
    return count


def _retention(value: Any, from_text: bool) -> float:
    seconds = _number(value, from_text)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_RETENTION_S:
        raise _Invalid(f"must be >= 0 and <= {MAX_RETENTION_S:g} seconds, got {seconds:g}")
    return seconds


def _log_level(value: Any, _from_text: bool) -> str:
    level = _text(value).strip().lower()
    if level not in LOG_LEVELS:
        raise _Invalid(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _oid_root(value: Any, _from_text: bool) -> Oid:
    if isinstance(value, tuple | list) and all(
        isinstance(p, int) and not isinstance(p, bool) for p in value
    ):
        text = ".".join(map(str, value))
    else:
        text = _text(value)
    try:
        root = oids.parse_oid(text)
    except ValueError:
        raise _Invalid(f"not a dotted OID like 1.3.6.1.4.1.8072.9999.9999.8298: {text!r}") from None
    if root[0] > 2 or (root[0] < 2 and root[1] > 39):
        raise _Invalid(f"not a valid OID (first arc 0..2, second 0..39): {text!r}")
    if len(root) < MIN_ROOT_LEN:
        raise _Invalid(f"{text} is too short: registering it would shadow most of the MIB tree")
    if len(root) > MAX_ROOT_LEN:
        raise _Invalid(f"has {len(root)} sub-ids; at most {MAX_ROOT_LEN} leave room for our tables")
    for reserved in _RESERVED_SUBTREES:
        if root[: len(reserved)] == reserved:
            raise _Invalid(
                f"{text} is inside {oids.format_oid(reserved)}, which snmpd serves itself"
            )
    return root


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:9744` -> ("127.0.0.1", 9744); `[::1]:9744`; `:9744` (every address: "")."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} has no :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host:
            raise ValueError(f"{text!r}: empty brackets")
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9744")
    if any(c.isspace() for c in host) or not port.isascii() or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    number = int(port)
    if not 0 <= number <= 65535:  # 0: any free port (tests); the config refuses it
        raise ValueError(f"{text!r}: port must be 1..65535")
    return host, number


def _listen(value: Any, _from_text: bool) -> str | None:
    # Unset or empty (e.g. AGENTX_LB_METRICS_LISTEN=) means off.
    if value is None or value == "":
        return None
    text = _text(value).strip()
    try:
        _host, port = parse_listen(text)
        if port == 0:
            raise ValueError(f"{text!r}: port must be 1..65535")
    except ValueError as exc:
        raise _Invalid(f"{exc} (e.g. 127.0.0.1:9744, [::1]:9744 or :9744)") from None
    return text


def _boolean(value: Any, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Invalid(f"must be true or false, got {value!r}")
    raise _Invalid(f"must be true or false, got {_shown(value)}")


def _holddown(value: Any, from_text: bool) -> float:
    seconds = _number(value, from_text)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_HOLDDOWN_S:
        raise _Invalid(f"must be >= 0 and <= {MAX_HOLDDOWN_S:g} seconds, got {seconds:g}")
    return seconds


_CHECKS: Mapping[str, Callable[[Any, bool], Any]] = {
    "vpp_stats_socket": _socket_path,
    "vpp_api_socket": _socket_path,
    "vpp_api_dir": _api_dir,
    "vpp_timeout_s": _timeout,
    "agentx_socket": _socket_path,
    "interval_s": _interval,
    "max_stale_intervals": _stale,
    "vip_retention_s": _retention,
    "oid_root": _oid_root,
    "state_dir": _directory,
    "log_level": _log_level,
    "metrics_listen": _listen,
    "notifications": _boolean,
    "notify_holddown_s": _holddown,
}
