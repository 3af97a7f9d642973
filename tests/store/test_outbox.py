"""The outbox holds one event per call and kind, whatever writes it again (real PostgreSQL).

The guarantee is the schema's: `outbox.idempotency_key` is UNIQUE (migration 001), the key is
derived from the call id, and the insert is `ON CONFLICT DO NOTHING`. So neither a repeated
write nor two racing transactions nor a retried end of the attempt can add a second row.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from dialer.dispositions import Disposition, NextStep
from dialer.leasing import AttemptResult, finish_attempts, reclaim_expired
from store.outbox import enqueue_outcome
from tests.dialer.helpers import add_leads, make_campaign

OWNER = "dialer-1"


async def _outbox_rows(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT idempotency_key, call_id FROM outbox ORDER BY id")
    return [(r["idempotency_key"], r["call_id"]) for r in rows]


async def _lead_on_a_call(pool: asyncpg.Pool, call_id: str) -> int:
    """A leased lead whose attempt `call_id` is open (its lease expired an hour ago)."""
    campaign = await make_campaign(pool, "spring")
    await add_leads(pool, campaign.id, ["+15550001111"])
    lead_id: int = await pool.fetchval(
        """UPDATE leads SET status = 'leased', lease_owner = $1,
                            lease_expires_at = now() - interval '1 hour'
           RETURNING id""",
        OWNER,
    )
    await pool.execute(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
           VALUES ($1, $2, $3, 'pjsip', $4)""",
        call_id,
        lead_id,
        campaign.id,
        OWNER,
    )
    return lead_id


async def _until_a_writer_waits_on_a_lock(pool: asyncpg.Pool) -> None:
    for _ in range(500):
        waiting = await pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO outbox%'"""
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the second writer never waited on the first one's row")


async def test_two_racing_transactions_write_one_event(db_pool: asyncpg.Pool) -> None:
    """The second writer waits on the first's uncommitted row, then adds nothing."""
    first_inserted = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> int | None:
        async with db_pool.acquire() as conn, conn.transaction():
            outbox_id = await enqueue_outcome(
                conn, call_id="race-1", lead_id=None, disposition="completed"
            )
            first_inserted.set()
            await release_first.wait()
            return outbox_id

    async def second() -> int | None:
        await first_inserted.wait()
        async with db_pool.acquire() as conn, conn.transaction():
            return await enqueue_outcome(conn, call_id="race-1", lead_id=None, disposition="failed")

    first_task = asyncio.create_task(first())
    second_task = asyncio.create_task(second())
    await first_inserted.wait()
    # The second writer is blocked on the unique index until the first commits.
    await _until_a_writer_waits_on_a_lock(db_pool)
    assert not second_task.done()
    release_first.set()
    assert await first_task is not None
    assert await second_task is None
    assert await _outbox_rows(db_pool) == [("call.outcome:race-1", "race-1")]


async def test_the_schema_refuses_a_second_row_for_one_key(db_pool: asyncpg.Pool) -> None:
    """Without the ON CONFLICT clause (a writer that forgot it) the insert fails."""
    async with db_pool.acquire() as conn:
        await enqueue_outcome(conn, call_id="c-1", lead_id=None, disposition="completed")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO outbox (idempotency_key, call_id, event_type, payload)
                   VALUES ('call.outcome:c-1', 'c-1', 'call.outcome', '{}')"""
            )
    assert len(await _outbox_rows(db_pool)) == 1


async def test_a_retried_or_late_end_of_the_attempt_adds_no_event(db_pool: asyncpg.Pool) -> None:
    """The lease expires (the attempt ends as an error, one event); then the dialer's own end
    of the same attempt arrives, and is retried: neither adds an event."""
    lead_id = await _lead_on_a_call(db_pool, "call-1")
    now = datetime.now(UTC)
    async with db_pool.acquire() as conn:
        assert await reclaim_expired(conn, now) == [lead_id]
        late = AttemptResult("call-1", Disposition.COMPLETED, NextStep(True), now)
        for _ in range(2):
            assert await finish_attempts(conn, OWNER, [late]) == 0
    assert await _outbox_rows(db_pool) == [("call.outcome:call-1", "call-1")]
    event = await db_pool.fetchrow("SELECT payload FROM outbox")
    assert event["payload"]["disposition"] == "error"


async def test_an_end_written_twice_in_one_batch_adds_one_event(db_pool: asyncpg.Pool) -> None:
    await _lead_on_a_call(db_pool, "call-2")
    ended_at = datetime.now(UTC) + timedelta(seconds=1)
    result = AttemptResult("call-2", Disposition.COMPLETED, NextStep(True), ended_at)
    async with db_pool.acquire() as conn:
        assert await finish_attempts(conn, OWNER, [result, result]) == 1
        assert await finish_attempts(conn, OWNER, [result]) == 0
    assert await _outbox_rows(db_pool) == [("call.outcome:call-2", "call-2")]
