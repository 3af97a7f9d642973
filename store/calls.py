"""Reading calls back: one call with its turns and compliance events, or a filtered list.

A call is what the dialer originated (`call_attempts`) joined with what the bot session
recorded (`calls`); either may be missing (not answered yet, or no bot session). The API's call
resource, `outdial calls` and the call plot all read through here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from store.batchwriter import RowKind, copy_into
from store.copyinsert import CopyTarget, copy_insert_ignore
from store.db import execute_count
from store.recordings import queue_recordings

# One row per call: the attempt and the bot session side by side.
_CALL = """
SELECT call_id,
       cp.name AS campaign,
       l.external_id,
       a.trunk,
       a.started_at AS dialled_at,
       a.answered_at,
       c.started_at AS bot_started_at,
       coalesce(c.ended_at, a.ended_at) AS ended_at,
       coalesce(c.disposition, a.disposition) AS disposition,
       c.outcome,
       c.success,
       coalesce(c.amd_status, a.amd_status) AS amd_status,
       a.amd_cause,
       c.script_name AS script,
       c.script_version,
       c.variant,
       c.transfer_target,
       c.transfer_reason,
       c.hangup_side,
       c.greeting_latency_ms,
       c.summary,
       c.grade,
       c.grade_reason,
       c.recording_path,
       (SELECT count(*) FROM turns t WHERE t.call_id = coalesce(a.call_id, c.call_id)) AS turn_count
FROM call_attempts a
FULL JOIN calls c USING (call_id)
LEFT JOIN campaigns cp ON cp.id = coalesce(c.campaign_id, a.campaign_id)
LEFT JOIN leads l ON l.id = coalesce(c.lead_id, a.lead_id)
"""

_PHONE_OF_CALL = """
SELECT l.phone_e164 FROM leads l
WHERE l.id = coalesce((SELECT lead_id FROM calls WHERE call_id = $1),
                      (SELECT lead_id FROM call_attempts WHERE call_id = $1))
"""

_TURNS = """
SELECT call_id, seq, speaker, node, text, intent, intent_confidence, asr_confidence,
       agitation, barge_in, dtmf, timings, created_at
FROM turns WHERE call_id = ANY($1::text[]) ORDER BY call_id, seq
"""

_EVENTS = """
SELECT call_id, direction, category, action, detail, created_at
FROM compliance_events WHERE call_id = ANY($1::text[]) ORDER BY call_id, created_at, id
"""


@dataclass(frozen=True)
class CallRows:
    """One call as stored: its row (`_CALL`), turns and compliance events."""

    call: asyncpg.Record
    turns: list[asyncpg.Record]
    events: list[asyncpg.Record]


async def calls_by_id(
    conn: asyncpg.Connection | asyncpg.Pool, call_ids: list[str]
) -> list[asyncpg.Record]:
    return await conn.fetch(_CALL + " WHERE call_id = ANY($1::text[]) ORDER BY call_id", call_ids)


async def calls_of_lead(
    conn: asyncpg.Connection | asyncpg.Pool, lead_id: int, limit: int
) -> list[asyncpg.Record]:
    """The lead's calls, newest first."""
    return await conn.fetch(
        _CALL
        + """ WHERE coalesce(c.lead_id, a.lead_id) = $1
              ORDER BY coalesce(a.started_at, c.started_at) DESC, call_id LIMIT $2""",
        lead_id,
        limit,
    )


async def with_turns(
    conn: asyncpg.Connection | asyncpg.Pool, calls: list[asyncpg.Record]
) -> list[CallRows]:
    """The calls with their turns and compliance events, in the order given."""
    ids = [r["call_id"] for r in calls]
    turns = await conn.fetch(_TURNS, ids) if ids else []
    events = await conn.fetch(_EVENTS, ids) if ids else []
    return [
        CallRows(
            call,
            [t for t in turns if t["call_id"] == call["call_id"]],
            [e for e in events if e["call_id"] == call["call_id"]],
        )
        for call in calls
    ]


