"""memory.py: the scrape thread's GC and heap habits."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import weakref

import pytest

from agentx_lb import memory


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's; other libcs have none"
)
def test_release_free_heap_gives_holes_back_to_the_os() -> None:
    # 64 MB in 4 KiB blocks (malloc'd, not Python's small-object pools); keep
    # one in 64 so the freed ones are holes below the heap's top, which plain
    # free() never returns.
    blocks = [bytearray(4096) for _ in range(16384)]
    for b in blocks:
        b[0] = 1  # touch: resident
    kept = blocks[::64]
    del blocks
    before = _rss_kib()
    assert memory.release_free_heap() is True
    after = _rss_kib()
    assert before - after > 32 * 1024, (before, after)
    assert len(kept) == 256


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic GC frees it


def test_the_backstop_collects_a_cycle_frozen_earlier() -> None:
    """The hourly backstop collects, then freezes again (it once only unfroze)."""
    was_enabled = gc.isenabled()
    gc.disable()  # no automatic pass may do the backstop's work
    gc.unfreeze()
    try:
        node = _Node()
        ref = weakref.ref(node)
        memory.freeze_survivors(1)  # the cycle is alive now: frozen with the rest
        del node
        assert ref() is not None
        memory.freeze_survivors(memory.UNFREEZE_EVERY_TICKS)
        assert ref() is None  # collected
        assert gc.get_freeze_count() > 0  # and the survivors frozen again
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


# Two threads allocate while a third holds the main arena's lock in
# malloc_trim (GIL released), so glibc would give them arenas of their own;
# prints how many heaps malloc_info reports.
_ARENA_PROBE = r"""
import ctypes, ctypes.util, os, sys, tempfile, threading, time
from agentx_lb import memory
if sys.argv[1] == "one":
    assert memory.one_malloc_arena() is True
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
end = time.monotonic() + 1.0
def trim():
    while time.monotonic() < end:
        libc.malloc_trim(0)
def alloc():
    keep = []
    while time.monotonic() < end:
        keep.append(bytearray(100_000))
        keep = keep[-50:]
threads = [threading.Thread(target=f) for f in (trim, alloc, alloc)]
for t in threads:
    t.start()
for t in threads:
    t.join()
fd, path = tempfile.mkstemp()
os.close(fd)
f = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(f))
libc.fclose(ctypes.c_void_p(f))
with open(path) as fh:
    print(fh.read().count("<heap nr="))
os.unlink(path)
"""


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="M_ARENA_MAX and malloc_info are glibc's"
)
def test_one_malloc_arena_keeps_threads_in_the_main_arena() -> None:
    def heaps(mode: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run(
            [sys.executable, "-c", _ARENA_PROBE, mode],
            capture_output=True, text=True, check=True, env=env, timeout=60,
        )  # fmt: skip
        return int(out.stdout)

    assert heaps("default") > 1  # the probe does make glibc open more arenas
    assert heaps("one") == 1
