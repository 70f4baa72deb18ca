"""VPP's stats.sock: one zero-length SEQPACKET message carrying the memfd.

See docs/vpp.md, "Connecting".

Each accepted connection gets ``SCM_RIGHTS [memfd]`` and is closed, exactly as
``stats_socket_accept_ready()`` does.  The fd comes from a callable so a
restarted emulator hands out its new segment on the same listener path.
"""

from __future__ import annotations

import array
import logging
import socket
from collections.abc import Callable
from pathlib import Path

from agentx_lb.emulator.listener import UnixListener

log = logging.getLogger(__name__)


class StatsSocketServer(UnixListener):
    """Serve the current stats-segment fd on ``path``."""

    def __init__(self, path: str | Path, get_fd: Callable[[], int]) -> None:
        super().__init__(path, socket.SOCK_SEQPACKET, "emu-stats-sock")
        self._get_fd = get_fd

    def handle(self, conn: socket.socket) -> None:
        try:
            fds = array.array("i", [self._get_fd()])
            conn.sendmsg([b""], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as exc:
            log.warning("stats fd send failed err=%s", exc)
        finally:
            conn.close()
