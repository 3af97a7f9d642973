"""Lead leasing: several dialers share one database; a lead is held by at most one of them.

A lease is `status = 'leased'` with an owner and an expiry. `FOR UPDATE SKIP LOCKED` lets
concurrent dialers pick disjoint leads without waiting on each other; an owner that dies
stops renewing, and its leases return to `pending` once they expire. Every time is passed in
(never `now()`), so the clock is the caller's and tests can move it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from compliance.gates import BlockReason, LeadFacts, Verdict, evaluate, lead_zone, local_date
from dialer import metrics
from dialer.campaigns import CallingPolicy
from dialer.dispositions import Disposition, NextStep
from store.calls import (
    AttemptEnd,
    EndedAttemptRow,
    NewAttempt,
    end_attempts,
    end_open_attempts_of_leads,
    insert_attempts,
)
from store.compliance_events import DialerBlock, record_dialer_blocks
from store.leads import (
    AttemptCount,
    LeadHold,
    LeadSettlement,
    LeaseRow,
    count_attempts,
    expire_leases,
    hold_leads,
    lease_pending,
    lock_leased,
    settle_leads,
)
from store.outbox import enqueue_outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndedAttempt:
    """An attempt as it ends, for the outcome advisor (what comes after the call)."""

    call_id: str
    lead_id: int
    campaign_id: int | None
    disposition: str
    answered: bool
    outcome: str | None
    grade: str | None
    ended_at: datetime
    next_step: NextStep


@dataclass(frozen=True)
class Advice:
    """What the advisor adds to an ended attempt: top-level keys of its outcome event (the
    follow-up, the churn risk) and, when it says so, another next step for the lead (for
    example no more call attempts, because the lead answers messages and not calls)."""

    event: Mapping[str, Any]
    next_step: NextStep | None = None
    block_reason: str | None = None


# Called in finish_attempts' transaction with every attempt it ended (the daemon wires
# crm.followup.OutcomeAdvisor); returns advice by call id.
OutcomeAdvisor = Callable[
    [asyncpg.Connection, Sequence[EndedAttempt]], Awaitable[Mapping[str, Advice]]
]


async def _enqueue_outcome(
    conn: asyncpg.Connection,
    row: EndedAttemptRow,
    disposition: str,
    step: NextStep,
    ended_at: datetime,
    advice: Advice | None = None,
) -> None:
    """The CRM's event for one ended attempt, written in the caller's transaction."""
    await enqueue_outcome(
        conn,
        call_id=row.call_id,
        lead_id=row.lead_id,
        disposition=disposition,
        outcome=row.outcome,
        success=row.success,
        details={
            "answered": row.answered_at is not None,
            "transfer_reason": row.transfer_reason,
            "script": row.script_name,
            "variant": row.variant,
            # Whether the CRM should expect another attempt for this lead, and from when.
            "lead_done": step.done,
            "retry_at": step.retry_at.isoformat() if step.retry_at else None,
        },
        occurred_at=ended_at,
        extra={
            "grade": row.grade,
            "grade_reason": row.grade_reason,
            **(advice.event if advice else {}),
        },
    )


@dataclass(frozen=True)
class Lead:
    id: int
    campaign_id: int
    phone_e164: str
    facts: LeadFacts


def _lead(row: LeaseRow) -> Lead:
    facts = LeadFacts(
        timezone=row.timezone,
        consent=row.consent,
        attempts=row.attempts,
        attempts_day=row.attempts_day,
        attempts_today=row.attempts_today,
        dnc_global=row.dnc_global,
        dnc_campaign=row.dnc_campaign,
        missing_fields=row.missing_fields,
    )
    return Lead(row.id, row.campaign_id, row.phone_e164, facts)


async def reclaim_expired(conn: asyncpg.Connection, now: datetime) -> list[int]:
    """Return expired leases to `pending`; their open attempts (owner gone) end as errors."""
    async with conn.transaction():
        lead_ids = await expire_leases(conn, now)
        if lead_ids:
            ended = await end_open_attempts_of_leads(conn, lead_ids, now)
            # The lead is pending again at once: the CRM may hear of another attempt.
            for row in ended:
                await _enqueue_outcome(conn, row, str(Disposition.ERROR), NextStep(False), now)
    if lead_ids:
        log.warning("reclaimed %d expired lead leases", len(lead_ids))
    return lead_ids


async def lease(
    conn: asyncpg.Connection,
    campaign_id: int,
    owner: str,
    limit: int,
    now: datetime,
    lease_s: float,
) -> list[Lead]:
    """Lease up to `limit` due pending leads of a campaign (highest priority, oldest first)."""
    rows = await lease_pending(conn, campaign_id, owner, limit, now, lease_s)
    return [_lead(r) for r in rows]


@dataclass(frozen=True)
class Blocked:
    lead: Lead
    verdict: Verdict


async def record_blocks(
    conn: asyncpg.Connection, campaign_name: str, blocked: Sequence[Blocked], now: datetime
) -> None:
    """Blocked leads record why: ended for good (`blocked`) or postponed (`pending` later)."""
    if not blocked:
        return
    holds = [
        LeadHold(b.lead.id, b.verdict.permanent, b.verdict.label, b.verdict.not_before)
        for b in blocked
    ]
    await hold_leads(conn, holds, now)
    events = [
        DialerBlock(
            lead_id=b.lead.id,
            campaign_id=b.lead.campaign_id,
            category=b.verdict.reason,
            action="blocked" if b.verdict.permanent else "postponed",
            detail=_block_detail(b.verdict),
        )
        for b in blocked
    ]
    await record_dialer_blocks(conn, events, now)
    for b in blocked:
        metrics.BLOCKED.labels(campaign_name, str(b.verdict.reason)).inc()


def _block_detail(verdict: Verdict) -> dict[str, str | None]:
    detail: dict[str, str | None] = {
        "not_before": verdict.not_before.isoformat() if verdict.not_before else None
    }
    if verdict.reason is BlockReason.MISSING_FIELD:
        detail["field"] = verdict.detail
    return detail


def split_by_gates(
    leads: Sequence[Lead], policy: CallingPolicy, now: datetime
) -> tuple[list[Lead], list[Blocked]]:
    allowed: list[Lead] = []
    blocked: list[Blocked] = []
    for lead in leads:
        verdict = evaluate(lead.facts, policy, now)
        if verdict.allowed:
            allowed.append(lead)
        else:
            blocked.append(Blocked(lead, verdict))
    return allowed, blocked


async def lease_eligible(
    pool: asyncpg.Pool,
    campaign_id: int,
    campaign_name: str,
    policy: CallingPolicy,
    owner: str,
    limit: int,
    now: datetime,
    lease_s: float,
) -> list[Lead]:
    """Lease leads and apply the gates: blocked ones are recorded and let go, the rest kept."""
    async with pool.acquire() as conn, conn.transaction():
        leased = await lease(conn, campaign_id, owner, limit, now, lease_s)
        allowed, blocked = split_by_gates(leased, policy, now)
        await record_blocks(conn, campaign_name, blocked, now)
    return allowed


@dataclass(frozen=True)
class AttemptRequest:
    lead: Lead
    call_id: str
    trunk: str
    action_id: str


async def claim_attempts(
    pool: asyncpg.Pool,
    campaign_name: str,
    requests: Sequence[AttemptRequest],
    policy: CallingPolicy,
    owner: str,
    now: datetime,
    lease_s: float,
) -> list[AttemptRequest]:
    """Just before Originate: re-check the gates on fresh rows, count the attempt, write it.

    Returns the requests that may be dialled. Leads whose lease was lost are dropped; leads the
    gates now stop are recorded as blocked and released.
    """
    by_id = {r.lead.id: r for r in requests}
    async with pool.acquire() as conn, conn.transaction():
        rows = await lock_leased(conn, list(by_id), owner)
        fresh = [_lead(r) for r in rows]
        lost = len(by_id) - len(fresh)
        if lost:
            log.warning("%d leases were lost before Originate; those leads are skipped", lost)
        allowed, blocked = split_by_gates(fresh, policy, now)
        await record_blocks(conn, campaign_name, blocked, now)
        claimed = [by_id[lead.id] for lead in allowed]
        await count_attempts(conn, [_day_counters(lead, now) for lead in allowed], now, lease_s)
        new = [
            NewAttempt(r.call_id, r.lead.id, r.lead.campaign_id, r.trunk, r.action_id)
            for r in claimed
        ]
        await insert_attempts(conn, new, owner, now)
    return claimed


def _day_counters(lead: Lead, now: datetime) -> AttemptCount:
    zone = lead_zone(lead.facts.timezone)
    assert zone is not None  # the gates block a lead with an unknown zone
    today = local_date(now, zone)
    same_day = lead.facts.attempts_day == today
    return AttemptCount(lead.id, today, lead.facts.attempts_today + 1 if same_day else 1)


@dataclass(frozen=True)
class AttemptResult:
    call_id: str
    disposition: Disposition
    next_step: NextStep
    ended_at: datetime
    answered_at: datetime | None = None
    channel: str | None = None
    uniqueid: str | None = None
    ami_reason: int | None = None
    hangup_cause: int | None = None
    hangup_cause_txt: str | None = None
    amd_status: str | None = None
    amd_cause: str | None = None


async def finish_attempts(
    conn: asyncpg.Connection,
    owner: str,
    results: Sequence[AttemptResult],
    advisor: OutcomeAdvisor | None = None,
) -> int:
    """Write each attempt's end, its CRM outcome event, and move its lead on, in one
    transaction; an attempt already ended is left alone (and gets no second event). The
    `advisor`, if any, adds the follow-up to each event and may change the lead's next step."""
    async with conn.transaction():
        ended = await end_attempts(conn, [_attempt_end(r) for r in results])
        ended_by_call = {r.call_id: r for r in ended}
        lead_of = {call_id: r.lead_id for call_id, r in ended_by_call.items()}
        advice = await _advise(conn, advisor, results, ended_by_call)
        steps: dict[str, tuple[NextStep, str | None]] = {}
        for result in results:
            if (row := ended_by_call.get(result.call_id)) is not None:
                given = advice.get(result.call_id)
                step = given.next_step if given and given.next_step else result.next_step
                steps[result.call_id] = (step, given.block_reason if given else None)
                await _enqueue_outcome(
                    conn, row, str(result.disposition), step, result.ended_at, given
                )
        settlements = [
            LeadSettlement(
                lead_id=lead_of[r.call_id],
                done=steps[r.call_id][0].done,
                retry_at=steps[r.call_id][0].retry_at,
                disposition=r.disposition,
                ended_at=r.ended_at,
                block_reason=steps[r.call_id][1],
            )
            for r in results
            if r.call_id in lead_of
        ]
        await settle_leads(conn, owner, settlements)
    return len(lead_of)


async def _advise(
    conn: asyncpg.Connection,
    advisor: OutcomeAdvisor | None,
    results: Sequence[AttemptResult],
    ended: Mapping[str, EndedAttemptRow],
) -> Mapping[str, Advice]:
    if advisor is None or not ended:
        return {}
    attempts = [
        EndedAttempt(
            call_id=r.call_id,
            lead_id=row.lead_id,
            campaign_id=row.campaign_id,
            disposition=str(r.disposition),
            answered=row.answered_at is not None,
            outcome=row.outcome,
            grade=row.grade,
            ended_at=r.ended_at,
            next_step=r.next_step,
        )
        for r in results
        if (row := ended.get(r.call_id)) is not None
    ]
    return await advisor(conn, attempts)


def _attempt_end(r: AttemptResult) -> AttemptEnd:
    # AttemptEnd's fields are AttemptResult's, with the disposition as its text.
    end = {f.name: getattr(r, f.name) for f in fields(AttemptEnd)}
    return AttemptEnd(**{**end, "disposition": str(r.disposition)})
