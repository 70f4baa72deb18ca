"""Tests for agentx_lb.state: load never crashes, save is atomic and private."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from agentx_lb.model import CounterState, RowState
from agentx_lb.state import load_state, save_state

STATE = CounterState(
    "sock:1:2|boot:3",
    (RowState((1, "192.0.2.1/32", 6, 80), (1, 2, 3, 4, 5, 6), (7, 8, 9, 10, None, None), 4, 99),),
)


def test_round_trip_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, STATE)
    assert load_state(path) == STATE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp left


def test_save_replaces_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, CounterState("old"))
    save_state(path, STATE)
    assert load_state(path) == STATE


def test_missing_file_is_none_and_silent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        assert load_state(tmp_path / "absent.json") is None
    assert caplog.records == []


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b'{"version": 1}'])
def test_corrupt_file_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.DEBUG):
        assert load_state(path) is None
    assert [(r.levelno, r.getMessage().split(" path=")[0]) for r in caplog.records] == [
        (logging.WARNING, "state file corrupt, starting fresh")
    ]


def test_unreadable_file_is_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A directory where the file should be: open() fails with an OSError even as root.
    path = tmp_path / "state.json"
    path.mkdir()
    with caplog.at_level(logging.DEBUG):
        assert load_state(path) is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "state file unreadable" in caplog.records[0].getMessage()


def test_failed_save_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, STATE)
    (tmp_path / "blocker").mkdir()
    with pytest.raises(OSError):
        save_state(tmp_path / "blocker", STATE)  # rename onto a directory fails
    assert load_state(path) == STATE
    assert sorted(os.listdir(tmp_path)) == ["blocker", "state.json"]


def test_many_rows_round_trip_in_chunks_and_version_2_still_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import json

    from agentx_lb import state as statefile

    monkeypatch.setattr(statefile, "_ROWS_PER_DUMP", 3)  # several chunks, a short last one
    rows = tuple(
        RowState((i, f"192.0.2.{i}/32", 6, 80), (i,) * 6, (i, 1, 2, 3, None, i), i, 99, None)
        for i in range(1, 11)
    )
    many = CounterState("sock:1:2|boot:3", rows)
    path = tmp_path / "state.json"
    save_state(path, many)
    assert load_state(path) == many
    doc = json.loads(path.read_text())
    assert doc["version"] == 3 and len(doc["rows"]) == 10
    # The version before: one object per row. An upgrade keeps the offsets.
    doc["version"] = 2
    del doc["row_fields"]
    doc["rows"] = [dict(zip(RowState._fields, row, strict=True)) for row in doc["rows"]]
    path.write_text(json.dumps(doc))
    assert load_state(path) == many
    # Version 3 with other row fields (a later release's file): refused, not misread.
    save_state(path, many)
    doc = json.loads(path.read_text())
    doc["row_fields"] = doc["row_fields"][::-1]
    path.write_text(json.dumps(doc))
    assert load_state(path) is None
