"""A writer of VPP's version-2 stats segment (docs/vpp.md, "Stats segment").

The segment is a memfd mapped read-write here and read-only by vpp_papi's
``VPPStats``.  Every pointer is stored as ``BASE + offset`` so the client's
``ptr - header.base`` arithmetic is exercised.  Memory comes from a bump
allocator starting at 4096; vectors carry VPP's 8-byte ``vec_header_t`` and
64-byte aligned data.  Structural changes follow VPP's lock protocol
(``in_progress = 1`` ... ``epoch += 1``; ``in_progress = 0``); in-place counter
stores change neither field, like VPP's workers.  Reallocated blocks are
poisoned with ``0xdeadbeef`` so a reader that missed an epoch change reads
garbage, as it would on a real VPP.

Not thread safe by itself: the owner (``EmulatedVpp``) serialises writers.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

BASE = 0x7F3AC0000000
DEFAULT_SIZE = 64 * 1024 * 1024
HEAP_START = 4096
ALIGN = 64
DIR_ENTRY = struct.Struct("<I4xQ128s")  # vlib_stats_entry_t, 144 bytes
HEADER = struct.Struct("<QQQQQQ")
VEC_HDR = struct.Struct("<IBBBB")

TYPE_SCALAR = 1
TYPE_SIMPLE = 2
TYPE_COMBINED = 3
TYPE_EMPTY = 5

_POISON = (0xDEADBEEF).to_bytes(4, "little")


class SegmentFullError(MemoryError):
    """The bump allocator ran past the end of the segment."""


@dataclass
class _Vec:
    off: int  # data offset in the segment
    cap: int  # capacity in elements
    esize: int  # element size in bytes
    length: int = 0


@dataclass
class _Entry:
    name: str
    type: int
    value: int = 0  # scalar value, or pointer to the thread vector
    rows: list[_Vec] = field(default_factory=list)  # counter rows per thread
    threads: _Vec | None = None  # vec<ptr>[n_threads]


class StatsSegment:
    """One stats segment (one VPP lifetime). ``close()`` releases our mapping only."""

    def __init__(self, n_threads: int, size: int = DEFAULT_SIZE) -> None:
        self.n_threads = n_threads
        self.size = size
        self.fd = os.memfd_create("stat segment", os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, size)
        self.mm = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._top = HEAP_START
        self._entries: list[_Entry] = []
        self._by_name: dict[str, int] = {}
        self._dir = self._alloc(64, DIR_ENTRY.size)
        HEADER.pack_into(self.mm, 0, 2, BASE, 1, 0, BASE + self._dir.off, 0)
        for name in ("/sys/heartbeat", "/sys/last_stats_clear", "/sys/boottime"):
            self.add_scalar(name, 0)

    # ------------------------------------------------------------ memory --
    def _alloc(self, cap: int, esize: int, length: int = 0) -> _Vec:
        cap = max(cap, 1)
        data = (self._top + 8 + ALIGN - 1) // ALIGN * ALIGN
        end = data + cap * esize
        # vpp_papi rejects a vector that ends exactly at the segment end (>=)
        if end >= self.size:
            raise SegmentFullError(f"stats segment full: need {end} of {self.size} bytes")
        self._top = end
        vec = _Vec(data, cap, esize, length)
        self._write_vec_header(vec)
        return vec

    def _write_vec_header(self, vec: _Vec) -> None:
        VEC_HDR.pack_into(self.mm, vec.off - 8, vec.length, 1, 6, min(vec.cap - vec.length, 255), 0)

    def _poison(self, vec: _Vec) -> None:
        nbytes = vec.cap * vec.esize
        self.mm[vec.off : vec.off + nbytes] = (_POISON * (nbytes // 4 + 1))[:nbytes]

    def _grow(self, vec: _Vec, need: int) -> _Vec:
        """Reallocate ``vec`` to hold ``need`` elements; caller holds the lock."""
        new = self._alloc(max(need, vec.cap * 2), vec.esize, vec.length)
        n = vec.length * vec.esize
        self.mm[new.off : new.off + n] = self.mm[vec.off : vec.off + n]
        self._poison(vec)
        return new

    # -------------------------------------------------------------- lock --
    @property
    def epoch(self) -> int:
        return int(struct.unpack_from("<Q", self.mm, 16)[0])

    @property
    def in_progress(self) -> int:
        return int(struct.unpack_from("<Q", self.mm, 24)[0])

    def set_in_progress(self, value: int) -> None:
        """Force the header flag (fault injection: a writer died holding the lock)."""
        struct.pack_into("<Q", self.mm, 24, value)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """VPP's vlib_stats_segment_lock/unlock around a structural change."""
        struct.pack_into("<Q", self.mm, 24, 1)
        try:
            yield
        finally:
            struct.pack_into("<Q", self.mm, 16, self.epoch + 1)
            struct.pack_into("<Q", self.mm, 24, 0)

    # --------------------------------------------------------- directory --
    def _write_dir_entry(self, i: int) -> None:
        e = self._entries[i]
        DIR_ENTRY.pack_into(
            self.mm, self._dir.off + i * DIR_ENTRY.size, e.type, e.value, e.name.encode("ascii")
        )

    def _add_entry(self, entry: _Entry) -> int:
        """Append a directory entry; caller holds the lock."""
        i = len(self._entries)
        if i + 1 > self._dir.cap:
            self._dir = self._grow(self._dir, i + 1)
            struct.pack_into("<Q", self.mm, 32, BASE + self._dir.off)
        self._entries.append(entry)
        self._by_name[entry.name] = i
        self._write_dir_entry(i)
        self._dir.length = i + 1
        self._write_vec_header(self._dir)
        return i

    def has(self, name: str) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return list(self._by_name)

    def add_scalar(self, name: str, value: int) -> None:
        with self.locked():
            self._add_entry(_Entry(name, TYPE_SCALAR, value))

    def set_scalar(self, name: str, value: int) -> None:
        i = self._by_name[name]
        self._entries[i].value = value
        self._write_dir_entry(i)

    def add_counter(self, name: str, combined: bool, length: int = 0) -> None:
        """Create a simple (type 2) or combined (type 3) counter ``[thread][index]``."""
        esize = 16 if combined else 8
        with self.locked():
            threads = self._alloc(self.n_threads, 8, self.n_threads)
            rows = [self._alloc(max(length, 16), esize, length) for _ in range(self.n_threads)]
            for t, row in enumerate(rows):
                struct.pack_into("<Q", self.mm, threads.off + 8 * t, BASE + row.off)
            entry = _Entry(name, TYPE_COMBINED if combined else TYPE_SIMPLE, BASE + threads.off)
            entry.rows, entry.threads = rows, threads
            self._add_entry(entry)

    def validate(self, name: str, length: int) -> None:
        """Make every thread row at least ``length`` long (vlib_validate_*_counter).

        Growing within capacity is a plain store; reallocation takes the lock and
        bumps the epoch.  New elements are zero.
        """
        entry = self._entries[self._by_name[name]]
        need_realloc = any(length > row.cap for row in entry.rows)
        if need_realloc:
            with self.locked():
                self._validate_rows(entry, length)
        else:
            self._validate_rows(entry, length)

    def _validate_rows(self, entry: _Entry, length: int) -> None:
        assert entry.threads is not None
        for t, row in enumerate(entry.rows):
            if length <= row.length:
                continue
            if length > row.cap:
                row = self._grow(row, length)
                entry.rows[t] = row
                struct.pack_into("<Q", self.mm, entry.threads.off + 8 * t, BASE + row.off)
            start, end = row.off + row.length * row.esize, row.off + length * row.esize
            self.mm[start:end] = bytes(end - start)
            row.length = length
            self._write_vec_header(row)

    def length(self, name: str) -> int:
        return self._entries[self._by_name[name]].rows[0].length

    def _slot(self, name: str, thread: int, index: int) -> tuple[int, _Entry]:
        entry = self._entries[self._by_name[name]]
        row = entry.rows[thread]
        if index >= row.length:
            raise IndexError(f"{name}[{thread}][{index}] beyond length {row.length}")
        return row.off + index * row.esize, entry

    # ------------------------------------------------------------ values --
    def get_simple(self, name: str, thread: int, index: int) -> int:
        off, _ = self._slot(name, thread, index)
        return int(struct.unpack_from("<Q", self.mm, off)[0])

    def set_simple(self, name: str, thread: int, index: int, value: int) -> None:
        off, _ = self._slot(name, thread, index)
        struct.pack_into("<Q", self.mm, off, value & 0xFFFFFFFFFFFFFFFF)

    def add_simple(self, name: str, thread: int, index: int, delta: int) -> None:
        self.set_simple(name, thread, index, self.get_simple(name, thread, index) + delta)

    def get_combined(self, name: str, thread: int, index: int) -> tuple[int, int]:
        off, _ = self._slot(name, thread, index)
        return struct.unpack_from("<QQ", self.mm, off)

    def set_combined(self, name: str, thread: int, index: int, packets: int, octets: int) -> None:
        off, _ = self._slot(name, thread, index)
        mask = 0xFFFFFFFFFFFFFFFF
        struct.pack_into("<QQ", self.mm, off, packets & mask, octets & mask)

    def add_combined(self, name: str, thread: int, index: int, packets: int, octets: int) -> None:
        p, o = self.get_combined(name, thread, index)
        self.set_combined(name, thread, index, p + packets, o + octets)

    def add_simple_many(self, name: str, thread: int, indices: list[int], delta: int) -> None:
        """``add_simple`` at each of ``indices``, in one pass over the thread row."""
        row = self._entries[self._by_name[name]].rows[thread]
        mask = 0xFFFFFFFFFFFFFFFF
        with memoryview(self.mm) as mm, mm[row.off : row.off + 8 * row.length].cast("Q") as q:
            for i in indices:
                q[i] = (q[i] + delta) & mask

    def add_combined_many(
        self, name: str, thread: int, indices: list[int], packets: int, octets: int
    ) -> None:
        """``add_combined`` at each of ``indices``, in one pass over the thread row."""
        row = self._entries[self._by_name[name]].rows[thread]
        mask = 0xFFFFFFFFFFFFFFFF
        with memoryview(self.mm) as mm, mm[row.off : row.off + 16 * row.length].cast("Q") as q:
            for i in indices:
                q[2 * i] = (q[2 * i] + packets) & mask
                q[2 * i + 1] = (q[2 * i + 1] + octets) & mask

    def zero_index(self, name: str, index: int) -> None:
        """vlib_zero_simple/combined_counter: clear one index in every thread row."""
        entry = self._entries[self._by_name[name]]
        for row in entry.rows:
            off = row.off + index * row.esize
            self.mm[off : off + row.esize] = bytes(row.esize)

    def row_values(self, name: str, thread: int, n: int) -> list[int]:
        """The first ``n`` u64 values of a simple counter's thread row, read in bulk."""
        row = self._entries[self._by_name[name]].rows[thread]
        n = min(n, row.length)
        return list(memoryview(self.mm)[row.off : row.off + 8 * n].cast("Q"))

    def repair(self, name: str) -> None:
        """Undo ``corrupt``: rewrite every row's vector header."""
        for row in self._entries[self._by_name[name]].rows:
            self._write_vec_header(row)

    def corrupt(self, name: str, thread: int = 0) -> None:
        """Fault: make one thread row's ``len`` run past the end of the segment."""
        entry = self._entries[self._by_name[name]]
        row = entry.rows[thread]
        struct.pack_into("<I", self.mm, row.off - 8, (self.size // row.esize) + 1)

    def close(self) -> None:
        """Drop our mapping and fd; clients' mappings keep the memfd alive (frozen)."""
        if not self.mm.closed:
            self.mm.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
