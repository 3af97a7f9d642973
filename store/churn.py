"""Churn risk in PostgreSQL: labels, per-lead call features, versioned models and scores.

Features describe a lead's person (every lead with its number) as of a moment: only calls and
attempts that started before it count, so a model trained on labels seen at `observed_at` never
learns from what happened after.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from store.db import execute_count

_HUMAN = "('answered', 'completed', 'transferred', 'abandoned')"
_GRADE_SCORE = """CASE c.grade WHEN 'A' THEN 5 WHEN 'B' THEN 4 WHEN 'C' THEN 3 WHEN 'D' THEN 2
                                WHEN 'E' THEN 1 WHEN 'F' THEN 0 END"""


@dataclass(frozen=True)
class Label:
    lead_id: int
    churned: bool
    observed_at: datetime


async def upsert_labels(conn: asyncpg.Connection, labels: Sequence[Label], source: str) -> int:
    """Record labels (a later one for the same lead, in the batch or stored, replaces it);
    returns how many leads got one."""
    labels = list({label.lead_id: label for label in labels}.values())
    await conn.execute(
        """INSERT INTO churn_labels (lead_id, churned, observed_at, source)
           SELECT t.lead_id, t.churned, t.observed_at, $4
           FROM unnest($1::bigint[], $2::boolean[], $3::timestamptz[])
                AS t(lead_id, churned, observed_at)
           ON CONFLICT (lead_id) DO UPDATE
           SET churned = EXCLUDED.churned, observed_at = EXCLUDED.observed_at,
               source = EXCLUDED.source, recorded_at = now()""",
        [label.lead_id for label in labels],
        [label.churned for label in labels],
        [label.observed_at for label in labels],
        source,
    )
    return len(labels)


async def labels(conn: asyncpg.Connection | asyncpg.Pool) -> list[Label]:
    """Every label of a lead not erased, oldest observation first."""
    rows = await conn.fetch(
        """SELECT b.lead_id, b.churned, b.observed_at FROM churn_labels b
           JOIN leads l ON l.id = b.lead_id
           WHERE l.erased_at IS NULL ORDER BY b.observed_at, b.lead_id"""
    )
    return [Label(r["lead_id"], r["churned"], r["observed_at"]) for r in rows]


async def leads_by_external_id(
    conn: asyncpg.Connection | asyncpg.Pool, campaign: str, external_ids: Sequence[str]
) -> dict[str, int]:
    rows = await conn.fetch(
        """SELECT l.external_id, l.id FROM leads l JOIN campaigns c ON c.id = l.campaign_id
           WHERE c.name = $1 AND l.external_id = ANY($2::text[]) AND l.erased_at IS NULL""",
        campaign,
        list(external_ids),
    )
    return {r["external_id"]: r["id"] for r in rows}


_FEATURES = f"""
WITH target AS (
    SELECT t.lead_id, t.as_of, l.phone_e164, l.fields
    FROM unnest($1::bigint[], $2::timestamptz[]) AS t(lead_id, as_of)
    JOIN leads l ON l.id = t.lead_id),
members AS (
    SELECT t.lead_id, t.as_of, m.id AS member
    FROM target t JOIN leads m ON m.phone_e164 = t.phone_e164),
attempts AS (
    SELECT mb.lead_id, count(*) AS attempts,
           count(*) FILTER (WHERE a.disposition IN {_HUMAN}) AS answered,
           max(a.started_at) AS last_contact
    FROM members mb JOIN call_attempts a ON a.lead_id = mb.member AND a.started_at < mb.as_of
    GROUP BY mb.lead_id),
talks AS (
    SELECT mb.lead_id, c.call_id, c.success, c.disposition, c.outcome,
           {_GRADE_SCORE} AS grade_score,
           extract(epoch FROM c.ended_at - c.started_at)::float8 AS duration_s
    FROM members mb JOIN calls c ON c.lead_id = mb.member AND c.started_at < mb.as_of
    WHERE c.ended_at IS NOT NULL),
call_facts AS (
    SELECT lead_id, count(*) AS calls,
           avg(coalesce(success, false)::int) AS success_share,
           avg((disposition = 'transferred')::int) AS transfer_share,
           bool_or(outcome = 'opt_out') AS opted_out,
           avg(grade_score) AS grade_score,
           sum(duration_s) AS talk_s
    FROM talks GROUP BY lead_id),
turn_facts AS (
    SELECT t.lead_id,
           count(*) FILTER (WHERE u.intent = 'repeat') AS repeats,
           count(*) FILTER (WHERE u.intent IS NULL AND u.dtmf IS NULL) AS no_matches,
           count(*) FILTER (WHERE u.intent = ANY($3::text[])) AS objections,
           max(u.agitation) AS agitation_peak,
           sum(greatest(0, (u.timings ->> 'speech_end')::float8
                           - (u.timings ->> 'speech_start')::float8)) AS speech_s
    FROM talks t JOIN turns u ON u.call_id = t.call_id AND u.speaker = 'customer'
    GROUP BY t.lead_id)
