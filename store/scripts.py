"""Script versions in PostgreSQL: every distinct content of a script gets the next number."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def record_script_version(
    pool: asyncpg.Pool,
    name: str,
    source: str,
    content_hash: str,
    path: str | None,
    required_fields: Sequence[str] = (),
) -> int:
    """The version number of this content of script `name`, creating it when new; either way
    it becomes the version served now (the campaign's current script), with the lead fields
    it cannot run without."""
    async with pool.acquire() as conn, conn.transaction():
        # Serialises concurrent daemons registering the same script.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('script:' || $1))", name)
        script_id = await conn.fetchval(
            """INSERT INTO scripts (name) VALUES ($1)
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id""",
            name,
        )
        existing = await conn.fetchval(
            """UPDATE script_versions SET registered_at = now(), required_fields = $3
               WHERE script_id = $1 AND content_hash = $2 RETURNING version""",
            script_id,
            content_hash,
            list(required_fields),
        )
        if existing is not None:
            return int(existing)
        return int(
            await conn.fetchval(
                """INSERT INTO script_versions (script_id, version, content_hash, source, path,
                                                required_fields)
                   SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5
                     FROM script_versions WHERE script_id = $1
                   RETURNING version""",
                script_id,
                content_hash,
                source,
                path,
                list(required_fields),
            )
        )


async def campaign_required_fields(
    conn: asyncpg.Connection, campaign: str
) -> tuple[str, ...] | None:
    """The lead fields the campaign's current script requires; None when no daemon has loaded
    that script yet (nothing is known)."""
    row = await conn.fetchrow(
        "SELECT required_fields, script_version FROM campaign_required_fields WHERE campaign = $1",
        campaign,
    )
    if row is None or row["script_version"] is None:
        return None
    return tuple(row["required_fields"])


async def latest_script_source(
    conn: asyncpg.Connection | asyncpg.Pool, name: str
) -> tuple[str, str] | None:
    """(content_hash, source) of the newest version of script `name`, or None."""
    row = await conn.fetchrow(
        """SELECT v.content_hash, v.source FROM script_versions v
           JOIN scripts s ON s.id = v.script_id
           WHERE s.name = $1 ORDER BY v.version DESC LIMIT 1""",
        name,
    )
    return None if row is None else (row["content_hash"], row["source"])
