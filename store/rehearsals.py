"""Rehearsal calls (`outdial script test --voice`): a lead and its attempt, as the dialer
leaves them before Originate, and what the call left behind, read back to check a case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from store.calls import insert_rehearsal_attempt
from store.leads import insert_rehearsal_lead


@dataclass(frozen=True, slots=True)
class HeardTurn:
    speaker: str  # bot | customer | system
    node: str | None
    text: str
    intent: str | None
    dtmf: str | None
    entity_values: tuple[str, ...]  # of a customer turn, as strings


@dataclass(frozen=True, slots=True)
class RehearsedCall:
    disposition: str | None
    outcome: str | None
    success: bool | None
    grade: str | None
    transfer_target: str | None
    turns: list[HeardTurn]
    compliance: set[str]  # categories recorded
    paused: bool  # the lead's calls were stopped (a dispute)


async def add_rehearsal_call(
    conn: asyncpg.Connection, campaign_id: int, call_id: str, phone: str, fields: dict[str, Any]
) -> None:
    """A lead of the campaign with an attempt `call_id`, ready for the call to identify."""
    lead = await insert_rehearsal_lead(conn, campaign_id, phone, fields)
    await insert_rehearsal_attempt(conn, call_id, lead, campaign_id)


async def rehearsed_call(pool: asyncpg.Pool, call_id: str) -> RehearsedCall | None:
    """The recorded call, its turns in order and its compliance events; None if not recorded."""
    call = await pool.fetchrow(
        """SELECT c.disposition, c.outcome, c.success, c.grade, c.transfer_target,
                  l.block_reason = 'dispute' AS paused
             FROM calls c JOIN leads l ON l.id = c.lead_id
            WHERE c.call_id = $1""",
        call_id,
    )
    if call is None:
        return None
    turns = await pool.fetch(
        "SELECT speaker, node, text, intent, dtmf, entities FROM turns WHERE call_id = $1 "
        "ORDER BY seq",
        call_id,
    )
    categories = await pool.fetch(
        "SELECT DISTINCT category FROM compliance_events WHERE call_id = $1", call_id
    )
    return RehearsedCall(
        call["disposition"],
        call["outcome"],
        call["success"],
        call["grade"],
        call["transfer_target"],
        [
            HeardTurn(
                t["speaker"],
                t["node"],
                t["text"],
                t["intent"],
                t["dtmf"],
                tuple(str(e.get("value")) for e in (t["entities"] or {}).get("items", [])),
            )  # fmt: skip
            for t in turns
        ],
        {r["category"] for r in categories},
        bool(call["paused"]),
    )
