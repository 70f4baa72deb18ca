"""memory.py: the scrape thread's GC and heap habits."""

from __future__ import annotations

import gc
import os
import platform

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


def test_freeze_survivors_unfreezes_on_the_period() -> None:
    gc.unfreeze()
    try:
        memory.freeze_survivors(1)
        assert gc.get_freeze_count() > 0
        memory.freeze_survivors(memory.UNFREEZE_EVERY_TICKS)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
