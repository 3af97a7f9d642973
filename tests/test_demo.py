"""`outdial demo` end to end: its summary is read back from the database and must match it."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from outdial.config import Config
from outdial.demo import run_demo

pytestmark = pytest.mark.slow


async def test_demo_summary_matches_the_database(pg_url: str, tmp_path: Path) -> None:
    config = Config.model_validate({"state_dir": str(tmp_path / "state")})
    config = config.model_copy(
        update={"database": config.database.model_copy(update={"url": SecretStr(pg_url)})}
    )
    progress: list[tuple[int, int]] = []
    summary = await run_demo(config, 4, lambda done, total: progress.append((done, total)))

    assert summary.calls == 4
    assert progress[-1] == (4, 4)
    conn = await asyncpg.connect(pg_url)
    try:
        attempts = await conn.fetch(
            """SELECT a.disposition FROM call_attempts a JOIN campaigns c ON c.id = a.campaign_id
                WHERE c.name = $1""",
            summary.campaign,
        )
        turns = await conn.fetchval("SELECT count(*) FROM turns")
        talked = await conn.fetch(
            """SELECT call_id, grade, grade_reason FROM calls
                WHERE disposition IN ('completed', 'transferred')"""
        )
        events = await conn.fetch("SELECT payload FROM outbox WHERE event_type = 'call.outcome'")
    finally:
        await conn.close()
    counted: dict[str, int] = {}
    for row in attempts:
        counted[row["disposition"]] = counted.get(row["disposition"], 0) + 1
    assert counted == summary.dispositions
    assert turns == summary.turns
    answered = sum(n for d, n in counted.items() if d in ("completed", "transferred"))
    if answered:
        assert summary.turns > 0
        assert summary.greeting_ms_p50 is not None
    # Every call the bot talked through has a grade and its reason; the summary counts them.
    assert all(r["grade"] in "ABCDEF" and r["grade_reason"] for r in talked)
    graded: dict[str, int] = {}
    for row in talked:
        graded[row["grade"]] = graded.get(row["grade"], 0) + 1
    assert summary.grades == graded
    # Each outcome event says what to send next (or why nothing may be sent).
    assert len(events) == 4
    payloads = [json.loads(e["payload"]) for e in events]
    assert all(p["follow_up"]["reason"] for p in payloads)
    # The CRM hears each graded call's grade and reason.
    heard = {p["call_id"]: (p["grade"], p["grade_reason"]) for p in payloads}
    assert all(heard[r["call_id"]] == (r["grade"], r["grade_reason"]) for r in talked)
