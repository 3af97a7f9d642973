"""The script effectiveness report (`analytics.evaluation`), as `outdial report` shows it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from analytics.evaluation import Window, evaluate, parse_span
from api.problems import FieldError, invalid
from api.routing import ApiRequest, Operation, Reply
from api.schemas import ReportOut, ReportQuery, VariantStatsOut
from store.campaigns import campaign_exists

DEFAULT_SPAN = timedelta(hours=24)


async def report_window(req: ApiRequest) -> Window:
    """The report's window from `since` and `until` (default: the last 24 hours); 422 for an
    empty window or an unknown campaign."""
    query: ReportQuery = req.query
    until = query.until or datetime.now(UTC)
    if isinstance(query.since, str):  # a span, as the CLI's --since takes it
        since = until - parse_span(query.since)
    else:
        since = query.since or until - DEFAULT_SPAN
    if since >= until:
        raise invalid(
            [FieldError(detail="since must be before until", code="bad_window", parameter="since")]
        )
    if query.campaign is not None and not await campaign_exists(req.state.pool, query.campaign):
        raise invalid([FieldError(detail="no such campaign", code="unknown", parameter="campaign")])
    return Window(since=since, until=until)


async def effectiveness(req: ApiRequest) -> Reply:
    query: ReportQuery = req.query
    window = await report_window(req)
    stats = await evaluate(req.state.pool, window, query.campaign)
    return Reply(
        ReportOut(
            since=window.since,
            until=window.until,
            campaign=query.campaign,
            variants=[VariantStatsOut(**asdict(s)) for s in stats],
        )
    )


OPERATIONS = [
    Operation(
        "GET",
        "/v1/reports/effectiveness",
        "effectivenessReport",
        "Script and variant effectiveness over a time window",
        "reports",
        effectiveness,
        ReportOut,
        scope="reports:read",
        query=ReportQuery,
        description="Success, transfer and opt-out rates, duration and compliance hits per "
        "script and variant for calls started in [since, until).",
    ),
]
