"""BulkStats: vpp_papi's VPPStats with a bounded lock and a bulk `dump()`.

vpp_papi 2.4.2 (docs/vpp.md, "Stats segment") decodes every counter element into Python
objects (a `StatsTuple` per combined element: `/net/route/to` alone is about
90,000 entries x threads at 10,000 VIPs) and spins forever on a stuck
`in_progress` or a corrupt vector. This subclass keeps its connection,
directory and `refresh()` but:

* `dump(names)` reads every name under ONE optimistic lock (epoch recorded,
  `in_progress` waited for, both checked again at the end) with a bounded
  number of attempts; simple and combined counter rows are copied out of the
  segment in bulk into `array('Q')` (one memcpy per thread row) instead of one
  object per element. vpp_papi's bounds check is kept: a vector that runs past
  the segment raises `OSError("Vector overruns stats segment")`.
* Simple counters come back as `list[array('Q')]` (one row per thread),
  combined counters as `list[CombinedRow]`; scalars as `int`; any other entry
  type is decoded by vpp_papi itself.
* The lock waits for `in_progress` with a deadline instead of spinning, and
  `connect()` closes its socket on failure and uses our timeout.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import time
from array import array
from collections.abc import Iterable
from typing import Any

from vpp_papi.vpp_stats import StatsLock, VPPStats, recv_fd

from agentx_lb.errors import SourceDataError
from agentx_lb.model import CombinedRow

__all__ = ["BulkStats", "StatsChangingError", "StatsLockedError"]

_POLL_S = 0.002
_ATTEMPTS = 4  # optimistic-lock attempts per dump
_TYPE_SCALAR = 1
_TYPE_SIMPLE = 2
_TYPE_COMBINED = 3
_TYPE_GAUGE = 9
_DIR_ENTRY_SIZE = 144  # vlib_stats_entry_t
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_OVERRUN = "Vector overruns stats segment"


class StatsLockedError(OSError):
    """`in_progress` stayed set for longer than the timeout."""


class StatsChangingError(OSError):
    """The segment changed under every attempt of a dump."""


class _BoundedStatsLock(StatsLock):  # type: ignore[misc]  # vpp_papi is untyped: its classes are Any
    """vpp_papi's StatsLock busy-spins forever on `in_progress`; wait bounded instead."""

    def __init__(self, stats: BulkStats, timeout_s: float) -> None:
        super().__init__(stats)
        self._timeout_s = timeout_s

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.epoch = self.stats.epoch
        self.stats.wait_unlocked(self._timeout_s)
        return True


