"""What `outdial top` reads each second: the calls on the line and the floor's rates.

Each query is bounded by time (an open row older than `max_call_s` is a call whose end was
never recorded, not a live one) and served by a partial index (migrations 001, 090, 120).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class LiveCall:
    call_id: str
    campaign: str | None
    node: str | None  # the node of the newest turn
    started_at: datetime  # when the bot took the call
    agitation: float | None  # the newest customer agitation score


@dataclass(frozen=True)
class TrunkUse:
    trunk: str
    in_use: int  # attempts not ended: ringing, in AMD, with the bot or with people
    dialling: int  # of those, the ones the bot has not taken yet (ringing or in AMD)


@dataclass(frozen=True)
class CampaignRates:
    campaign: str
    dialled_last_minute: int
    settled_recent: int  # attempts ended in the recent window
    answered_recent: int
    live: int  # attempts on the line now


@dataclass(frozen=True)
class Abandoned:
    campaign: str
    abandoned: int
    person_answered: int  # the cap's denominator: calls a person answered


async def live_calls(conn: asyncpg.Connection | asyncpg.Pool, max_call_s: float) -> list[LiveCall]:
    rows = await conn.fetch(
        """SELECT c.call_id, cp.name AS campaign, c.started_at,
                  (SELECT t.node FROM turns t WHERE t.call_id = c.call_id
                    ORDER BY t.seq DESC LIMIT 1) AS node,
                  (SELECT t.agitation FROM turns t
                    WHERE t.call_id = c.call_id AND t.agitation IS NOT NULL
                    ORDER BY t.seq DESC LIMIT 1) AS agitation
           FROM calls c LEFT JOIN campaigns cp ON cp.id = c.campaign_id
           WHERE c.ended_at IS NULL AND c.started_at > now() - make_interval(secs => $1)
           ORDER BY c.started_at, c.call_id""",
        max_call_s,
    )
    return [LiveCall(**dict(r)) for r in rows]


async def trunk_use(conn: asyncpg.Connection | asyncpg.Pool, max_call_s: float) -> list[TrunkUse]:
    rows = await conn.fetch(
        # The dialer writes answered_at when the attempt settles; a bot session's row is
        # what says a call was answered meanwhile.
        """SELECT a.trunk, count(*) AS in_use,
                  count(*) FILTER (WHERE c.call_id IS NULL) AS dialling
           FROM call_attempts a LEFT JOIN calls c USING (call_id)
           WHERE a.ended_at IS NULL AND a.started_at > now() - make_interval(secs => $1)
           GROUP BY a.trunk ORDER BY a.trunk""",
        max_call_s,
    )
    return [TrunkUse(**dict(r)) for r in rows]


async def campaign_rates(
    conn: asyncpg.Connection | asyncpg.Pool, recent_s: float, max_call_s: float
) -> list[CampaignRates]:
    """Per campaign with attempts lately: dialled in the last minute, settled and answered
    in the last `recent_s`, on the line now."""
    window = max(recent_s, max_call_s, 60.0)
    rows = await conn.fetch(
        """SELECT cp.name AS campaign,
                  count(*) FILTER (WHERE a.started_at > now() - interval '60 seconds')
                      AS dialled_last_minute,
                  count(*) FILTER (WHERE a.ended_at > now() - make_interval(secs => $1))
                      AS settled_recent,
                  count(*) FILTER (WHERE a.ended_at > now() - make_interval(secs => $1)
                                     AND a.answered_at IS NOT NULL) AS answered_recent,
                  count(*) FILTER (WHERE a.ended_at IS NULL) AS live
           FROM call_attempts a JOIN campaigns cp ON cp.id = a.campaign_id
           WHERE a.started_at > now() - make_interval(secs => $2)
           GROUP BY cp.name ORDER BY cp.name""",
        recent_s,
        window,
    )
    return [CampaignRates(**dict(r)) for r in rows]


async def abandoned_30d(
    conn: asyncpg.Connection | asyncpg.Pool, person_answered: list[str]
) -> list[Abandoned]:
    """Abandoned calls against the calls a person answered (`person_answered` dispositions),
    last 30 days, per active campaign: what the 3% cap is measured on."""
    rows = await conn.fetch(
        """SELECT cp.name AS campaign,
                  count(*) FILTER (WHERE a.disposition = 'abandoned') AS abandoned,
                  count(*) FILTER (WHERE a.disposition = ANY($1::text[])) AS person_answered
           FROM campaigns cp JOIN call_attempts a ON a.campaign_id = cp.id
           WHERE cp.status = 'active' AND a.started_at > now() - interval '30 days'
           GROUP BY cp.name ORDER BY cp.name""",
        person_answered,
    )
    return [Abandoned(**dict(r)) for r in rows]


async def transfers_waiting(conn: asyncpg.Connection | asyncpg.Pool, max_call_s: float) -> int:
    """Calls the bot handed to people that are still on the line (in the queue or talking)."""
    return int(
        await conn.fetchval(
            """SELECT count(*) FROM call_attempts a JOIN calls c USING (call_id)
               WHERE a.ended_at IS NULL AND c.disposition = 'transferred'
                 AND a.started_at > now() - make_interval(secs => $1)""",
            max_call_s,
        )
    )


async def reply_latency_p95(
    conn: asyncpg.Connection | asyncpg.Pool, window_s: float
) -> tuple[float | None, int]:
    """The 95th percentile of the bot's reply time (customer's end of speech to its first
    audio out, ms) over replies logged in the last `window_s`, and how many there were."""
    row = await conn.fetchrow(
        """SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY (timings->>'reply_ms')::float)
                      AS p95,
                  count(*) AS n
           FROM turns
           WHERE timings ? 'reply_ms' AND created_at > now() - make_interval(secs => $1)""",
        window_s,
    )
    return row["p95"], int(row["n"])