SELECT t.lead_id, t.as_of, t.fields,
       coalesce(a.attempts, 0) AS attempts, coalesce(a.answered, 0) AS answered,
       a.last_contact, coalesce(cf.calls, 0) AS calls, cf.success_share, cf.transfer_share,
       coalesce(cf.opted_out, false) AS opted_out, cf.grade_score, cf.talk_s,
       coalesce(tf.repeats, 0) AS repeats, coalesce(tf.no_matches, 0) AS no_matches,
       coalesce(tf.objections, 0) AS objections, tf.agitation_peak, tf.speech_s
FROM target t
LEFT JOIN attempts a USING (lead_id)
LEFT JOIN call_facts cf USING (lead_id)
LEFT JOIN turn_facts tf USING (lead_id)
"""


async def feature_rows(
    conn: asyncpg.Connection | asyncpg.Pool,
    lead_ids: Sequence[int],
    as_of: Sequence[datetime],
    objection_intents: Sequence[str],
) -> list[dict[str, Any]]:
    """Raw facts per lead as of its moment, in the order of `lead_ids` (analytics/churn.py
    turns them into the feature vector)."""
    rows = await conn.fetch(_FEATURES, list(lead_ids), list(as_of), list(objection_intents))
    by_lead = {r["lead_id"]: dict(r) for r in rows}
    return [by_lead[i] for i in lead_ids if i in by_lead]


@dataclass(frozen=True)
class StoredModel:
    version: int
    trained_at: datetime
    features: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    training: dict[str, Any]


async def save_model(
    conn: asyncpg.Connection | asyncpg.Pool,
    features: Sequence[str],
    params: dict[str, Any],
    metrics: dict[str, Any],
    training: dict[str, Any],
) -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO churn_models (features, params, metrics, training)
               VALUES ($1, $2, $3, $4) RETURNING version""",
            list(features),
            params,
            metrics,
            training,
        )
    )


async def latest_model(conn: asyncpg.Connection | asyncpg.Pool) -> StoredModel | None:
    row = await conn.fetchrow("SELECT * FROM churn_models ORDER BY version DESC LIMIT 1")
    return None if row is None else StoredModel(**dict(row))


@dataclass(frozen=True)
class ScoreRow:
    lead_id: int
    model_version: int
    score: float
    top_features: list[dict[str, Any]]


async def save_scores(conn: asyncpg.Connection | asyncpg.Pool, scores: Sequence[ScoreRow]) -> None:
    # The features go as JSON text: a list of lists would be read as a 2-D array.
    await conn.execute(
        """INSERT INTO churn_scores (lead_id, model_version, score, top_features)
           SELECT t.lead_id, t.version, t.score, t.top::jsonb
           FROM unnest($1::bigint[], $2::bigint[], $3::real[], $4::text[])
                AS t(lead_id, version, score, top)
           ON CONFLICT (lead_id) DO UPDATE
           SET model_version = EXCLUDED.model_version, score = EXCLUDED.score,
               top_features = EXCLUDED.top_features, scored_at = now()""",
        [s.lead_id for s in scores],
        [s.model_version for s in scores],
        [s.score for s in scores],
        [json.dumps(s.top_features) for s in scores],
    )


async def lead_score(conn: asyncpg.Connection | asyncpg.Pool, lead_id: int) -> ScoreRow | None:
    row = await conn.fetchrow(
        "SELECT lead_id, model_version, score, top_features FROM churn_scores WHERE lead_id = $1",
        lead_id,
    )
    return None if row is None else ScoreRow(**dict(row))


async def waiting_leads(
    conn: asyncpg.Connection | asyncpg.Pool,
) -> list[tuple[int, int, dict[str, Any]]]:
    """(lead id, campaign id, fields) of every lead an active campaign still has to dial."""
    rows = await conn.fetch(
        """SELECT l.id, l.campaign_id, l.fields FROM leads l
           JOIN campaigns c ON c.id = l.campaign_id
           WHERE c.status = 'active' AND l.status = 'pending' AND l.erased_at IS NULL
           ORDER BY l.campaign_id, l.id"""
    )
    return [(r["id"], r["campaign_id"], dict(r["fields"] or {})) for r in rows]


async def churn_scores_of(
    conn: asyncpg.Connection | asyncpg.Pool, lead_ids: Sequence[int]
) -> dict[int, float]:
    rows = await conn.fetch(
        "SELECT lead_id, score FROM churn_scores WHERE lead_id = ANY($1::bigint[])", list(lead_ids)
    )
    return {r["lead_id"]: float(r["score"]) for r in rows}


async def latest_model_version(conn: asyncpg.Connection | asyncpg.Pool) -> int | None:
    version: int | None = await conn.fetchval("SELECT max(version) FROM churn_models")
    return version


async def erase_of_leads(conn: asyncpg.Connection, lead_ids: list[int]) -> int:
    """Erasure: the leads' churn labels, then their scores, go; rows deleted in all."""
    labels = await execute_count(
        conn, "DELETE FROM churn_labels WHERE lead_id = ANY($1::bigint[])", lead_ids
    )
    scores = await execute_count(
        conn, "DELETE FROM churn_scores WHERE lead_id = ANY($1::bigint[])", lead_ids
    )
    return labels + scores
