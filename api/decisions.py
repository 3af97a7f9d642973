"""From call data to decisions, for a CRM: report engagement on every channel, consent per
channel and churn labels; read a lead's churn risk and its follow-up; read the distributions.

The follow-up and the churn model are crm/followup.py and analytics/churn.py; the facts
are in store/engagement.py and store/churn.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from analytics.insights import decisions
from api.audit import audit
from api.decision_schemas import (
    ChurnLabelIn,
    ChurnLabelOut,
    ChurnLabelsIn,
    ChurnLabelsOut,
    ChurnScoreOut,
    ConsentIn,
    ConsentOut,
    DecisionsOut,
    EngagementIn,
    EngagementOut,
    FollowUpList,
    FollowUpOut,
    FollowUpsIn,
)
from api.problems import ApiProblem, body_field, invalid
from api.reports import report_window
from api.routing import ApiRequest, ApiState, Operation, Reply
from api.schemas import ReportQuery
from crm.followup import FollowUp, PlanRequest
from store.churn import Label, lead_score, upsert_labels
from store.engagement import KINDS, EngagementEvent, record_events, set_consent, usable_leads
from store.leads import lead_person


async def _person(conn: asyncpg.Connection | asyncpg.Pool, lead_id: int) -> str:
    """The lead's number (for the audit's subject); 404 for an unknown or erased lead."""
    person = await lead_person(conn, lead_id)
    if person is None:
        raise ApiProblem(404, "not_found", f"no lead with id {lead_id}")
    if person.erased_at is not None:
        raise ApiProblem(404, "not_found", f"lead {lead_id} was erased")
    return str(person.phone_e164)


async def record_engagement(req: ApiRequest) -> Reply:
    body: EngagementIn = req.body
    errors = [
        body_field(
            ["events", i, "kind"],
            f"{e.kind!r} is not an event of channel {e.channel!r} ({', '.join(KINDS[e.channel])})",
            "wrong_channel",
        )
        for i, e in enumerate(body.events)
        if e.kind not in KINDS[e.channel]
    ]
    async with req.state.pool.acquire() as conn, conn.transaction():
        known = await usable_leads(conn, [e.lead_id for e in body.events])
        errors += [
            body_field(["events", i, "lead_id"], f"no lead with id {e.lead_id}", "unknown_lead")
            for i, e in enumerate(body.events)
            if e.lead_id not in known
        ]
        if errors:
            raise invalid(sorted(errors, key=lambda e: e.pointer or ""))
        result = await record_events(
            conn,
            [
                EngagementEvent(e.lead_id, e.event_id, e.channel, e.kind, e.occurred_at,
                                e.contact_id)
                for e in body.events
            ],
        )  # fmt: skip
        await audit(
            conn,
            req.who,
            "engagement.record",
            "engagement",
            {"recorded": result.recorded, "duplicates": result.duplicates},
        )
    return Reply(EngagementOut(recorded=result.recorded, duplicates=result.duplicates))


async def record_consent(req: ApiRequest) -> Reply:
    lead_id = int(req.path["lead_id"])
    body: ConsentIn = req.body
    async with req.state.pool.acquire() as conn, conn.transaction():
        phone = await _person(conn, lead_id)
        await set_consent(conn, lead_id, body.channel, body.granted, f"api:{req.who.name}")
        detail = {"channel": body.channel, "granted": body.granted}
        await audit(conn, req.who, "lead.consent", f"lead/{lead_id}", detail, subject=phone)
    return Reply(ConsentOut(lead_id=lead_id, channel=body.channel, granted=body.granted))


async def record_churn(req: ApiRequest) -> Reply:
    lead_id = int(req.path["lead_id"])
    body: ChurnLabelIn = req.body
    seen = body.observed_at or datetime.now(UTC)
    async with req.state.pool.acquire() as conn, conn.transaction():
        phone = await _person(conn, lead_id)
        await upsert_labels(conn, [Label(lead_id, body.churned, seen)], "api")
        detail = {"churned": body.churned}
        await audit(conn, req.who, "lead.churn.label", f"lead/{lead_id}", detail, subject=phone)
    return Reply(ChurnLabelOut(lead_id=lead_id, churned=body.churned, observed_at=seen))


async def record_churn_labels(req: ApiRequest) -> Reply:
    body: ChurnLabelsIn = req.body
    now = datetime.now(UTC)
    async with req.state.pool.acquire() as conn, conn.transaction():
        known = await usable_leads(conn, [label.lead_id for label in body.labels])
        unknown = [
            body_field(["labels", i, "lead_id"], f"no lead with id {b.lead_id}", "unknown_lead")
            for i, b in enumerate(body.labels)
            if b.lead_id not in known
        ]
        if unknown:
            raise invalid(unknown)
        labels = [Label(b.lead_id, b.churned, b.observed_at or now) for b in body.labels]
        recorded = await upsert_labels(conn, labels, "api")
        await audit(conn, req.who, "churn.labels", "churn-labels", {"recorded": recorded})
    return Reply(ChurnLabelsOut(recorded=recorded))


async def churn_risk(req: ApiRequest) -> Reply:
    lead_id = int(req.path["lead_id"])
    pool = req.state.pool
    phone = await _person(pool, lead_id)
    score = await lead_score(pool, lead_id)
    await audit(pool, req.who, "lead.churn.read", f"lead/{lead_id}", subject=phone)
    if score is None:
        raise ApiProblem(404, "not_found", f"lead {lead_id} has no churn score yet")
    return Reply(
        ChurnScoreOut(
            lead_id=lead_id,
            score=score.score,
            model_version=score.model_version,
            top_features=score.top_features,  # type: ignore[arg-type]
        )
    )


def _out(plan: FollowUp) -> FollowUpOut:
    return FollowUpOut(
        lead_id=plan.lead_id,
        channel=plan.channel,  # type: ignore[arg-type]
        at=plan.at,
        template=plan.template,
        text=plan.text,
        reason=plan.reason,
        estimates=plan.estimates,
        blocked=plan.blocked,
    )


async def _plans(state: ApiState, lead_ids: list[int]) -> dict[int, FollowUp]:
    now = datetime.now(UTC)
    assert state.planner is not None  # create_app gives every state one
    return await state.planner.plan(state.pool, [PlanRequest(i, now) for i in lead_ids])


async def follow_up(req: ApiRequest) -> Reply:
    lead_id = int(req.path["lead_id"])
    phone = await _person(req.state.pool, lead_id)
    plan = (await _plans(req.state, [lead_id]))[lead_id]
    await audit(req.state.pool, req.who, "lead.follow_up.read", f"lead/{lead_id}", subject=phone)
    return Reply(_out(plan))


async def follow_ups(req: ApiRequest) -> Reply:
    body: FollowUpsIn = req.body
    ids = list(dict.fromkeys(body.lead_ids))
    known = await usable_leads(req.state.pool, ids)
    unknown = [
        body_field(["lead_ids", i], f"no lead with id {lead_id}", "unknown_lead")
        for i, lead_id in enumerate(body.lead_ids)
        if lead_id not in known
    ]
    if unknown:
        raise invalid(unknown)
    plans = await _plans(req.state, ids)
    await audit(req.state.pool, req.who, "follow_ups.read", "follow-ups", {"leads": len(ids)})
    return Reply(FollowUpList(follow_ups=[_out(plans[i]) for i in ids]))


async def decision_report(req: ApiRequest) -> Reply:
    query: ReportQuery = req.query
    window = await report_window(req)
    found = await decisions(req.state.pool, window, query.campaign)
    return Reply(
        DecisionsOut(
            since=window.since, until=window.until, campaign=query.campaign, **found.as_json()
        )
    )


OPERATIONS = [
    Operation(
        "POST",
        "/v1/engagement",
        "recordEngagement",
        "Report engagement on any channel: SMS delivered or replied to, push opened, call answered",
        "decisions",
        record_engagement,
        EngagementOut,
        scope="engagement:write",
        body=EngagementIn,
        description="Up to 1,000 events, all recorded or none. An event whose event_id the "
        "lead already has is counted once (`duplicates`). The follow-up planner learns each "
        "person's response rate per channel and hour from these and from outdial's own calls.",
    ),
    Operation(
        "POST",
        "/v1/leads/{lead_id}/consents",
        "recordConsent",
        "Record the lead's consent (or its withdrawal) to a channel",
        "decisions",
        record_consent,
        ConsentOut,
        scope="leads:write",
        body=ConsentIn,
        problems=(404,),
        description="SMS and push follow-ups need it (`analytics.channels.require_consent`); "
        "for calls it sets the lead's `consent`. Audited.",
    ),
    Operation(
        "POST",
        "/v1/leads/{lead_id}/churn",
        "recordChurn",
        "Post back whether the lead's customer left (the churn model's label)",
        "decisions",
        record_churn,
        ChurnLabelOut,
        scope="engagement:write",
        body=ChurnLabelIn,
        problems=(404,),
        description="A later label for the same lead replaces the earlier. `outdial models "
        "train churn` learns from these; the latest ones are its time-based hold-out.",
    ),
    Operation(
        "POST",
        "/v1/churn-labels",
        "recordChurnLabels",
        "Post back churn labels of up to 1,000 leads",
        "decisions",
        record_churn_labels,
        ChurnLabelsOut,
        scope="engagement:write",
        body=ChurnLabelsIn,
        description="As `POST /v1/leads/{lead_id}/churn` for many leads; all or none.",
    ),
    Operation(
        "GET",
        "/v1/leads/{lead_id}/churn",
        "churnRisk",
        "The lead's churn risk and the features that raise it",
        "decisions",
        churn_risk,
        ChurnScoreOut,
        scope="engagement:read",
        problems=(404,),
        description="404 until a churn model has scored the lead. Audited.",
    ),
    Operation(
        "GET",
        "/v1/leads/{lead_id}/follow-up",
        "followUp",
        "Which channel reaches the lead best now, when, with which message, and why",
        "decisions",
        follow_up,
        FollowUpOut,
        scope="engagement:read",
        problems=(404,),
        description="The same planner as the `follow_up` of each call's outcome event: only "
        "channels the person's do-not-contact lists and consents allow. Audited.",
    ),
    Operation(
        "POST",
        "/v1/follow-ups",
        "followUps",
        "The follow-ups of up to 500 leads",
        "decisions",
        follow_ups,
        FollowUpList,
        scope="engagement:read",
        body=FollowUpsIn,
    ),
    Operation(
        "GET",
        "/v1/reports/decisions",
        "decisionsReport",
        "Grades, churn risk, follow-ups and engagement per channel",
        "reports",
        decision_report,
        DecisionsOut,
        scope="reports:read",
        query=ReportQuery,
        description="Graded calls per script, variant and grade and follow-ups per channel "
        "for calls in [since, until); engagement per channel in the window; the churn-risk "
        "distribution of the leads scored now.",
    ),
]
