"""Group commit for single-lead PUTs: the upserts of concurrent requests in one statement.

One statement and one commit per request cost PostgreSQL and this process more than the lead
itself (issue 8); written together, many leads share them. Requests queue their lead; one
writer at a time takes what is queued and writes it, so a quiet API still writes each lead at
once and a busy one writes larger batches. Each request still gets its own answer: a batch
holds each lead (campaign and external id) and each number at most once, and when PostgreSQL
refuses a batch (a number taken by another lead, a deadlock) nothing of it was written and its
leads are written one by one, each with the answer it would have had alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import asyncpg

from api.tokens import Token
from store.leads import AuditedLead, LeadValues, upsert_audited_leads

# Rows a statement holds locks on at once; a busy API fills batches of its concurrency.
MAX_BATCH = 64


@dataclass(frozen=True)
class LeadWrite:
    """One PUT's lead, normalised, with who wrote it and the audit row's target."""

    campaign: str
    values: LeadValues
    token: Token
    target: str


_Queued = tuple[LeadWrite, asyncio.Future[asyncpg.Record | None]]


class LeadWrites:
    """The single-lead upserts of one API server."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: deque[_Queued] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def upsert(self, write: LeadWrite) -> asyncpg.Record | None:
        """The lead's row as written plus `inserted`; None when the campaign does not exist.
        Raises asyncpg.UniqueViolationError when another lead of the campaign has the number.
        """
        future: asyncio.Future[asyncpg.Record | None] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        return await future

    async def _write_queued(self) -> None:
        batch: list[_Queued] = []
        try:
            while self._queue:
                batch = self._next_batch()
                await self._write(batch)
        except asyncio.CancelledError:
            # Shutting down: no request may wait for a writer that is gone.
            for _, future in [*batch, *self._queue]:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._writer = None

    def _next_batch(self) -> list[_Queued]:
        """Queued leads in arrival order, each lead and each number at most once.

        A lead held back keeps its place, and so do the leads after it with the same
        external id or number: two PUTs of one lead are written in the order they came.
        """
        batch: list[_Queued] = []
        held: deque[_Queued] = deque()
        seen: set[tuple[str, str, str | None]] = set()
        while self._queue and len(batch) < MAX_BATCH:
            write, future = queued = self._queue.popleft()
            if future.done():  # the request was cancelled while it waited
                continue
            keys = {
                ("lead", write.campaign, write.values[1]),
                ("phone", write.campaign, write.values[0]),
            }
            if keys & seen:
                held.append(queued)
            else:
                batch.append(queued)
            seen |= keys
        self._queue.extendleft(reversed(held))
        return batch

    async def _write(self, batch: list[_Queued]) -> None:
        if len(batch) == 1:
            await self._write_one(*batch[0])
            return
        try:
            written = await upsert_audited_leads(self._pool, [_audited(w) for w, _ in batch])
        except asyncpg.PostgresError:
            # The statement wrote nothing: each lead alone, in arrival order, gets the answer
            # it would have had without the others.
            for write, future in batch:
                await self._write_one(write, future)
            return
        except Exception as exc:  # the connection failed: every request of the batch says so
            for _, future in batch:
                _settle(future, exc)
            return
        for n, (_, future) in enumerate(batch, start=1):
            _settle(future, written.get(n))

    async def _write_one(
        self, write: LeadWrite, future: asyncio.Future[asyncpg.Record | None]
    ) -> None:
        try:
            written = await upsert_audited_leads(self._pool, [_audited(write)])
        except Exception as exc:
            _settle(future, exc)
        else:
            _settle(future, written.get(1))


def _audited(write: LeadWrite) -> AuditedLead:
    token = write.token
    return AuditedLead(write.campaign, write.values, token.id, token.name, write.target)


def _settle(
    future: asyncio.Future[asyncpg.Record | None], outcome: asyncpg.Record | None | Exception
) -> None:
    if future.done():  # the request was cancelled meanwhile; its lead is written all the same
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
