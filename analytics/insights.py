"""From call data to decisions, in numbers: the grade distribution per script and variant, the
churn-risk distribution, the follow-ups chosen per channel and the engagement per channel
(what `outdial report`, the API and the demo show; Grafana reads the same SQL)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from analytics.evaluation import Window
from store import insights as db


@dataclass(frozen=True)
class GradeCount:
    script_name: str | None
    variant: str | None
    grade: str
    calls: int


@dataclass(frozen=True)
class ChurnBand:
    band: int  # 0: a risk under 10 %, ..., 9: 90 % and over
    leads: int

    @property
    def label(self) -> str:
        return f"{self.band * 10}-{self.band * 10 + 10}%"


@dataclass(frozen=True)
class FollowUpCount:
    channel: str | None  # None: no channel was allowed
    follow_ups: int


@dataclass(frozen=True)
class ChannelEngagement:
    channel: str
    contacts: int
    responses: int
    response_rate: float | None


@dataclass(frozen=True)
class Decisions:
    grades: list[GradeCount]
    churn: list[ChurnBand]
    follow_ups: list[FollowUpCount]
    engagement: list[ChannelEngagement]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def decisions(conn: db.Conn, window: Window, campaign: str | None = None) -> Decisions:
    """Grades, follow-ups and engagement in the window; churn risk as scored now."""
    since, until = window.since, window.until
    return Decisions(
        grades=[GradeCount(**dict(r)) for r in await db.grade_rows(conn, since, until, campaign)],
        churn=[ChurnBand(**dict(r)) for r in await db.churn_rows(conn, campaign)],
        follow_ups=[
            FollowUpCount(**dict(r)) for r in await db.follow_up_rows(conn, since, until, campaign)
        ],
        engagement=[
            ChannelEngagement(**dict(r))
            for r in await db.engagement_rows(conn, since, until, campaign)
        ],
    )
