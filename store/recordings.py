"""Recording files waiting to be deleted (`recording_deletions`).

A recording's path leaves its call (retention, erasure, the call's own deletion) in the same
statement or transaction that queues the file here; the daemon's retention job deletes the
queued files it can reach (outdial/recordings.py) and takes them off the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


def queue_recordings(reason: str) -> str:
    """SQL (for a WITH clause) queueing the recordings of the calls in `gone` for deletion;
    `reason` is one of the table's reasons (retention, erasure, call_deleted)."""
    return f"""INSERT INTO recording_deletions (path, reason)
        SELECT recording_path, '{reason}' FROM gone WHERE recording_path IS NOT NULL
        ON CONFLICT (path) DO NOTHING"""


@dataclass(frozen=True)
class QueuedDeletion:
    path: str
    reason: str
    attempts: int


async def queued_deletions(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int
) -> list[QueuedDeletion]:
    """The oldest queued files first."""
    rows = await conn.fetch(
        """SELECT path, reason, attempts FROM recording_deletions
           ORDER BY queued_at, path LIMIT $1""",
        limit,
    )
    return [QueuedDeletion(r["path"], r["reason"], r["attempts"]) for r in rows]


async def count_queued(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM recording_deletions"))


async def deletion_done(conn: asyncpg.Connection | asyncpg.Pool, paths: list[str]) -> None:
    await conn.execute("DELETE FROM recording_deletions WHERE path = ANY($1::text[])", paths)


async def deletion_failed(conn: asyncpg.Connection | asyncpg.Pool, path: str, error: str) -> None:
    """The file is still there: keep it queued with why (the next pass tries again)."""
    await conn.execute(
        """UPDATE recording_deletions SET attempts = attempts + 1, last_error = $2
           WHERE path = $1""",
        path,
        error,
    )
