"""Give memory back to the system now and then: ended calls' objects (a full garbage
collection) and the C heap's free memory (glibc's `malloc_trim`).

Piper's tensors, Vosk's lattices and numpy's buffers come and go with every call from
several threads. glibc keeps what they free inside its heaps, for the next allocation, and
only returns the top of a heap: in a 10-minute soak at 10 calls 350-570 MB sat free inside
the heaps while RSS rose and fell with it (docs/benchmarks.md, 7x24). `malloc_trim(0)` also
releases the free pages in the middle of every heap. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
TRIM_INTERVAL_S = 60.0
COLLECT_INTERVAL_S = 5.0


def _glibc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


_malloc_trim = _glibc_trim()


def trim_heap() -> bool:
    """Return the heaps' free pages to the system; True if any were returned."""
    return _malloc_trim is not None and bool(_malloc_trim(0))


async def trim_heap_every(interval_s: float = TRIM_INTERVAL_S) -> None:
    """Trim every `interval_s`, off the event loop (it walks every heap: milliseconds)."""
    if _malloc_trim is None:
        log.info("no malloc_trim in this C library: the heap is not trimmed")
        return
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(trim_heap)


async def collect_garbage_every(interval_s: float = COLLECT_INTERVAL_S) -> None:
    """A full garbage collection every `interval_s`, on the event loop (finalizers of asyncio
    objects must run there).

    An ended call leaves its whole object graph in reference cycles (the session, its stages,
    its media connection and stream, its ASR session with the audio it kept: 54 calls' worth in
    45 s at 20 calls), and only a full collection frees it. The interpreter's own come minutes
    apart, so a soak's heap in use climbed 20-55 MB a minute and fell by 140-240 MB at each: the
    RSS saw-tooth of docs/benchmarks.md (7x24). A full collection took 6-8 ms at 20 calls."""
    while True:
        await asyncio.sleep(interval_s)
        gc.collect()
