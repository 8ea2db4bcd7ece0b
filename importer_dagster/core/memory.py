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
KEPT_FREE_BYTES = 128 * 2**20
"""Freed memory glibc keeps for the next chunk instead of handing it back to the kernel."""
MMAP_THRESHOLD_BYTES = 4 * 2**20
"""Pages (about 350 KB each) and batch bodies come from the heap, reused, rather than each from a
fresh mapping of its own."""


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
    with it.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
