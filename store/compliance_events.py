"""`compliance_events`: what the compliance checks found and did, on a call or for a lead, kept
as proof (the one writer of the table).

A call's events are keyed `<call_id>:<n>` (migration 150): written at once, or kept by a batch
writer while the database is away (store/kept.py), they are stored once however often a write
is retried or replayed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from store.batchwriter import RowKind, copy_into
from store.copyinsert import CopyTarget, copy_insert_ignore
from store.db import execute_count


@dataclass(frozen=True)
class CallComplianceEvent:
    """A finding during a call: a sensitive word heard or about to be said, an opt-out..."""

    call_id: str
    seq: int  # the call's n-th event, from 1: with the call id, the event's key
    lead_id: int | None
    campaign_id: int | None
    direction: str
    category: str
    action: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.call_id}:{self.seq}"

    def to_row(self) -> tuple[Any, ...]:
        """The COPY tuple in `CALL_EVENTS_TARGET.columns` order; `detail` as JSON text."""
        return (
            self.key, self.call_id, self.lead_id, self.campaign_id, self.direction,
            self.category, self.action, json.dumps(self.detail, ensure_ascii=False), self.at,
        )  # fmt: skip


CALL_EVENTS_TARGET = CopyTarget(
    table="compliance_events",
    columns=(
        "event_key", "call_id", "lead_id", "campaign_id", "direction", "category", "action",
        "detail", "created_at",
    ),
    json_columns=frozenset({"detail"}),
)  # fmt: skip


CALL_EVENTS = RowKind.of_columns(
    "compliance_events",
    copy_into(CALL_EVENTS_TARGET),
    CALL_EVENTS_TARGET.columns,
    times=frozenset({"created_at"}),
)


async def record_call_event(conn: asyncpg.Connection, event: CallComplianceEvent) -> None:
    """Store the event unless it is stored already (its key)."""
    await copy_insert_ignore(conn, CALL_EVENTS_TARGET, [event.to_row()])


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
