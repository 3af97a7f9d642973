"""What the live call session would have written for a call, at a moment in the past: the
history simulator's (outdial/simulate.py) way to lay down weeks of calls without live audio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from store.calls import insert_past_calls
from store.migrate import migrate
from store.turns import insert_past_turns


@dataclass(frozen=True)
class PastTurn:
    speaker: str
    node: str | None
    intent: str | None
    agitation: float | None
    timings: dict[str, float]  # speech_start / speech_end, seconds into the call
    entities: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PastCall:
    call_id: str
    campaign_id: int
    lead_id: int
    script_name: str
    script_version: int
    started_at: datetime
    ended_at: datetime
    disposition: str
    outcome: str | None
    success: bool
    grade: str | None
    grade_reason: str | None
    transfer_reason: str | None
    turns: Sequence[PastTurn]


async def record_past_calls(conn: asyncpg.Connection, calls: Sequence[PastCall]) -> None:
    """The `calls` rows and their turns, as the session writes them when a call ends."""
    await insert_past_calls(
        conn,
        [
            (c.call_id, c.campaign_id, c.lead_id, c.script_name, c.script_version, c.started_at,
             c.ended_at, c.disposition, c.outcome, c.success, c.grade, c.grade_reason,
             c.transfer_reason)
            for c in calls
        ],
    )  # fmt: skip
    await insert_past_turns(
        conn,
        [
            (c.call_id, seq, t.speaker, t.node, t.intent, t.agitation, t.timings, t.entities,
             c.started_at)
            for c in calls
            for seq, t in enumerate(c.turns, 1)
        ],
    )  # fmt: skip


@asynccontextmanager
async def scratch_database(url: str, name: str) -> AsyncIterator[str]:
    """A new database `name` beside the one at `url` (same server), migrated; its URL. It is
    dropped afterwards: the simulator's worlds (and the benchmarks' data) never mix with real
    data or each other."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        scratch = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
        conn = await asyncpg.connect(scratch)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield scratch
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
