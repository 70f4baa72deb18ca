"""A stoppable AF_UNIX listener thread shared by the emulator's two servers.

``stop(stale=False)`` closes the listening socket and unlinks the file, as VPP
does on a clean exit; ``stop(stale=True)`` leaves the file behind with no
listener (a crashed VPP), so a client's ``connect()`` is refused.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class UnixListener:
    """Accept connections on ``path`` in a daemon thread and hand them to ``handle``."""

    def __init__(self, path: str | Path, kind: int, name: str) -> None:
        self.path = str(path)
        self.kind = kind
        self.name = name
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        if os.path.exists(self.path):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, self.kind)
        old = os.umask(0o002)  # VPP binds under umask(S_IWOTH): srwxrwxr-x
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        sock.listen(64)
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, *, stale: bool = False) -> None:
        thread, sock = self._thread, self._sock
        if thread is None or sock is None:
            return
        os.write(self._wake_w, b"x")
        thread.join()
        sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._thread, self._sock = None, None
        if not stale and os.path.exists(self.path):
            os.unlink(self.path)

    def _run(self) -> None:
        assert self._sock is not None
        while True:
            readers: list[socket.socket | int] = [self._sock, self._wake_r]
            ready, _, _ = select.select(readers, [], [])
            if self._wake_r in ready:
                return
            try:
                conn, _ = self._sock.accept()
            except OSError as exc:
                log.warning("accept failed server=%s err=%s", self.name, exc)
                continue
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:  # pragma: no cover - overridden
        conn.close()
