"""Helpers that write campaigns, leads and finished calls straight into the test database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg


async def campaign(conn: asyncpg.Connection | asyncpg.Pool, name: str, script: str) -> int:
    return await conn.fetchval(
        "INSERT INTO campaigns (name, script_name) VALUES ($1, $2) RETURNING id", name, script
    )


async def lead(
    conn: asyncpg.Connection | asyncpg.Pool,
    campaign_id: int,
    phone: str,
    *,
    fields: dict[str, Any] | None = None,
    external_id: str | None = None,
) -> int:
    return await conn.fetchval(
        """INSERT INTO leads (campaign_id, phone_e164, timezone, fields, external_id)
           VALUES ($1, $2, 'UTC', $3, $4) RETURNING id""",
        campaign_id,
        phone,
        fields or {},
        external_id,
    )


async def call(
    conn: asyncpg.Connection | asyncpg.Pool,
    call_id: str,
    *,
    campaign_id: int | None,
    script: str,
    variant: str | None,
    started_at: datetime,
    duration_s: float | None,
    disposition: str | None,
    success: bool | None = None,
    outcome: str | None = None,
) -> None:
    """A call row; duration None means still in progress (no ended_at)."""
    ended_at = None if duration_s is None else started_at + timedelta(seconds=duration_s)
    await conn.execute(
        """INSERT INTO calls (call_id, campaign_id, script_name, variant, started_at, ended_at,
                              disposition, success, outcome)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        call_id,
        campaign_id,
        script,
        variant,
        started_at,
        ended_at,
        disposition,
        success,
        outcome,
    )


async def turn(
    conn: asyncpg.Connection | asyncpg.Pool, call_id: str, seq: int, intent: str
) -> None:
    await conn.execute(
        "INSERT INTO turns (call_id, seq, speaker, intent) VALUES ($1, $2, 'customer', $3)",
        call_id,
        seq,
        intent,
    )


async def compliance_event(
    conn: asyncpg.Connection | asyncpg.Pool, call_id: str, category: str
) -> None:
    await conn.execute(
        """INSERT INTO compliance_events (call_id, direction, category, action)
           VALUES ($1, 'customer', $2, 'flag')""",
        call_id,
        category,
    )


async def outcomes(
    conn: asyncpg.Connection | asyncpg.Pool,
    script: str,
    variant: str,
    *,
    completed: int,
    successes: int,
    started_at: datetime,
) -> None:
    """`completed` finished calls of one variant, the first `successes` of them successful."""
    await conn.execute(
        """INSERT INTO calls (call_id, script_name, variant, started_at, ended_at, disposition,
                              success)
           SELECT $1 || '-' || $2 || '-' || g || '-' || md5(random()::text), $1, $2, $3,
                  $3::timestamptz + interval '60 seconds', 'completed', g <= $4
           FROM generate_series(1, $5) AS g""",
        script,
        variant,
        started_at,
        successes,
        completed,
    )
