"""A background job that runs one pass every `interval_s` until stopped (the daemon owns it).

A pass that fails on the database (an outage, a restart) is logged and the next one tries
again; stopping cancels a pass in progress, whose statements are each atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from store.db import DATABASE_ERRORS

log = logging.getLogger(__name__)


class PeriodicJob:
    def __init__(self, name: str, interval_s: float, run_once: Callable[[], Awaitable[None]]):
        self.name = name
        self._interval_s = interval_s
        self._run_once = run_once
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._run_once()
            except DATABASE_ERRORS as exc:
                log.warning("%s pass failed: %s", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
