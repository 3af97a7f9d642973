"""Script versions in PostgreSQL: every distinct content of a script gets the next number.

What is live is the newest row of `script_promotions` (migration 140): a daemon loading new
file content, an admin's promotion of a staged version, or a rollback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


class ScriptVersionError(ValueError):
    """No such script or version, or nothing to go back to."""


@dataclass(frozen=True)
class ScriptVersion:
    name: str
    version: int
    content_hash: str
    source: str
    cases: dict[str, str]  # file name -> YAML text of the version's test cases
    live: bool
    staged_by: str | None
    staged_at: datetime | None
    promoted_by: str | None  # of its latest promotion
    promoted_at: datetime | None
    forced: bool  # that promotion skipped failing tests


@dataclass(frozen=True)
class LiveVersion:
    name: str
    version: int
    content_hash: str
    source: str


async def record_script_version(
    pool: asyncpg.Pool,
    name: str,
    source: str,
    content_hash: str,
    path: str | None,
    required_fields: Sequence[str] = (),
    *,
    edited: bool = False,
) -> int:
    """The version number of this file content of script `name`, creating it when new.

    New content goes live (a file edit is a promotion by `scripts_dir`), and so does known
    content the daemon saw the file change to (`edited`) or the first version of a script.
    Known content loaded again (a daemon restart) leaves the live version alone, so a version
    promoted or rolled back by an admin stays live."""
    async with pool.acquire() as conn, conn.transaction():
        script_id = await _lock(conn, name)
        version = await conn.fetchval(
            """UPDATE script_versions SET registered_at = now(), required_fields = $3
               WHERE script_id = $1 AND content_hash = $2 RETURNING version""",
            script_id,
            content_hash,
            list(required_fields),
        )
        promote = edited or version is None or await _live_version(conn, script_id) is None
        if version is None:
            version = await conn.fetchval(
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
        if promote and await _live_version(conn, script_id) != version:
            await _promote(conn, script_id, int(version), "load", "scripts_dir")
        return int(version)


async def _lock(conn: asyncpg.Connection, name: str) -> int:
    """The script's id, creating it; serialises concurrent writers of the same script."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('script:' || $1))", name)
    return int(
        await conn.fetchval(
            """INSERT INTO scripts (name) VALUES ($1)
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id""",
            name,
        )
    )


async def _live_version(conn: asyncpg.Connection, script_id: int) -> int | None:
    return await conn.fetchval(
        "SELECT version FROM live_script_versions WHERE script_id = $1", script_id
    )


