"""Script and variant effectiveness over a time window (the numbers `outdial report` shows).

The definitions live in SQL (migration 030, `analytics_variant_stats`) so the report, the
retirement job and Grafana agree on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from store.scripts import VariantStats, variant_stats

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
    return await variant_stats(conn, window.since, window.until, campaign)
