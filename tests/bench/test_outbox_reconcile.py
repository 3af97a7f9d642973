"""The chaos run's outbox reconciliation (bench/_crm.py) finds what is missing, undelivered,
redelivered or sent under a wrong key: real PostgreSQL, the daemon's own webhook sender, a
real local receiver."""

from __future__ import annotations

import dataclasses

import asyncpg

from bench._crm import CrmReceiver, reconcile_outbox, send_the_rest
from store.outbox import enqueue_outcome
from tests.dialer.helpers import add_leads, make_campaign


async def _ended_attempts(pool: asyncpg.Pool, *call_ids: str) -> int:
    campaign = await make_campaign(pool, "spring")
    await add_leads(pool, campaign.id, ["+15550001111"])
    lead_id: int = await pool.fetchval("SELECT id FROM leads")
    for call_id in call_ids:
        await pool.execute(
            """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner, ended_at,
                                          disposition)
               VALUES ($1, $2, $3, 'pjsip', 'd1', now(), 'completed')""",
            call_id,
            lead_id,
            campaign.id,
        )
    return lead_id


async def test_the_reconciliation_counts_each_kind_of_mismatch(db_pool: asyncpg.Pool) -> None:
    lead_id = await _ended_attempts(db_pool, "call-a", "call-b")
    async with db_pool.acquire() as conn:  # call-b ended without its event
        await enqueue_outcome(conn, call_id="call-a", lead_id=lead_id, disposition="completed")
    receiver = CrmReceiver(refuse_every=2)
    await receiver.start()
    try:
        nothing_sent = await reconcile_outbox(db_pool, receiver)
        assert nothing_sent["lost_detail"] == {
            "outbox_events_missing": 1,
            "outbox_events_undelivered": 2,  # one event, two URLs
        }
        assert await send_the_rest(db_pool, receiver) == 0
    finally:
        await receiver.stop()
    sent = await reconcile_outbox(db_pool, receiver)
    assert sent["lost_detail"] == {"outbox_events_missing": 1, "outbox_events_undelivered": 0}
    assert sent["duplicated_detail"] == {
        "outbox_events_twice": 0,
        "outbox_deliveries_unmatched": 0,
    }
    assert sent["outbox"]["refused"] >= 1 and sent["outbox"]["redelivered"] == 0
    assert sent["outbox"]["examples"]["missing"] == ["call-b"]

    # The same event accepted again (a crash before the delivery was committed), and one
    # accepted under a key that is not its body's.
    delivered = next(r for r in receiver.requests if r.accepted)
    receiver.requests += [delivered, dataclasses.replace(delivered, body_key="call.outcome:x")]
    again = await reconcile_outbox(db_pool, receiver)
    assert again["outbox"]["redelivered"] == 1
    assert again["duplicated_detail"]["outbox_deliveries_unmatched"] == 1
