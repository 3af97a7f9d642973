"""The decisions' distributions (migrations 100-102's SQL functions): grades per script and
variant, churn-risk bands, follow-ups per channel, engagement per channel."""

from __future__ import annotations

from datetime import datetime

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def grade_rows(
    conn: Conn, since: datetime, until: datetime, campaign: str | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM analytics_grade_stats($1, $2, $3)
           ORDER BY script_name NULLS LAST, variant NULLS FIRST, grade""",
        since,
        until,
        campaign,
    )


async def churn_rows(conn: Conn, campaign: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM analytics_churn_distribution($1) ORDER BY band", campaign
    )


async def follow_up_rows(
    conn: Conn, since: datetime, until: datetime, campaign: str | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM analytics_follow_up_stats($1, $2, $3) ORDER BY channel NULLS LAST",
        since,
        until,
        campaign,
    )


async def engagement_rows(
    conn: Conn, since: datetime, until: datetime, campaign: str | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM analytics_engagement_stats($1, $2, $3) ORDER BY channel",
        since,
        until,
        campaign,
    )


async def campaign_grades(conn: Conn, campaign_id: int) -> dict[str, int]:
    """Graded calls of one campaign, per grade."""
    rows = await conn.fetch(
        """SELECT grade, count(*) AS calls FROM calls
           WHERE campaign_id = $1 AND grade IS NOT NULL GROUP BY grade ORDER BY grade""",
        campaign_id,
    )
    return {r["grade"]: r["calls"] for r in rows}
