"""Script versions in PostgreSQL: every distinct content of a script gets the next number."""

from __future__ import annotations

import asyncpg


async def record_script_version(
    pool: asyncpg.Pool, name: str, source: str, content_hash: str, path: str | None
) -> int:
    """The version number of this content of script `name`, creating it when new."""
    async with pool.acquire() as conn, conn.transaction():
        # Serialises concurrent daemons registering the same script.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('script:' || $1))", name)
        script_id = await conn.fetchval(
            """INSERT INTO scripts (name) VALUES ($1)
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id""",
            name,
        )
        existing = await conn.fetchval(
            "SELECT version FROM script_versions WHERE script_id = $1 AND content_hash = $2",
            script_id,
            content_hash,
        )
        if existing is not None:
            return int(existing)
        return int(
            await conn.fetchval(
                """INSERT INTO script_versions (script_id, version, content_hash, source, path)
                   SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4
                     FROM script_versions WHERE script_id = $1
                   RETURNING version""",
                script_id,
                content_hash,
                source,
                path,
            )
        )


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