async def phone_of_call(conn: asyncpg.Connection | asyncpg.Pool, call_id: str) -> str | None:
    """The number of the person called (for the audit's subject; never shown)."""
    return await conn.fetchval(_PHONE_OF_CALL, call_id)


async def matching_call_ids(
    conn: asyncpg.Connection | asyncpg.Pool, prefix: str, *, min_prefix: int, limit: int = 5
) -> list[str]:
    """Call ids equal to `prefix`, else, when it is `min_prefix` long or more, starting with
    it (a prefix reads every id)."""
    exact = await conn.fetchval(
        """SELECT call_id FROM call_attempts WHERE call_id = $1
           UNION SELECT call_id FROM calls WHERE call_id = $1""",
        prefix,
    )
    if exact is not None:
        return [exact]
    if len(prefix) < min_prefix:
        return []
    rows = await conn.fetch(
        """SELECT call_id FROM (SELECT call_id FROM call_attempts
                               UNION SELECT call_id FROM calls) AS ids
           WHERE left(call_id, length($1)) = $1 ORDER BY call_id LIMIT $2""",
        prefix,
        limit,
    )
    return [r["call_id"] for r in rows]


@dataclass(frozen=True)
class CallFilter:
    """What `outdial calls list` narrows to: dialled in [since, until); None means any."""

    since: datetime
    until: datetime
    campaign: str | None = None
    disposition: str | None = None
    outcome: str | None = None
    grade: str | None = None
    transferred: bool | None = None
    limit: int = 50


async def list_calls(
    conn: asyncpg.Connection | asyncpg.Pool, wanted: CallFilter
) -> list[asyncpg.Record]:
    """Calls newest first (by when they were dialled, else when the bot answered)."""
    # The window picks ids through the started_at indexes of both tables first.
    sql = f"""
        WITH window_ids AS (
            SELECT call_id FROM call_attempts WHERE started_at >= $1 AND started_at < $2
            UNION SELECT call_id FROM calls WHERE started_at >= $1 AND started_at < $2)
        SELECT * FROM ({_CALL} WHERE call_id IN (SELECT call_id FROM window_ids)) AS found
        WHERE ($3::text IS NULL OR campaign = $3)
          AND ($4::text IS NULL OR disposition = $4)
          AND ($5::text IS NULL OR outcome = $5)
          AND ($6::text IS NULL OR grade = $6)
          AND ($7::boolean IS NULL OR (disposition IS NOT DISTINCT FROM 'transferred') = $7)
        ORDER BY coalesce(dialled_at, bot_started_at) DESC, call_id
        LIMIT $8"""
    return await conn.fetch(
        sql,
        wanted.since,
        wanted.until,
        wanted.campaign,
        wanted.disposition,
        wanted.outcome,
        wanted.grade,
        wanted.transferred,
        wanted.limit,
    )


@dataclass(frozen=True)
class SessionOutcome:
    """What the bot session wrote for a call: whether it has ended, and its disposition."""

    ended: bool
    disposition: str | None


async def session_outcome(
    conn: asyncpg.Connection | asyncpg.Pool, call_id: str
) -> SessionOutcome | None:
    """The bot session's row of a call; None when no session started for it."""
    row = await conn.fetchrow("SELECT ended_at, disposition FROM calls WHERE call_id = $1", call_id)
    if row is None:
        return None
    return SessionOutcome(ended=row["ended_at"] is not None, disposition=row["disposition"])


# --- the bot session's call row (agi/callstore.py)


@dataclass(frozen=True)
class AttemptOfCall:
    """What the dialer recorded about the call it originated: campaign, lead and number."""

    campaign_id: int
    lead_id: int
    campaign: str
    script_name: str
    phone_e164: str | None
    timezone: str | None
    fields: dict[str, Any]
    external_id: str | None


