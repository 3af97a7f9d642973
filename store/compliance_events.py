"""`compliance_events`: what the compliance checks found and did, on a call or for a lead, kept
as proof (the one writer of the table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from store.db import execute_count


@dataclass(frozen=True)
class CallComplianceEvent:
    """A finding during a call: a sensitive word heard or about to be said, an opt-out..."""

    call_id: str
    lead_id: int | None
    campaign_id: int | None
    direction: str
    category: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


async def record_call_event(
    conn: asyncpg.Connection | asyncpg.Pool, event: CallComplianceEvent
) -> None:
    await conn.execute(
        """INSERT INTO compliance_events (call_id, lead_id, campaign_id, direction, category,
                                          action, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        event.call_id,
        event.lead_id,
        event.campaign_id,
        event.direction,
        event.category,
        event.action,
        event.detail,
    )


@dataclass(frozen=True)
class DialerBlock:
    """The dialer's gates stopped a lead: `blocked` for good or `postponed`."""

    lead_id: int
    campaign_id: int
    category: str
    action: str
    detail: dict[str, Any]


async def record_dialer_blocks(
    conn: asyncpg.Connection, blocks: Sequence[DialerBlock], at: datetime
) -> None:
    await conn.executemany(
        """INSERT INTO compliance_events (lead_id, campaign_id, direction, category, action,
                                          detail, created_at)
           VALUES ($1, $2, 'dialer', $3, $4, $5, $6)""",
        [(b.lead_id, b.campaign_id, b.category, b.action, b.detail, at) for b in blocks],
    )


async def scrub_events_of(
    conn: asyncpg.Connection, lead_ids: list[int], call_ids: list[str]
) -> int:
    """Erasure: the person's events stay counted, without their detail."""
    return await execute_count(
        conn,
        """UPDATE compliance_events SET detail = '{}'::jsonb
                   WHERE lead_id = ANY($1::bigint[]) OR call_id = ANY($2::text[])""",
        lead_ids,
        call_ids,
    )
