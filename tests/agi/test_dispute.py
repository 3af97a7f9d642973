"""A dispute in a collections script stops the lead's calls and tells the CRM (real PostgreSQL).

The engine side (the `dispute` compliance hit and `PauseLead`) is in tests/dialog/test_engine.py;
here the call store carries it out while the dialer holds the lead's lease, and the dialer's
end of the attempt must not put the lead back in line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from agi.callstore import CallStore
from agi.session import CallContext
from dialer.dispositions import Disposition, NextStep
from dialer.leasing import AttemptResult, finish_attempts
from store.kept import KeptWrites
from tests.dialer.helpers import add_leads, make_campaign

OWNER = "dialer-1"


def _store(pool: asyncpg.Pool, spool: Path) -> CallStore:
    # The writers are never started: the database stays up, so nothing is kept.
    return CallStore(pool, KeptWrites.create(pool, spool))


async def _leased_lead_on_a_call(pool: asyncpg.Pool, call_id: str) -> CallContext:
    campaign = await make_campaign(pool, "collections")
    await add_leads(pool, campaign.id, ["+15550001111"])
    lead_id = await pool.fetchval(
        "UPDATE leads SET status = 'leased', lease_owner = $1 RETURNING id", OWNER
    )
    await pool.execute(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
           VALUES ($1, $2, $3, 'pjsip', $4)""",
        call_id,
        lead_id,
        campaign.id,
        OWNER,
    )
    return CallContext(call_id, "collections", campaign.id, "s", lead_id, None, "UTC", {})


async def test_a_dispute_blocks_the_lead_and_queues_a_crm_event(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    context = await _leased_lead_on_a_call(db_pool, "call-dispute")
    await _store(db_pool, tmp_path).pause_lead(context, "dispute")
    # The call goes on (a hand-over to people), then the dialer ends the attempt as it would
    # any answered call that is to be tried again.
    retry = NextStep(done=False, retry_at=datetime.now(UTC))
    result = AttemptResult("call-dispute", Disposition.TRANSFERRED, retry, datetime.now(UTC))
    async with db_pool.acquire() as conn:
        assert await finish_attempts(conn, OWNER, [result]) == 1
    lead = await db_pool.fetchrow("SELECT status, block_reason, lease_owner FROM leads")
    assert dict(lead) == {"status": "blocked", "block_reason": "dispute", "lease_owner": None}
    events = await db_pool.fetch("SELECT event_type, payload FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["lead.paused", "call.outcome"]
    paused = events[0]["payload"]
    assert (paused["reason"], paused["call_id"], paused["campaign"]) == (
        "dispute",
        "call-dispute",
        "collections",
    )
    assert "+1555" not in str(paused)


async def test_a_second_dispute_on_the_same_call_queues_no_second_event(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    context = await _leased_lead_on_a_call(db_pool, "call-twice")
    store = _store(db_pool, tmp_path)
    await store.pause_lead(context, "dispute")
    await store.pause_lead(context, "dispute")
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 1
