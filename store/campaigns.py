"""Campaigns in PostgreSQL: the `campaigns` table's rows and their status changes.

Rows come back as `CampaignRow` with `settings` as stored (JSON); the dialer validates them
into its own settings model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import asyncpg

from store.leads import find_campaign


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    script_name: str
    status: str
    settings: Any  # the stored JSON (a dict, or None)
    paused_reason: str | None
    paused_detail: str | None


def _row(record: asyncpg.Record) -> CampaignRow:
    return CampaignRow(**{f.name: record[f.name] for f in fields(CampaignRow)})


def _row_or_none(record: asyncpg.Record | None) -> CampaignRow | None:
    return None if record is None else _row(record)


async def insert_campaign(
    conn: asyncpg.Connection, name: str, script_name: str, settings: dict[str, Any]
) -> CampaignRow | None:
    """The new campaign, or None when one of that name exists."""
    row = await conn.fetchrow(
        """INSERT INTO campaigns (name, script_name, settings) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO NOTHING RETURNING *""",
        name,
        script_name,
        settings,
    )
    return _row_or_none(row)


async def campaign_by_name(conn: asyncpg.Connection, name: str) -> CampaignRow | None:
    return _row_or_none(await conn.fetchrow("SELECT * FROM campaigns WHERE name = $1", name))


async def campaign_rows(
    conn: asyncpg.Connection, *, active_only: bool, archived: bool
) -> list[CampaignRow]:
    rows = await conn.fetch(
        """SELECT * FROM campaigns
            WHERE (NOT $1 OR status = 'active') AND ($2 OR status <> 'archived')
            ORDER BY id""",
        active_only,
        archived,
    )
    return [_row(r) for r in rows]


async def update_status(
    conn: asyncpg.Connection,
    name: str,
    status: str,
    paused_reason: str | None,
    paused_detail: str | None,
) -> CampaignRow | None:
    """The campaign with its new status, or None when there is no campaign of that name."""
    row = await conn.fetchrow(
        """UPDATE campaigns SET status = $2, paused_reason = $3, paused_detail = $4,
                                updated_at = now()
            WHERE name = $1 RETURNING *""",
        name,
        status,
        paused_reason,
        paused_detail,
    )
    return _row_or_none(row)


async def pause_if_active(
    conn: asyncpg.Connection, campaign_id: int, reason: str, detail: str
) -> bool:
    paused = await conn.fetchval(
        """UPDATE campaigns SET status = 'paused', paused_reason = $2, paused_detail = $3,
                                updated_at = now()
            WHERE id = $1 AND status = 'active' RETURNING true""",
        campaign_id,
        reason,
        detail,
    )
    return bool(paused)


async def restate_pause_detail(
    conn: asyncpg.Connection, campaign_id: int, reason: str, detail: str
) -> bool:
    changed = await conn.fetchval(
        """UPDATE campaigns SET paused_detail = $3, updated_at = now()
            WHERE id = $1 AND status = 'paused' AND paused_reason = $2
              AND paused_detail IS DISTINCT FROM $3 RETURNING true""",
        campaign_id,
        reason,
        detail,
    )
    return bool(changed)


async def paused_for_reason(conn: asyncpg.Connection, reason: str) -> list[CampaignRow]:
    rows = await conn.fetch(
        "SELECT * FROM campaigns WHERE status = 'paused' AND paused_reason = $1 ORDER BY id",
        reason,
    )
    return [_row(r) for r in rows]


async def resume_if_paused_for(conn: asyncpg.Connection, campaign_id: int, reason: str) -> bool:
    resumed = await conn.fetchval(
        """UPDATE campaigns SET status = 'active', paused_reason = NULL, paused_detail = NULL,
                                updated_at = now()
            WHERE id = $1 AND status = 'paused' AND paused_reason = $2 RETURNING true""",
        campaign_id,
        reason,
    )
    return bool(resumed)


@dataclass(frozen=True)
class UnusedDelete:
    """What `delete_if_unused` found: calls placed (then nothing was deleted), else the leads
    deleted with the campaign."""

    calls: int
    leads: int


async def delete_if_unused(conn: asyncpg.Connection, campaign_id: int) -> UnusedDelete:
    """Delete a campaign (its leads go with it) only if it never placed a call."""
    async with conn.transaction():
        calls = await conn.fetchval(
            "SELECT count(*) FROM call_attempts WHERE campaign_id = $1", campaign_id
        )
        if calls:
            return UnusedDelete(calls=int(calls), leads=0)
        leads = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE campaign_id = $1", campaign_id
        )
        await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)
    return UnusedDelete(calls=0, leads=int(leads))


async def campaign_exists(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM campaigns WHERE name = $1)", name)
    )


# --- scripts of campaigns


async def script_of_campaign(
    conn: asyncpg.Connection | asyncpg.Pool, campaign_id: int
) -> str | None:
    """The name of the campaign's script; None for an unknown campaign."""
    return await conn.fetchval("SELECT script_name FROM campaigns WHERE id = $1", campaign_id)


async def script_of_campaign_named(
    conn: asyncpg.Connection | asyncpg.Pool, name: str
) -> str | None:
    """The name of the script of the campaign called `name`; None for an unknown campaign."""
    return await conn.fetchval("SELECT script_name FROM campaigns WHERE name = $1", name)


async def ensure_campaign(conn: asyncpg.Connection, name: str, script_name: str) -> int:
    """The campaign's id, creating it (active, with `script_name`) when it does not exist."""
    campaign_id = await conn.fetchval(
        """INSERT INTO campaigns (name, script_name) VALUES ($1, $2)
           ON CONFLICT (name) DO NOTHING RETURNING id""",
        name,
        script_name,
    )
    return campaign_id if campaign_id is not None else await find_campaign(conn, name)
