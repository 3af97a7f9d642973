"""The C heap's free pages go back to the system (issue 17: RSS that only grew in a soak)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import weakref
from pathlib import Path

import pytest

from bench._rig import MALLOC_AS_SHIPPED
from outdial import health_memory
from outdial.health_memory import collect_garbage_every, trim_heap, trim_heap_every

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

BLOCK = 8192  # under glibc's mmap threshold: from the heap, like a call's buffers
BLOCKS = 20_000  # 160 MB


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_freed_memory_inside_the_heap_goes_back_to_the_system() -> None:
    """Blocks freed between blocks still in use stay in the heap (free() only returns its
    top); trimming returns their pages."""
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)
    kept = blocks[49::50]  # one block in 50 stays in use, the last one among them
    for index, block in enumerate(blocks):
        if index % 50 != 49:
            libc.free(block)
    before = _rss_mb()
    try:
        assert trim_heap() is True
        assert _rss_mb() < before - 100  # about 157 MB was freed
    finally:
        for block in kept:
            libc.free(block)


async def test_the_daemon_trims_on_a_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    third = asyncio.Event()
    loop = asyncio.get_running_loop()

    def trim(pad: int) -> int:
        trims.append(pad)
        if len(trims) == 3:
            loop.call_soon_threadsafe(third.set)
        return 1

    monkeypatch.setattr(health_memory, "_malloc_trim", trim)
    task = asyncio.create_task(trim_heap_every(0.01))
    await asyncio.wait_for(third.wait(), 10)
    task.cancel()
    assert trims[:3] == [0, 0, 0]


async def test_without_malloc_trim_nothing_is_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_memory, "_malloc_trim", None)
    assert trim_heap() is False
    await asyncio.wait_for(trim_heap_every(0.01), 1)  # returns at once: no loop to run


def test_the_bench_rig_runs_the_daemon_with_the_units_malloc_settings() -> None:
    """The soak's memory figures hold for the shipped unit only if the rig runs as it does."""
    unit = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "outdial.service"
    environment = dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in unit.read_text().splitlines()
        if line.startswith("Environment=MALLOC_")
    )
    assert environment == MALLOC_AS_SHIPPED


class _CallLike:
    """An object graph in a reference cycle holding audio, as an ended call's session is."""

    def __init__(self) -> None:
        self.audio = bytearray(4 * 2**20)
        self.stage = {"session": self}


async def test_an_ended_calls_cyclic_objects_are_freed_on_the_collectors_schedule() -> None:
    """With the interpreter's own collections out of the way (they come minutes apart under
    load), the daemon's collector frees a cycle within its interval."""
    was_enabled = gc.isenabled()
    gc.disable()
    collector = asyncio.create_task(collect_garbage_every(0.05))
    try:
        call = _CallLike()
        gone = weakref.ref(call)
        del call
        await asyncio.sleep(0.02)
        assert gone() is not None  # a cycle outlives its last reference
        async with asyncio.timeout(2):
            while gone() is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        collector.cancel()
        if was_enabled:
            gc.enable()
