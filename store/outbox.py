"""The CRM outbox: outcome events written with the call's disposition, delivered later.

`enqueue_outcome` runs inside the disposition's transaction, so an outcome is recorded exactly
when the disposition is. The sender (crm.webhooks) claims due events with the functions
below; a lead's events go out strictly in the order they were written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from store.db import execute_count

OUTCOME_EVENT = "call.outcome"
PAUSED_EVENT = "lead.paused"


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    idempotency_key: str
    lead_id: int | None
    call_id: str | None
    event_type: str
    payload: dict[str, Any]
    attempts: int


async def enqueue_outcome(
    conn: asyncpg.Connection,
    *,
    call_id: str,
    lead_id: int | None,
    disposition: str,
    outcome: str | None = None,
    success: bool | None = None,
    details: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> int | None:
    """Queue the call's outcome event; returns its outbox id, or None if it was already queued.

    Call it on the connection (and inside the transaction) that writes the disposition. The
    idempotency key is derived from the call id, so a repeated disposition adds no second event.
    `extra` adds top-level keys: the call's grade, its follow-up, the lead's churn risk.
    """
    if not call_id:
        raise ValueError("an outcome event needs the call id")
    key = f"{OUTCOME_EVENT}:{call_id}"
    payload = {
        "event": OUTCOME_EVENT,
        "idempotency_key": key,
        "call_id": call_id,
        "lead_id": lead_id,
        "disposition": disposition,
        "outcome": outcome,
        "success": success,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "details": dict(details or {}),
        **dict(extra or {}),
    }
    return await _insert(conn, key, lead_id, call_id, OUTCOME_EVENT, payload)


async def enqueue_lead_paused(
    conn: asyncpg.Connection,
    *,
    call_id: str,
    lead_id: int | None,
    reason: str,
    occurred_at: datetime,
) -> int | None:
    """Queue a `lead.paused` event: the call stopped the lead's calls in its campaign (a
    dispute, for one); the CRM decides what people do next. Once per call and reason: returns
    its outbox id, or None if it was already queued."""
    key = f"{PAUSED_EVENT}:{reason}:{call_id}"
    payload = {
        "event": PAUSED_EVENT,
        "idempotency_key": key,
        "call_id": call_id,
        "lead_id": lead_id,
        "reason": reason,
        "occurred_at": occurred_at.isoformat(),  # when the call asked, even if written later
    }
    return await _insert(conn, key, lead_id, call_id, PAUSED_EVENT, payload)


async def _insert(
    conn: asyncpg.Connection,
    key: str,
    lead_id: int | None,
    call_id: str,
    event_type: str,
    payload: dict[str, Any],
) -> int | None:
    # The CRM knows its leads by external id and campaign name; no phone number goes out.
    return await conn.fetchval(
        """INSERT INTO outbox (idempotency_key, lead_id, call_id, event_type, payload)
           SELECT $1, $2, $3, $4, $5::jsonb || jsonb_build_object(
                      'external_id', l.external_id, 'campaign', c.name)
           FROM (SELECT 1) AS one
           LEFT JOIN leads l ON l.id = $2
           LEFT JOIN campaigns c ON c.id = l.campaign_id
           ON CONFLICT (idempotency_key) DO NOTHING
           RETURNING id""",
        key,
        lead_id,
        call_id,
        event_type,
        payload,
    )


async def claim_due(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[OutboxEvent]:
    """Due events that are first in line for their lead, leased to this sender for `lease_s`.

    The lease (a later next_attempt_at) keeps a second sender off them; if this one dies, they
    become due again when it ends.
    """
    rows = await conn.fetch(
        """WITH due AS (
               SELECT o.id FROM outbox o
               WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
                 AND NOT EXISTS (SELECT 1 FROM outbox e
                                 WHERE e.lead_id = o.lead_id AND e.delivered_at IS NULL
                                   AND e.id < o.id)
               ORDER BY o.id
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
           UPDATE outbox o SET next_attempt_at = now() + make_interval(secs => $2)
           FROM due WHERE o.id = due.id
           RETURNING o.id, o.idempotency_key, o.lead_id, o.call_id, o.event_type, o.payload,
                     o.attempts""",
        limit,
        lease_s,
    )
    return sorted((OutboxEvent(**dict(r)) for r in rows), key=lambda e: e.id)


async def delivered_targets(conn: asyncpg.Connection, outbox_id: int) -> set[str]:
    rows = await conn.fetch("SELECT target FROM outbox_deliveries WHERE outbox_id = $1", outbox_id)
    return {r["target"] for r in rows}


async def record_target_delivered(conn: asyncpg.Connection, outbox_id: int, target: str) -> None:
    await conn.execute(
        "INSERT INTO outbox_deliveries (outbox_id, target) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        outbox_id,
        target,
    )


async def mark_delivered(conn: asyncpg.Connection, outbox_id: int) -> None:
    await conn.execute(
        """UPDATE outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
           WHERE id = $1""",
        outbox_id,
    )


async def mark_failed(
    conn: asyncpg.Connection, outbox_id: int, error: str, retry_in_s: float
) -> None:
    await conn.execute(
        """UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                             next_attempt_at = now() + make_interval(secs => $3)
           WHERE id = $1""",
        outbox_id,
        error[:500],
        retry_in_s,
    )


async def pending_count(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NULL"))


ERASED_EVENT = "lead.erased"


async def delete_events_of(
    conn: asyncpg.Connection, lead_ids: list[int], call_ids: list[str]
) -> int:
    """Erasure: the person's events, sent or not, go."""
    return await execute_count(
        conn,
        """DELETE FROM outbox
                   WHERE lead_id = ANY($1::bigint[]) OR call_id = ANY($2::text[])""",
        lead_ids,
        call_ids,
    )


async def enqueue_erased(conn: asyncpg.Connection, lead_ids: list[int]) -> None:
    """A `lead.erased` event per lead (GDPR art. 19: recipients hear of the erasure). It names
    the lead by outdial's id, which the CRM got when it wrote the lead: nothing of the person."""
    await conn.execute(
        """INSERT INTO outbox (idempotency_key, lead_id, event_type, payload)
           SELECT $2 || ':' || l.id, l.id, $2,
                  jsonb_build_object('event', $2, 'idempotency_key', $2 || ':' || l.id,
                                     'lead_id', l.id, 'campaign', c.name,
                                     'occurred_at', now())
           FROM leads l JOIN campaigns c ON c.id = l.campaign_id
           WHERE l.id = ANY($1::bigint[])
           ON CONFLICT (idempotency_key) DO NOTHING""",
        lead_ids,
        ERASED_EVENT,
    )
