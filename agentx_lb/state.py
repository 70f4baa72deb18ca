"""The counter-state file: reduce's offsets survive an agent restart.

Small I/O helpers only. Loading never fails the agent: a missing file is the
normal first start, anything unreadable is one warning and a fresh start.
Saving is atomic (temp file in the same directory, fsync, rename), mode 0600.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from agentx_lb.reduce import CounterState

__all__ = ["load_state", "save_state"]

log = logging.getLogger(__name__)

_MAX_BYTES = 64 * 1024 * 1024  # far above 10,000 rows; refuse anything absurd


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


def save_state(path: str | os.PathLike[str], state: CounterState) -> None:
    """Write `state` atomically with mode 0600; raises OSError on failure."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(state.to_json().encode("utf-8"))
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
