"""How the process manages memory while a sweep streams a million members through it.

A sweep allocates and frees the same shapes over and over: a chunk of members, its records, its
encoded batches, then the next chunk's. Both of the runtime's defaults are tuned for programs that
do not, and each cost a full sync a large share of its CPU.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
KEPT_FREE_BYTES = 128 * 2**20
"""Freed memory glibc keeps for the next chunk instead of handing it back to the kernel."""
MMAP_THRESHOLD_BYTES = 4 * 2**20
"""Pages (about 350 KB each) and batch bodies come from the heap, reused, rather than each from a
fresh mapping of its own."""
ARENAS = 2
"""Heaps the sweep's threads allocate from. glibc gives threads up to eight heaps per core, and
each keeps its own `KEPT_FREE_BYTES`: with a page's bytes allocated on the fetch threads and freed
on the sweep's, how much stayed mapped depended on how the threads spread over heaps, and a full
sync's peak RSS ranged over 368–413 MB between runs of the same code. With two, it measured
366–367 MB against 376–378 MB, at the same CPU."""


@contextmanager
def streaming_memory() -> Iterator[None]:
    """For the length of a sweep: rare cycle collections, and freed memory kept for reuse.

    Members, records and batches hold no reference cycles: reference counting frees them. Left at
    its defaults, Python's cycle collector runs a full pass every few pages over every object in
    the process, Dagster's included; over a million members that was 40% of the importer's CPU.
    Existing objects are set aside (`gc.freeze`) and passes are made rare, then both are restored.
    """
    keep_freed_memory()
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed memory mapped, for the process's life; False where the allocator is not glibc's.

    glibc gives the free memory at the top of a heap back to the kernel as soon as it exceeds 128
    KiB, so every chunk freed was returned and the next one faulted back in page by page: a
    serialised record cost five times what it costs in memory already mapped, and a 300,000-member
    full sync took 12% more CPU. The peak is unchanged; the process only keeps what it reached.
    Setting the threshold also ends glibc's own adjustment of it, so the mapping threshold is set
    with it. The heaps are capped here too, before the sweep starts its threads: glibc reads the cap
    until more than eight heaps exist, and threads that come later share the heaps there are.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    options = ((M_TRIM_THRESHOLD, KEPT_FREE_BYTES), (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_ARENA_MAX, ARENAS))
    return all(mallopt(option, value) for option, value in options)
