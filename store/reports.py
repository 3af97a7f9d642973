"""Read-only report queries: figures over a campaign's calls, for the demo's summary."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class CampaignCallFigures:
    """What a campaign's calls came to."""

    dispositions: dict[str | None, int]  # attempts by disposition (None: not settled yet)
    turns: int
    transfers: int
    recordings: int  # calls with a recording
    greeting_ms: list[float]  # the bot's greeting latency, per call that measured it
    processing_ms: list[float]  # end of the customer's silence to the reply, per reply turn


async def campaign_call_figures(conn: Conn, campaign_id: int) -> CampaignCallFigures:
    dispositions = {
        r["disposition"]: r["n"]
        for r in await conn.fetch(
            """SELECT disposition, count(*) AS n FROM call_attempts WHERE campaign_id = $1
               GROUP BY disposition ORDER BY disposition""",
            campaign_id,
        )
    }
    turns = await conn.fetchval(
        "SELECT count(*) FROM turns t JOIN calls c USING (call_id) WHERE c.campaign_id = $1",
        campaign_id,
    )
    greetings = [
        r["greeting_latency_ms"]
        for r in await conn.fetch(
            """SELECT greeting_latency_ms FROM calls
                WHERE campaign_id = $1 AND greeting_latency_ms IS NOT NULL""",
            campaign_id,
        )
    ]
    transfers = await conn.fetchval(
        "SELECT count(*) FROM calls WHERE campaign_id = $1 AND disposition = 'transferred'",
        campaign_id,
    )
    recordings = await conn.fetchval(
        "SELECT count(*) FROM calls WHERE campaign_id = $1 AND recording_path IS NOT NULL",
        campaign_id,
    )
    # Logged by the session on each reply turn: end of trailing silence to first frame out.
    processing = [
        r["ms"]
        for r in await conn.fetch(
            """SELECT (t.timings->>'processing_ms')::float AS ms
                 FROM turns t JOIN calls c USING (call_id)
                WHERE c.campaign_id = $1 AND t.timings ? 'processing_ms'""",
            campaign_id,
        )
    ]
    return CampaignCallFigures(dispositions, turns, transfers, recordings, greetings, processing)