async def attempt_of_call(
    conn: asyncpg.Connection | asyncpg.Pool, call_id: str
) -> AttemptOfCall | None:
    row = await conn.fetchrow(
        """SELECT a.campaign_id, a.lead_id, c.name AS campaign, c.script_name,
                  l.phone_e164, l.timezone,
                  l.fields, l.external_id
             FROM call_attempts a
             JOIN leads l ON l.id = a.lead_id
             JOIN campaigns c ON c.id = a.campaign_id
            WHERE a.call_id = $1""",
        call_id,
    )
    if row is None:
        return None
    return AttemptOfCall(
        campaign_id=row["campaign_id"],
        lead_id=row["lead_id"],
        campaign=row["campaign"],
        script_name=row["script_name"],
        phone_e164=row["phone_e164"],
        timezone=row["timezone"],
        fields=dict(row["fields"] or {}),
        external_id=row["external_id"],
    )


@dataclass(frozen=True)
class CallStart:
    """The `calls` row of a call the bot answers, as the session starts."""

    call_id: str
    campaign_id: int | None
    lead_id: int | None
    script_name: str | None = None
    script_version: int | None = None
    variant: str | None = None
    amd_status: str | None = None
    language_pack: str | None = None
    half_duplex: bool = False
    recording_path: str | None = None


@dataclass(frozen=True)
class CallEnd:
    """How the bot's call ended."""

    disposition: str
    outcome: str | None
    success: bool
    transfer_target: str | None
    transfer_reason: str | None
    hangup_side: str | None
    greeting_latency_ms: float | None
    summary: str | None
    grade: str | None
    grade_reason: str | None
    captured: dict[str, str]


async def start_call(conn: asyncpg.Connection | asyncpg.Pool, call: CallStart) -> None:
    """The call's row with its script, version and variant (kept when it exists already)."""
    await conn.execute(
        """INSERT INTO calls (call_id, campaign_id, lead_id, script_name, script_version,
                              variant, amd_status, language_pack, half_duplex, recording_path)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (call_id) DO NOTHING""",
        call.call_id,
        call.campaign_id,
        call.lead_id,
        call.script_name,
        call.script_version,
        call.variant,
        call.amd_status,
        call.language_pack,
        call.half_duplex,
        call.recording_path,
    )


# A call's end: one upsert of its row, made (as the session would have) if the session never
# opened it, ended only while still open, so a replayed end changes nothing. The call path
# writes it at once (the dialer reads the session's verdict as the call hangs up); while the
# database is away a batch writer keeps it (store/kept.py): bench/chaos.py lost 24 outcomes
# with a traceback each before (issue 17).
# The row of a call whose session never opened it...
_OPEN_COLUMNS = ("call_id", "campaign_id", "lead_id", "amd_status", "recording_path", "started_at")
# ...and its end, the columns an open row takes.
_END_COLUMNS = ("ended_at", *(f.name for f in fields(CallEnd)))
_CALL_END_COLUMNS = (*_OPEN_COLUMNS, *_END_COLUMNS)
_CALL_END_TIMES = frozenset({"started_at", "ended_at"})

CALL_ENDS_TARGET = CopyTarget(
    table="calls",
    columns=_CALL_END_COLUMNS,
    json_columns=frozenset({"captured"}),
    upsert_key="call_id",
    upsert_columns=_END_COLUMNS,
    upsert_where="calls.ended_at IS NULL",
)


@dataclass(frozen=True)
class CallEndRecord:
    """One call's end; `call` makes the row when the session ended before opening it."""

    call: CallStart
    end: CallEnd
    ended_at: datetime

    def to_row(self) -> tuple[Any, ...]:
        """The COPY tuple in `CALL_ENDS_TARGET.columns` order; `captured` as JSON text."""
        call, end = self.call, self.end
        ends = [
            json.dumps(end.captured, ensure_ascii=False) if f.name == "captured"
            else getattr(end, f.name)
            for f in fields(CallEnd)
        ]  # fmt: skip
        return (
            call.call_id, call.campaign_id, call.lead_id, call.amd_status, call.recording_path,
            self.ended_at, self.ended_at, *ends,
        )  # fmt: skip


CALL_ENDS = RowKind.of_columns(
    "call_ends", copy_into(CALL_ENDS_TARGET), _CALL_END_COLUMNS, times=_CALL_END_TIMES
)


