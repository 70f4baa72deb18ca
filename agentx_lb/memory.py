"""How the scrape thread keeps the process small and the protocol loop unstalled.

At start (`cli.run`), `one_malloc_arena()`: every thread allocates from
glibc's main arena; `big_blocks_mapped()`: large blocks never come from the
heap. Then three habits, applied by `pipeline.py` around each tick:

* no automatic cyclic GC pass during a tick (`gc_paused`): a tick allocates
  an object or more per VIP and each automatic pass over them holds the GIL
  while the AgentX loop waits;
* after a publish, the survivors leave the collector's generations
  (`freeze_survivors`), so no later full collection walks the served table;
* after a publish, free heap goes back to the OS (`release_free_heap`): a
  tick's transients (the multi-MB CLI reply as received and as text, and
  the table being replaced) leave holes in glibc's heaps that it keeps.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

__all__ = [
    "PROCESS_MEMORY",
    "UNFREEZE_EVERY_TICKS",
    "MemoryPolicy",
    "NoMemoryPolicy",
    "big_blocks_mapped",
    "freeze_survivors",
    "gc_paused",
    "one_malloc_arena",
    "release_free_heap",
]

# Every this many ticks the frozen set is handed back to the collector and
# one full collection runs, so any garbage cycle frozen meanwhile is
# reclaimed: once an hour at 5 s. A scrape itself makes none (test_source:
# no cyclic garbage); the backstop is for what a future change might leak.
UNFREEZE_EVERY_TICKS = 720


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic collection inside the block; a caller's own
    `gc.disable()` is left as it was. Garbage from a tick is freed by
    reference counting; the survivors are frozen at its end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_survivors(tick: int) -> None:
    """Move everything alive now out of the cyclic GC's reach (`gc.freeze`).

    After a publish almost every live object is long-lived (the parser's
    memo, the rows, the table). Left in the oldest generation, each full
    collection walks all of them with the GIL held (bench/bench_scrape.py
    measures it). Frozen objects are still freed by reference counting.
    """
    if tick % UNFREEZE_EVERY_TICKS == 0:
        # The backstop: unfreezing alone collects nothing (automatic full
        # passes are rare), so collect now, once, then freeze the survivors.
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def _libc_function(name: str) -> Callable[..., int] | None:
    """A glibc function by name, or None (no libc found, or musl, which has neither)."""
    libc = ctypes.util.find_library("c")
    if libc is None:
        return None
    try:
        return getattr(ctypes.CDLL(libc), name)  # type: ignore[no-any-return]  # ctypes symbols are untyped
    except (OSError, AttributeError):
        return None


_TRIM = _libc_function("malloc_trim")
_MALLOPT = _libc_function("mallopt")
_M_ARENA_MAX = -8  # glibc <malloc.h>


def one_malloc_arena() -> bool:
    """Let every thread allocate from glibc's main arena (`M_ARENA_MAX` 1); False
    where that is not glibc. Call before the threads start.

    glibc gives a thread an arena of its own whenever the main one is locked,
    e.g. while `malloc_trim` runs with the GIL released; each arena keeps its
    own free holes, which all count in RSS. Python threads
    allocate with the GIL held, so one arena costs no contention.
    """
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_ARENA_MAX, 1))


_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
# Blocks this large or larger get pages of their own (mmap), returned to the OS
# the moment they are freed: the CLI reply (megabytes, as bytes and as text)
# and the chunks cut from it.
MMAP_THRESHOLD = 256 * 1024


def big_blocks_mapped() -> bool:
    """Serve every allocation of `MMAP_THRESHOLD` or more from its own mapping
    (`M_MMAP_THRESHOLD`); False where that is not glibc.

    By default glibc raises the threshold to the size of each mapped block
    freed (up to 32 MB): after the first multi-MB CLI reply, the next ones come
    from the heap, where each scrape's transients leave holes between the
    survivors that `malloc_trim` cannot give back. A fixed threshold stops that.
    """
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_free_heap() -> bool:
    """Return glibc's free heap pages to the OS; False where there is no
    `malloc_trim`. Runs with the GIL released (ctypes drops it for the
    call), so the protocol loop runs meanwhile."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class MemoryPolicy:
    """The habits above, as the pipeline applies them around each tick."""

    def paused(self) -> AbstractContextManager[None]:
        """Around a tick: no automatic cyclic GC pass (`gc_paused`)."""
        return gc_paused()

    def after_publish(self, tick: int) -> None:
        """After a publish: freeze the survivors, give free heap back to the OS."""
        freeze_survivors(tick)
        release_free_heap()


class NoMemoryPolicy(MemoryPolicy):
    """Leaves the GC and the heap alone: for unit tests, which must not freeze
    the test process's collector."""

    def paused(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def after_publish(self, tick: int) -> None:
        pass


PROCESS_MEMORY = MemoryPolicy()
