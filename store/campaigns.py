"""Campaigns: `campaigns`."""

from __future__ import annotations

import asyncpg

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
