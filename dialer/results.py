"""Settled calls' results, written to the database in batches, retried until they are in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from dialer.leasing import AttemptResult, OutcomeAdvisor, finish_attempts
from dialer.tracking import LiveCall
from store.db import DATABASE_ERRORS
from store.outage import OutageLog

log = logging.getLogger(__name__)

Settled = tuple[AttemptResult, LiveCall]


class ResultWriter:
    """Results queue here as calls settle; `run()` writes them until `close()` and then
    whatever is left. Nothing is dropped: a failed write is retried every `retry_s`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        owner: str,
        advisor: OutcomeAdvisor | None,
        retry_s: float,
        on_written: Callable[[AttemptResult, LiveCall], None],
    ) -> None:
        self._pool = pool
        self._owner = owner
        self._advisor = advisor  # the follow-up after each call (crm/followup.py)
        self._retry_s = retry_s
        self._on_written = on_written
        self._pending: list[Settled] = []
        self._ready = asyncio.Event()
        self._closed = False
        self._log = OutageLog(log)
        self.written = 0

    def add(self, result: AttemptResult, call: LiveCall) -> None:
        self._pending.append((result, call))
        self._ready.set()

    def close(self) -> None:
        """No more results come: `run()` writes what is queued and returns."""
        self._closed = True
        self._ready.set()

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._flush(batch)
            if self._closed and not self._pending:
                return

    async def _flush(self, batch: list[Settled]) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await finish_attempts(conn, self._owner, [r for r, _ in batch], self._advisor)
                self._log.succeeded()
                break
            except DATABASE_ERRORS as exc:
                self._log.failed("could not write %d call results (retrying): %s",
                                 len(batch), exc)  # fmt: skip
                await asyncio.sleep(self._retry_s)
        for result, call in batch:
            self.written += 1
            self._on_written(result, call)
