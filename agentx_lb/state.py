"""The counter-state file: reduce's offsets survive an agent restart.

Small I/O helpers and the write policy. Loading never fails the agent: a
missing file is the normal first start, anything unreadable is one warning
and a fresh start. Saving is atomic (temp file in the same directory, fsync,
rename), mode 0600.

When to write (`write_due`): on an event that changes offsets or identities
(VPP restarted, a VIP re-created, an index reused: `CounterState.revision`
moved), at most once per `DRIFT_WRITE_S` when only the raw baselines moved,
and at a clean stop (`clean=True`, the only write that says so). Never per
tick: at 10,000 VIPs a write is ~2 MB of JSON and two fsyncs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from agentx_lb.reduce import CounterState

__all__ = ["DRIFT_WRITE_S", "load_state", "save_state", "write_due"]

log = logging.getLogger(__name__)

_MAX_BYTES = 64 * 1024 * 1024  # far above 10,000 rows; refuse anything absurd
DRIFT_WRITE_S = 60.0


def write_due(saved: CounterState | None, saved_at: float, new: CounterState, now: float) -> bool:
    """Should `new` be written, the file holding `saved` (written at `saved_at`)?

    Pure. Identity/offset changes (a new revision, another VPP instance) are
    written at once; a state whose only change is the raw baselines waits
    until `DRIFT_WRITE_S` after the last write.
    """
    if saved is None or new is saved:
        return saved is None
    if new.revision != saved.revision or new.vpp_instance != saved.vpp_instance:
        return True
    return now - saved_at >= DRIFT_WRITE_S


def load_state(path: str | os.PathLike[str]) -> CounterState | None:
    """The saved state, or None (missing: silently; unreadable/corrupt: one warning)."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("state file unreadable path=%s err=%s", path, exc)
        return None
    try:
        if len(data) > _MAX_BYTES:
            raise ValueError(f"larger than {_MAX_BYTES} bytes")
        return CounterState.from_json(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        log.warning("state file corrupt, starting fresh path=%s err=%s", path, exc)
        return None


def save_state(path: str | os.PathLike[str], state: CounterState, *, clean: bool = False) -> None:
    """Write `state` atomically with mode 0600; raises OSError on failure.

    `clean`: this is the write of a clean stop (the next start trusts it)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(state.to_json(clean=clean).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