async def end_call(conn: asyncpg.Connection, record: CallEndRecord) -> None:
    """End the call's row now (making it if the session never did)."""
    await copy_insert_ignore(conn, CALL_ENDS_TARGET, [record.to_row()])


async def settled_attempts(conn: asyncpg.Connection | asyncpg.Pool, campaign_id: int) -> int:
    """The campaign's call attempts that have a disposition."""
    return await conn.fetchval(
        """SELECT count(*) FROM call_attempts
            WHERE campaign_id = $1 AND disposition IS NOT NULL""",
        campaign_id,
    )


# --- campaign stats


@dataclass(frozen=True)
class AbandonedCount:
    abandoned: int
    answered: int  # calls a person answered, with a disposition in the caller's set


async def abandoned_30d(
    conn: asyncpg.Connection, campaign_id: int, human_answered: list[str]
) -> AbandonedCount:
    """A campaign's abandoned calls and calls a person answered, ended in the last 30 days."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE disposition = 'abandoned') AS abandoned,
                  count(*) FILTER (WHERE disposition = ANY($2::text[])) AS answered
           FROM call_attempts
           WHERE campaign_id = $1 AND ended_at > now() - interval '30 days'""",
        campaign_id,
        human_answered,
    )
    return AbandonedCount(abandoned=row["abandoned"], answered=row["answered"])


async def attempts_by_disposition(conn: asyncpg.Connection, campaign_id: int) -> dict[str, int]:
    """A campaign's attempts by disposition; those still open count as `live`."""
    rows = await conn.fetch(
        """SELECT coalesce(disposition, 'live') AS disposition, count(*) AS n
           FROM call_attempts WHERE campaign_id = $1 GROUP BY 1""",
        campaign_id,
    )
    return {r["disposition"]: r["n"] for r in rows}


# --- attempts


def _with_session_verdict(update: str) -> str:
    """Wrap an UPDATE of `call_attempts a` that ends attempts: it returns each one ended with
    what its outcome event needs, including the bot session's verdict (its `calls` row) if a
    session ran."""
    return f"""WITH ended AS ({update} RETURNING a.call_id, a.lead_id, a.campaign_id,
                                          a.answered_at)
               SELECT e.call_id, e.lead_id, e.campaign_id, e.answered_at, c.outcome, c.success,
                      c.transfer_reason, c.script_name, c.variant, c.grade, c.grade_reason
               FROM ended e LEFT JOIN calls c ON c.call_id = e.call_id"""


@dataclass(frozen=True)
class EndedAttemptRow:
    """An attempt just ended, with the bot session's verdict (None where no session ran)."""

    call_id: str
    lead_id: int
    campaign_id: int | None
    answered_at: datetime | None
    outcome: str | None
    success: bool | None
    transfer_reason: str | None
    script_name: str | None
    variant: str | None
    grade: str | None
    grade_reason: str | None


def _ended(rows: list[asyncpg.Record]) -> list[EndedAttemptRow]:
    return [EndedAttemptRow(**dict(r)) for r in rows]


