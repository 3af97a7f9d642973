"""A call's pause of its lead: the lead blocked in its campaign and a `lead.paused` event for
the CRM, both or neither (store.leads.block_lead, store.outbox.enqueue_lead_paused).

The call path writes a pause at once; while the database is away a batch writer keeps it
(store/kept.py) and writes it when it is back. The event's idempotency key (reason and call)
says whether the pause landed: a pause whose event is queued already changes nothing, so a
retried or replayed one never blocks the lead again (after people unblocked it, say).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from store.batchwriter import RowKind
from store.leads import block_lead
from store.outbox import enqueue_lead_paused


@dataclass(frozen=True)
class LeadPause:
    call_id: str
    lead_id: int | None
    reason: str  # the lead's block_reason, and the event's
    at: datetime  # when the call asked: the event's occurred_at, even when written later

    def to_row(self) -> tuple[str, int | None, str, datetime]:
        return (self.call_id, self.lead_id, self.reason, self.at)


async def pause_leads(
    conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]], timeout_s: float | None = None
) -> int:
    """Write the pauses (`LeadPause.to_row()` tuples) in one transaction; returns how many
    were new."""
    new = 0
    async with asyncio.timeout(timeout_s), conn.transaction():
        for row in rows:
            pause = LeadPause(*row)
            queued = await enqueue_lead_paused(
                conn,
                call_id=pause.call_id,
                lead_id=pause.lead_id,
                reason=pause.reason,
                occurred_at=pause.at,
            )
            if queued is not None:
                await block_lead(conn, pause.lead_id, pause.reason)
                new += 1
    return new


async def pause_lead(conn: asyncpg.Connection, pause: LeadPause) -> None:
    await pause_leads(conn, [pause.to_row()])


LEAD_PAUSES = RowKind.of_columns(
    "lead_pauses", pause_leads, ("call_id", "lead_id", "reason", "at"), times=frozenset({"at"})
)
