"""logs: line format with/without journald, noisy loggers, SIGUSR1 toggle, helpers."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from agentx_lb import logs


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {n: logging.getLogger(n).level for n in logs.NOISY_LOGGERS}
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for n, lvl in noisy.items():
        logging.getLogger(n).setLevel(lvl)


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize("journal", [True, False])
def test_configure_one_line_per_event(journal: bool) -> None:
    out = io.StringIO()
    logs.configure("info", stream=out, journal=journal)
    logging.getLogger("agentx_lb.x").info("scrape ok vips=%d", 3)
    logging.getLogger("agentx_lb.x").debug("hidden")
    logging.getLogger("pyagentx3.network").info("GET noise")
    logging.getLogger("pyagentx3.network").warning("real problem")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    if journal:
        assert lines[0] == "INFO agentx_lb.x: scrape ok vips=3"
    else:
        # asctime first: "2024-01-01 12:00:00,123 INFO ..."
        assert lines[0].endswith(" INFO agentx_lb.x: scrape ok vips=3")
        assert lines[0][:4].isdigit() and lines[0][4] == "-"
    assert lines[1].endswith("WARNING pyagentx3.network: real problem")


@pytest.mark.usefixtures("restore_root")
def test_toggle_debug() -> None:
    out = io.StringIO()
    logs.configure("warning", stream=out, journal=True)
    root = logging.getLogger()
    assert logs.toggle_debug("warning") == logging.DEBUG
    assert root.level == logging.DEBUG
    assert logs.toggle_debug("warning") == logging.WARNING
    assert root.level == logging.WARNING
    assert "log level changed level=debug" in out.getvalue()
    logs.configure("debug", stream=out, journal=True)
    assert logs.toggle_debug("debug") == logging.INFO
    assert logs.toggle_debug("debug") == logging.DEBUG


def test_failure_streak(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="t.streak")
    streak = logs.FailureStreak(logging.getLogger("t.streak"), "scrape")
    streak.success()  # no streak: nothing to say
    for _ in range(3):
        streak.failure(OSError("refused"), socket="/run/vpp/api.sock")
    streak.success()
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [
        ("WARNING", "scrape failed err=refused socket=/run/vpp/api.sock"),
        ("DEBUG", "scrape failure traceback"),
        ("DEBUG", "scrape failed again count=2 err=refused socket=/run/vpp/api.sock"),
        ("DEBUG", "scrape failed again count=3 err=refused socket=/run/vpp/api.sock"),
        ("INFO", "scrape recovered failures=3"),
    ]
    assert streak.count == 0
    # The operator's line has no traceback (the README promises one line).
    warning = caplog.records[0]
    assert warning.exc_info is None and warning.exc_text is None
    assert caplog.records[1].exc_info is not None


def test_once_logger(caplog: pytest.LogCaptureFixture) -> None:
    once = logs.OnceLogger(logging.getLogger("t.once"), limit=2)
    assert once.log("parse skipped", "a") is True
    assert once.log("parse skipped", "a") is False
    assert once.log("parse skipped", "b") is True
    assert once.log("parse skipped", "c") is False  # bounded
    assert [r.getMessage() for r in caplog.records] == [
        "parse skipped problem=a",
        "parse skipped problem=b",
    ]