async def _promote(
    conn: asyncpg.Connection,
    script_id: int,
    version: int,
    action: str,
    who: str,
    forced: bool = False,
    detail: Mapping[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO script_promotions (script_id, version, action, by_whom, forced, detail)
           VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)""",
        script_id,
        version,
        action,
        who,
        forced,
        json.dumps(dict(detail or {})),  # as text: callers' pools may lack the jsonb codec
    )


async def stage_script_version(
    pool: asyncpg.Pool,
    name: str,
    source: str,
    content_hash: str,
    required_fields: Sequence[str],
    cases: Mapping[str, str],
    who: str,
) -> int:
    """Store a validated version as staged (not live) with its test cases; its number."""
    async with pool.acquire() as conn, conn.transaction():
        script_id = await _lock(conn, name)
        return int(
            await conn.fetchval(
                """INSERT INTO script_versions (script_id, version, content_hash, source,
                                                required_fields, staged_by, staged_at, cases)
                   SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, now(), $6
                     FROM script_versions WHERE script_id = $1
                   ON CONFLICT (script_id, content_hash) DO UPDATE
                      SET staged_by = EXCLUDED.staged_by, staged_at = EXCLUDED.staged_at,
                          cases = EXCLUDED.cases
                   RETURNING version""",
                script_id,
                content_hash,
                source,
                list(required_fields),
                who,
                dict(cases),
            )
        )


async def script_versions(
    conn: asyncpg.Connection | asyncpg.Pool, name: str
) -> list[ScriptVersion]:
    """Every version of script `name`, newest first, with who staged and promoted it."""
    rows = await conn.fetch(
        """SELECT s.name, v.version, v.content_hash, v.source, v.cases, v.staged_by, v.staged_at,
                  l.version IS NOT NULL AS live, p.by_whom, p.at,
                  coalesce(p.forced, false) AS forced
             FROM scripts s
             JOIN script_versions v ON v.script_id = s.id
             LEFT JOIN live_script_versions l ON l.script_id = s.id AND l.version = v.version
             LEFT JOIN LATERAL (
                  SELECT by_whom, at, forced FROM script_promotions
                   WHERE script_id = s.id AND version = v.version
                   ORDER BY at DESC, id DESC LIMIT 1) p ON true
            WHERE s.name = $1
            ORDER BY v.version DESC""",
        name,
    )
    if not rows:
        raise ScriptVersionError(f"no script named {name!r} has been stored")
    return [
        ScriptVersion(
            r["name"],
            r["version"],
            r["content_hash"],
            r["source"],
            dict(r["cases"]),
            r["live"],
            r["staged_by"],
            r["staged_at"],
            r["by_whom"],
            r["at"],
            r["forced"],
        )  # fmt: skip
        for r in rows
    ]


async def promote_script_version(
    pool: asyncpg.Pool,
    name: str,
    version: int,
    who: str,
    *,
    forced: bool = False,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Make `version` of `name` live for the next calls (calls in progress keep theirs)."""
    async with pool.acquire() as conn, conn.transaction():
        script_id = await _lock(conn, name)
        exists = await conn.fetchval(
            "SELECT true FROM script_versions WHERE script_id = $1 AND version = $2",
            script_id,
            version,
        )
        if not exists:
            raise ScriptVersionError(f"script {name!r} has no version {version}")
        await _promote(conn, script_id, version, "promote", who, forced, detail)


async def rollback_script(pool: asyncpg.Pool, name: str, who: str) -> int:
    """Make live the newest version older than the live one that was live before; its number."""
    async with pool.acquire() as conn, conn.transaction():
        script_id = await _lock(conn, name)
        live = await _live_version(conn, script_id)
        if live is None:
            raise ScriptVersionError(f"script {name!r} has no live version")
        previous = await conn.fetchval(
            """SELECT max(version) FROM script_promotions
                WHERE script_id = $1 AND version < $2""",
            script_id,
            live,
        )
        if previous is None:
            raise ScriptVersionError(
                f"script {name!r}: version {live} is live and no older version ever was"
            )
        await _promote(conn, script_id, previous, "rollback", who, detail={"from": live})
        return int(previous)


async def live_versions(pool: asyncpg.Pool) -> list[LiveVersion]:
    """The live version of every script, with its source (what a daemon serves)."""
    rows = await pool.fetch(
        """SELECT l.name, l.version, v.content_hash, v.source
             FROM live_script_versions l
             JOIN script_versions v ON v.script_id = l.script_id AND v.version = l.version
            ORDER BY l.name"""
    )
    return [LiveVersion(r["name"], r["version"], r["content_hash"], r["source"]) for r in rows]


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


STAGED_ONLY = (
    "script {name!r} is only staged (version {version}), not live: calls use live versions; "
    "`outdial script promote {name}` makes it live"
)


async def live_script_version(
    conn: asyncpg.Connection | asyncpg.Pool, name: str
) -> LiveVersion | None:
    """The live version of script `name` with its source: what calls and campaigns use (from
    a file in scripts_dir or promoted); None when it has none (unknown, or staged only)."""
    row = await conn.fetchrow(
        """SELECT l.name, l.version, v.content_hash, v.source
             FROM live_script_versions l
             JOIN script_versions v ON v.script_id = l.script_id AND v.version = l.version
            WHERE l.name = $1""",
        name,
    )
    return None if row is None else LiveVersion(*row.values())


async def newest_script_version(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> int | None:
    """The number of the newest stored version of script `name` (staged or not), or None."""
    return await conn.fetchval(
        """SELECT max(v.version) FROM script_versions v JOIN scripts s ON s.id = v.script_id
            WHERE s.name = $1""",
        name,
    )


# --- registered scripts


async def script_registered(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> bool:
    """Whether a daemon has loaded (and so registered) a script of this name."""
    return await conn.fetchval("SELECT 1 FROM scripts WHERE name = $1", name) is not None


# --- variants: registration, outcomes, retire and restore (analytics/variants.py decides)


@dataclass(frozen=True)
class VariantOutcome:
    variant: str
    status: str
    completed: int
    successes: int

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.completed if self.completed else None


@dataclass(frozen=True)
class VariantRecord:
    script_name: str
    variant: str
    status: str
    retired_at: datetime | None
    evidence: dict[str, Any] | None


@dataclass(frozen=True)
class VariantRow:
    id: int
    name: str
    status: str
    evidence: dict[str, Any] | None


async def register_variants(conn: asyncpg.Connection, script_name: str, names: list[str]) -> None:
    """Make sure the script and its declared variants have rows (new variants start active)."""
    await conn.execute(
        "INSERT INTO scripts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", script_name
    )
    await conn.execute(
        """INSERT INTO script_variants (script_id, name)
           SELECT s.id, v FROM scripts s, unnest($2::text[]) AS v WHERE s.name = $1
           ON CONFLICT (script_id, name) DO NOTHING""",
        script_name,
        names,
    )


async def variant_outcomes(
    conn: asyncpg.Connection | asyncpg.Pool, script_name: str, since: datetime
) -> list[VariantOutcome]:
    rows = await conn.fetch("SELECT * FROM analytics_variant_outcomes($1, $2)", script_name, since)
    return [VariantOutcome(**dict(r)) for r in rows]


async def list_variants(
    conn: asyncpg.Connection | asyncpg.Pool, script_name: str | None = None
) -> list[VariantRecord]:
    rows = await conn.fetch(
        """SELECT s.name AS script_name, v.name AS variant, v.status, v.retired_at, v.evidence
           FROM script_variants v JOIN scripts s ON s.id = v.script_id
           WHERE $1::text IS NULL OR s.name = $1
           ORDER BY s.name, v.id""",
        script_name,
    )
    return [VariantRecord(**dict(r)) for r in rows]


async def lock_script_variants(conn: asyncpg.Connection, script_name: str) -> list[VariantRow]:
    """Lock the script's variant rows (in the caller's transaction) and read them, by id."""
    rows = await conn.fetch(
        """SELECT v.id, v.name, v.status, v.evidence
           FROM script_variants v JOIN scripts s ON s.id = v.script_id
           WHERE s.name = $1 ORDER BY v.id FOR UPDATE OF v""",
        script_name,
    )
    return [VariantRow(**dict(r)) for r in rows]


async def lock_variant_rows(conn: asyncpg.Connection, script_name: str) -> None:
    """Lock the script's variant rows in the caller's transaction, reading nothing."""
    await conn.execute(
        """SELECT 1 FROM script_variants v JOIN scripts s ON s.id = v.script_id
           WHERE s.name = $1 FOR UPDATE OF v""",
        script_name,
    )


async def set_variant_retired(
    conn: asyncpg.Connection, variant_id: int, at: datetime, evidence: dict[str, Any]
) -> None:
    await conn.execute(
        """UPDATE script_variants SET status = 'retired', retired_at = $2, evidence = $3
           WHERE id = $1""",
        variant_id,
        at,
        evidence,
    )


async def set_variant_active(
    conn: asyncpg.Connection, variant_id: int, evidence: dict[str, Any]
) -> None:
    await conn.execute(
        """UPDATE script_variants SET status = 'active', retired_at = NULL, evidence = $2
           WHERE id = $1""",
        variant_id,
        evidence,
    )


async def scripts_with_variants(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT s.name FROM scripts s
           JOIN script_variants v ON v.script_id = s.id ORDER BY s.name"""
    )
    return [r["name"] for r in rows]


# --- variant stats (the definitions are SQL: migration 030, `analytics_variant_stats`)


@dataclass(frozen=True)
class VariantStats:
    script_name: str | None
    variant: str | None
    calls: int
    completed: int
    successes: int
    success_rate: float | None
    avg_duration_s: float | None
    efficiency: float | None
    transfers: int
    transfer_rate: float | None
    opt_outs: int
    opt_out_rate: float | None
    compliance_hits: int


async def variant_stats(
    conn: asyncpg.Connection | asyncpg.Pool,
    since: datetime,
    until: datetime,
    campaign: str | None,
) -> list[VariantStats]:
    """Stats per script and variant for calls started in [since, until), by script, variant."""
    rows = await conn.fetch(
        """SELECT * FROM analytics_variant_stats($1, $2, $3)
           ORDER BY script_name NULLS LAST, variant NULLS FIRST""",
        since,
        until,
        campaign,
    )
    return [VariantStats(**dict(row)) for row in rows]