class BulkStats(VPPStats):  # type: ignore[misc]  # vpp_papi is untyped: its classes are Any
    """VPPStats that never spins and dumps counter vectors in bulk."""

    connected: bool  # set by VPPStats (untyped)

    def __init__(self, socketname: str, timeout_s: float) -> None:
        super().__init__(socketname=socketname)
        self.lock = _BoundedStatsLock(self, timeout_s)
        self._timeout_s = timeout_s

    # ------------------------------------------------------- connection ---
    def connect(self) -> None:
        """VPPStats.connect, but the socket is closed on failure (vpp_papi leaks it
        when connect() raises) and the timeout is ours instead of a fixed 1 s."""
        if self.connected:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(self._timeout_s)
            sock.connect(self.socketname)
            fd = recv_fd(sock)  # IndexError: VPP sent no fd
        try:
            size = os.fstat(fd).st_size
            self.statseg = mmap.mmap(fd, size, mmap.PROT_READ, mmap.MAP_SHARED)
        finally:
            os.close(fd)
        self.size = size
        if self.version != 2:
            raise SourceDataError(
                f"stats socket {self.socketname}: stat segment version {self.version},"
                " need 2 (VPP >= 22.06)"
            )
        self.refresh()
        self.connected = True

    def refresh(self, blocking: bool = True) -> None:
        # vpp_papi refreshes with blocking=True, which retries IOError forever.
        super().refresh(blocking=False)

    def close(self) -> None:
        """Unmap, also after a connect() that failed half way."""
        self.connected = False
        if isinstance(self.statseg, mmap.mmap):
            self.statseg.close()

    def wait_unlocked(self, timeout_s: float) -> None:
        """Wait (sleeping, bounded) until no writer holds the segment lock."""
        if not self.in_progress:
            return
        deadline = time.monotonic() + timeout_s
        while self.in_progress:
            if time.monotonic() >= deadline:
                raise StatsLockedError("stats segment locked (in_progress stuck)")
            time.sleep(_POLL_S)

    # ------------------------------------------------------------- dump ---
    def dump(
        self, counters: Iterable[str], blocking: bool = True, *, missing_ok: bool = False
    ) -> dict[str, Any]:
        """`{name: value}` for `counters`, all read under one optimistic lock.

        Refreshes the directory when the epoch moved. Retries a bounded number
        of times when a writer changed the segment during the read (then
        raises StatsChangingError); `blocking` is accepted for vpp_papi
        compatibility and never means "forever". A name not in the directory
        raises KeyError, or is left out with `missing_ok`.
        """
        if not self.connected:
            self.connect()
        names = list(counters)
        last = ""
        for _ in range(_ATTEMPTS):
            self.wait_unlocked(self._timeout_s)
            if self.last_epoch != self.epoch:
                self.refresh()
            epoch = self.epoch
            try:
                result = self._read(names, missing_ok)
            except KeyError as exc:
                if self.epoch == epoch and not self.in_progress:
                    raise  # really absent, not removed by a writer meanwhile
                last = f"entry vanished during read: {exc}"
            else:
                if self.epoch == epoch and not self.in_progress:
                    return result
                last = "Optimistic lock failed"
            time.sleep(_POLL_S)
        raise StatsChangingError(f"stats segment kept changing during {_ATTEMPTS} reads ({last})")

    def _read(self, names: list[str], missing_ok: bool) -> dict[str, Any]:
        result: dict[str, Any] = {}
        directory = self.directory
        for name in names:
            entry = directory.get(name)
            if entry is None:
                if missing_ok:
                    continue
                raise KeyError(name)
            kind = entry.type
            if kind == _TYPE_SIMPLE:
                result[name] = [array("Q", self._row(p, 8)) for p in self._threads(entry.value)]
            elif kind == _TYPE_COMBINED:
                rows = []
                for p in self._threads(entry.value):
                    flat = array("Q", self._row(p, 16))
                    rows.append(CombinedRow(flat[0::2], flat[1::2]))
                result[name] = rows
            elif kind in (_TYPE_SCALAR, _TYPE_GAUGE):
                result[name] = self._scalar(entry.index)
            else:
                # Name vectors, symlinks, ...: rare and small, vpp_papi decodes them.
                result[name] = entry.get_counter(self)
        return result

    def _vector(self, ptr: int, esize: int) -> tuple[int, int]:
        """(offset, length) of the vector at VPP address `ptr`, bounds checked."""
        start = ptr - self.base
        if start < 8 or start >= self.size:
            raise OSError(_OVERRUN)
        n = _U32.unpack_from(self.statseg, start - 8)[0]
        # vpp_papi's check, `>=` included.
        if start + n * esize >= self.size:
            raise OSError(_OVERRUN)
        return start, n

    def _threads(self, ptr: int) -> tuple[int, ...]:
        start, n = self._vector(ptr, 8)
        return struct.unpack_from(f"={n}Q", self.statseg, start)

    def _row(self, ptr: int, esize: int) -> bytes:
        start, n = self._vector(ptr, esize)
        return self.statseg[start : start + n * esize]

    def _scalar(self, index: int) -> int:
        start, n = self._vector(self.directory_vector, _DIR_ENTRY_SIZE)
        if index >= n:
            raise OSError("Index beyond end of vector")
        return int(_U64.unpack_from(self.statseg, start + index * _DIR_ENTRY_SIZE + 8)[0])
