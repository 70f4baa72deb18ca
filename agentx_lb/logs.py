"""Logging set-up and the two helpers that keep repeated problems quiet.

`configure()` is called once, by `cli`. Lines are one event plus ``key=value``;
under journald (``JOURNAL_STREAM`` set) no timestamp is written, journald adds it.
`FailureStreak` logs the first failure of a streak at WARNING, repeats at DEBUG
and the recovery at INFO with the count. `OnceLogger` logs each distinct
problem once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TextIO

# Third-party loggers that are chatty at INFO (pyagentx3 logs every GET).
NOISY_LOGGERS = ("pyagentx3", "vpp_papi", "vpp_papi.vpp_papi", "vpp_papi.vpp_stats")

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, *, stream: TextIO, journal: bool) -> logging.Handler:
    """Send every log record to `stream`, one line each; returns the handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(JOURNAL_FORMAT if journal else CONSOLE_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def toggle_debug(configured_level: str) -> int:
    """SIGUSR1: switch the root logger between DEBUG and the configured level."""
    root = logging.getLogger()
    configured = LEVELS[configured_level]
    # Configured at debug already: the toggle goes to info and back.
    quiet = logging.INFO if configured == logging.DEBUG else configured
    new = quiet if root.level == logging.DEBUG else logging.DEBUG
    root.setLevel(new)
    root.log(logging.WARNING, "log level changed level=%s", logging.getLevelName(new).lower())
    return new


class FailureStreak:
    """Log a streak of failures once: WARNING, then DEBUG repeats, then INFO on recovery."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self.count = 0

    def failure(self, error: BaseException | str, **context: object) -> None:
        self.count += 1
        extra = "".join(f" {k}={v}" for k, v in context.items())
        if self.count == 1:
            # One line for the operator; the traceback once per streak, for a developer.
            self._log.warning("%s failed err=%s%s", self._what, error, extra)
            if isinstance(error, BaseException):
                self._log.debug("%s failure traceback", self._what, exc_info=error)
        else:
            self._log.debug(
                "%s failed again count=%d err=%s%s", self._what, self.count, error, extra
            )

    def success(self) -> None:
        if self.count:
            self._log.info("%s recovered failures=%d", self._what, self.count)
        self.count = 0


class OnceLogger:
    """Log each distinct problem string once (per instance), at WARNING."""

    def __init__(self, log: logging.Logger, limit: int = 1000) -> None:
        self._log = log
        self._seen: set[str] = set()
        self._limit = limit  # bound memory if problems keep changing

    def first(self, problem: str) -> bool:
        """True the first time `problem` is seen (then remembered); False after."""
        if problem in self._seen or len(self._seen) >= self._limit:
            return False
        self._seen.add(problem)
        return True

    def log(self, event: str, problem: str) -> bool:
        """Log `event problem=...` unless this problem was logged before."""
        if not self.first(problem):
            return False
        self._log.warning("%s problem=%s", event, problem)
        return True
