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

# (phone_e164, external_id, timezone, fields JSON, priority, consent)
Normalised = tuple[str, str | None, str, str, int, bool]

# Rows a statement holds locks on at once; a busy API fills batches of its concurrency.
MAX_BATCH = 64

# `n` numbers the batch's leads; a lead of a campaign that does not exist has no row.
_UPSERT_BATCH = """
WITH input AS (
    SELECT t.*, c.id AS campaign_id
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                $7::bool[], $8::bigint[], $9::text[], $10::text[]) WITH ORDINALITY
         AS t(campaign, external_id, phone, tz, fields, priority, consent, token_id,
              token_name, target, n)
    JOIN campaigns c ON c.name = t.campaign
), up AS (
    INSERT INTO leads (campaign_id, external_id, phone_e164, timezone, fields, priority, consent)
    SELECT campaign_id, external_id, phone, tz, fields::jsonb, priority, consent
    FROM input ORDER BY n
    ON CONFLICT (campaign_id, external_id) WHERE external_id IS NOT NULL DO UPDATE
    SET phone_e164 = EXCLUDED.phone_e164, timezone = EXCLUDED.timezone,
        fields = EXCLUDED.fields, priority = EXCLUDED.priority, consent = EXCLUDED.consent,
        updated_at = now()
    RETURNING *, (xmax = 0) AS inserted
), logged AS (
    INSERT INTO api_audit (token_id, token_name, action, target)
    SELECT i.token_id, i.token_name,
           CASE WHEN up.inserted THEN 'lead.create' ELSE 'lead.update' END, i.target
    FROM up JOIN input i USING (campaign_id, external_id)
)
SELECT i.n, up.* FROM up JOIN input i USING (campaign_id, external_id)
"""


@dataclass(frozen=True)
class LeadWrite:
    """One PUT's lead, normalised, with who wrote it and the audit row's target."""

    campaign: str
    values: Normalised
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
            rows = await self._pool.fetch(_UPSERT_BATCH, *_columns([w for w, _ in batch]))
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
        written = {row["n"]: row for row in rows}
        for n, (_, future) in enumerate(batch, start=1):
            _settle(future, written.get(n))

    async def _write_one(
        self, write: LeadWrite, future: asyncio.Future[asyncpg.Record | None]
    ) -> None:
        try:
            row = await self._pool.fetchrow(_UPSERT_BATCH, *_columns([write]))
        except Exception as exc:
            _settle(future, exc)
        else:
            _settle(future, row)


def _columns(writes: list[LeadWrite]) -> list[list[object]]:
    """The batch as the statement's arrays, one per parameter."""
    values = list(zip(*(w.values for w in writes), strict=True))
    return [
        [w.campaign for w in writes],
        list(values[1]),  # external_id
        list(values[0]),  # phone
        *(list(column) for column in values[2:]),
        [w.token.id for w in writes],
        [w.token.name for w in writes],
        [w.target for w in writes],
    ]


def _settle(
    future: asyncio.Future[asyncpg.Record | None], outcome: asyncpg.Record | None | Exception
) -> None:
    if future.done():  # the request was cancelled meanwhile; its lead is written all the same
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