async def end_open_attempts_of_leads(
    conn: asyncpg.Connection, lead_ids: Sequence[int], now: datetime
) -> list[EndedAttemptRow]:
    """End the leads' open attempts as errors (their owner is gone)."""
    rows = await conn.fetch(
        _with_session_verdict(
            """UPDATE call_attempts a SET ended_at = $2, disposition = 'error'
               WHERE a.lead_id = ANY($1::bigint[]) AND a.ended_at IS NULL"""
        ),
        list(lead_ids),
        now,
    )
    return _ended(rows)


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt ended, as the AMI told it."""

    call_id: str
    ended_at: datetime
    disposition: str
    answered_at: datetime | None = None
    channel: str | None = None
    uniqueid: str | None = None
    ami_reason: int | None = None
    hangup_cause: int | None = None
    hangup_cause_txt: str | None = None
    amd_status: str | None = None
    amd_cause: str | None = None


async def end_attempts(
    conn: asyncpg.Connection, ends: Sequence[AttemptEnd]
) -> list[EndedAttemptRow]:
    """Write each attempt's end; an attempt already ended is left alone (and not returned)."""
    rows = await conn.fetch(
        _with_session_verdict(
            """UPDATE call_attempts a SET ended_at = r.ended_at, disposition = r.disposition,
                  answered_at = r.answered_at, channel = r.channel, uniqueid = r.uniqueid,
                  ami_reason = r.ami_reason, hangup_cause = r.hangup_cause,
                  hangup_cause_txt = r.hangup_cause_txt, amd_status = r.amd_status,
                  amd_cause = r.amd_cause
           FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[],
                       $5::text[], $6::text[], $7::int[], $8::int[], $9::text[],
                       $10::text[], $11::text[])
                AS r(call_id, ended_at, disposition, answered_at, channel, uniqueid,
                     ami_reason, hangup_cause, hangup_cause_txt, amd_status, amd_cause)
           WHERE a.call_id = r.call_id AND a.ended_at IS NULL"""
        ),
        *[[getattr(e, f.name) for e in ends] for f in fields(AttemptEnd)],
    )
    return _ended(rows)


@dataclass(frozen=True)
class NewAttempt:
    call_id: str
    lead_id: int
    campaign_id: int
    trunk: str
    action_id: str


async def insert_attempts(
    conn: asyncpg.Connection, attempts: Sequence[NewAttempt], owner: str, started_at: datetime
) -> None:
    await conn.executemany(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner,
                                      action_id, started_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [
            (a.call_id, a.lead_id, a.campaign_id, a.trunk, owner, a.action_id, started_at)
            for a in attempts
        ],
    )


async def insert_rehearsal_attempt(
    conn: asyncpg.Connection, call_id: str, lead_id: int, campaign_id: int
) -> None:
    """A rehearsal's attempt, as the dialer leaves it before Originate."""
    await conn.execute(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
           VALUES ($1, $2, $3, 'rehearsal', 'script-test')""",
        call_id,
        lead_id,
        campaign_id,
    )


async def insert_past_calls(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """The history simulator's ended calls: (call_id, campaign_id, lead_id, script_name,
    script_version, started_at, ended_at, disposition, outcome, success, grade, grade_reason,
    transfer_reason) each."""
    await conn.executemany(
        """INSERT INTO calls (call_id, campaign_id, lead_id, script_name, script_version,
                              variant, amd_status, started_at, ended_at, disposition, outcome,
                              success, grade, grade_reason, transfer_reason, hangup_side)
           VALUES ($1, $2, $3, $4, $5, 'base', 'HUMAN', $6, $7, $8, $9, $10, $11, $12, $13,
                   'bot')""",
        rows,
    )


# -- erasure of one person (store/erasure.py runs these in its transaction, in its order)


async def scrub_calls(conn: asyncpg.Connection, call_ids: list[str]) -> int:
    """The calls keep their statistics, not their summary or what they captured."""
    return await execute_count(
        conn,
        """UPDATE calls SET summary = NULL, captured = '{}'::jsonb
                   WHERE call_id = ANY($1::text[])""",
        call_ids,
    )


async def scrub_attempt_channels(conn: asyncpg.Connection, call_ids: list[str]) -> int:
    """A channel name can hold the dialled number (Local/5550100@customers)."""
    return await execute_count(
        conn,
        "UPDATE call_attempts SET channel = NULL WHERE call_id = ANY($1::text[])",
        call_ids,
    )


# The calls lose their recording paths, queued for deletion in the same statement.
_ERASE_RECORDINGS = f"""
WITH gone AS (
    SELECT call_id, recording_path FROM calls
    WHERE call_id = ANY($1::text[]) AND recording_path IS NOT NULL FOR UPDATE),
queued AS ({queue_recordings("erasure")})
UPDATE calls c SET recording_path = NULL FROM gone WHERE c.call_id = gone.call_id
"""


async def erase_recordings(conn: asyncpg.Connection, call_ids: list[str]) -> int:
    return await execute_count(conn, _ERASE_RECORDINGS, call_ids)
