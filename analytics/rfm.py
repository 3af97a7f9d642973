"""RFM lead scoring: recency, frequency and monetary value from the lead's imported fields.

Each measure is scored 1..bins by its quantile within the campaign (bins=5: quintiles; the most
recent, most frequent, biggest spenders get 5). Ties share a score. A lead without a usable value
for a measure scores 0 on it, below every lead that has one. The lead's priority, which orders the
dialer's lease queue, is R*weight_r + F*weight_f + M*weight_m (by default the RFM cell, e.g. 545).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

from analytics.settings import RfmSettings
from store.churn import churn_scores_of
from store.leads import (
    CampaignNotFoundError,
    find_campaign,
    lock_lead_fields,
    set_priorities,
)

MEASURES = ("recency", "frequency", "monetary")


class ScoringError(ValueError):
    """The campaign cannot be scored (unknown campaign, ...)."""


@dataclass(frozen=True)
class LeadScore:
    lead_id: int
    recency: int
    frequency: int
    monetary: int
    priority: int


@dataclass(frozen=True)
class ScoreSummary:
    campaign: str
    leads: int
    # Leads whose field was absent or unreadable, per measure.
    missing: dict[str, int] = field(default_factory=dict)
    # How many leads got each priority.
    priorities: dict[int, int] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _days_since(value: Any, now: datetime) -> float | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        # A plain date (or naive date-time) from a CSV is read as UTC.
        moment = moment.replace(tzinfo=UTC)
    return (now - moment).total_seconds() / 86400.0


def measures(fields: Mapping[str, Any], settings: RfmSettings, now: datetime) -> list[float | None]:
    """The lead's (recency, frequency, monetary), each oriented so that bigger is better."""
    raw_recency = fields.get(settings.recency_field)
    days = (
        _days_since(raw_recency, now) if settings.recency_kind == "date" else _number(raw_recency)
    )
    recency = None if days is None else -days  # fewer days since the last purchase is better
    return [
        recency,
        _number(fields.get(settings.frequency_field)),
        _number(fields.get(settings.monetary_field)),
    ]


def quantile_scores(values: Sequence[float | None], bins: int) -> list[int]:
    """1..bins by rank among the present values (ties share the lower score); None scores 0."""
    present = [i for i, v in enumerate(values) if v is not None]
    scores = [0] * len(values)
    if not present:
        return scores
    column = np.array([values[i] for i in present], dtype=float)
    # Rank = 1 + how many values are smaller, so equal values share the lower rank.
    ranks = np.searchsorted(np.sort(column), column, side="left") + 1
    n = len(present)
    for i, rank in zip(present, ranks, strict=True):
        scores[i] = 1 + int((rank - 1) * bins // n)
    return scores


def score_leads(
    leads: Sequence[tuple[int, Mapping[str, Any]]], settings: RfmSettings, now: datetime
) -> list[LeadScore]:
    """Pure scoring of one campaign's leads."""
    triples = [measures(fields, settings, now) for _, fields in leads]
    r, f, m = (quantile_scores([t[k] for t in triples], settings.bins) for k in range(3))
    return [
        LeadScore(
            lead_id=lead_id,
            recency=r[i],
            frequency=f[i],
            monetary=m[i],
            priority=r[i] * settings.weight_r + f[i] * settings.weight_f + m[i] * settings.weight_m,
        )
        for i, (lead_id, _) in enumerate(leads)
    ]


def combined_priority(rfm_priority: int, churn_risk: float, churn_weight: int) -> int:
    """The lease priority: the RFM priority plus `churn_weight` points for a churn risk of 1
    (customers about to leave are called first)."""
    return rfm_priority + round(churn_weight * churn_risk)


async def score_campaign(
    pool: asyncpg.Pool,
    campaign: str,
    settings: RfmSettings,
    *,
    now: datetime | None = None,
    churn_weight: int = 0,
) -> ScoreSummary:
    """Score every lead of the campaign and store the result in leads.priority (plus the
    churn risk's points where a lead has a churn score)."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        try:
            campaign_id = await find_campaign(conn, campaign)
        except CampaignNotFoundError as exc:
            raise ScoringError(str(exc)) from exc
        # Lock the rows: an import running beside us must not get half-old priorities.
        rows = await lock_lead_fields(conn, campaign_id)
        leads = [(lead_id, fields if isinstance(fields, dict) else {}) for lead_id, fields in rows]
        scores = score_leads(leads, settings, now)
        risks = await churn_scores_of(conn, [s.lead_id for s in scores]) if churn_weight else {}
        scores = [
            replace(s, priority=combined_priority(s.priority, risks.get(s.lead_id, 0.0),
                                                  churn_weight))
            for s in scores
        ]  # fmt: skip
        await set_priorities(conn, [(s.lead_id, s.priority) for s in scores], pending_only=False)
    missing = {name: sum(1 for s in scores if getattr(s, name) == 0) for name in MEASURES}
    return ScoreSummary(
        campaign=campaign,
        leads=len(scores),
        missing=missing,
        priorities=dict(sorted(Counter(s.priority for s in scores).items(), reverse=True)),
    )
