"""Script and variant effectiveness over a time window (the numbers `outdial report` shows).

The definitions live in SQL (migration 030, `analytics_variant_stats`) so the report, the
retirement job and Grafana agree on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


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


# A span ending now, as `outdial report --since` and the API's `since` take it.
SPAN_PATTERN = r"^\s*([1-9][0-9]*)([mhd])\s*$"
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_span(text: str) -> timedelta:
    """`90m`, `1h`, `24h`, `7d` -> timedelta; ValueError otherwise."""
    match = re.match(SPAN_PATTERN, text)
    if not match:
        raise ValueError(f"{text!r} is not a span like 1h, 24h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @classmethod
    def last(cls, span: timedelta, now: datetime) -> Window:
        return cls(since=now - span, until=now)


async def evaluate(
    conn: asyncpg.Connection | asyncpg.Pool, window: Window, campaign: str | None = None
) -> list[VariantStats]:
    """Stats per script and variant for calls started in the window, sorted by script, variant."""
    rows = await conn.fetch(
        """SELECT * FROM analytics_variant_stats($1, $2, $3)
           ORDER BY script_name NULLS LAST, variant NULLS FIRST""",
        window.since,
        window.until,
        campaign,
    )
    return [VariantStats(**dict(row)) for row in rows]


async def campaign_exists(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM campaigns WHERE name = $1)", name)
    )
