"""Property tests: whatever the zone, window, days, holidays and clock, no lead outside its
window, on a DNC list or over its attempt caps is ever let through (gates and leasing query)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance import CallingWindow
from compliance.gates import BlockReason, LeadFacts, evaluate
from dialer.campaigns import CallingPolicy
from dialer.leasing import AttemptRequest, claim_attempts, lease_eligible

ZONES = [
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Europe/London",
    "Africa/Casablanca",
]

clocks = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@st.composite
def policies(draw: st.DrawFn) -> CallingPolicy:
    start = draw(st.integers(0, 23 * 60 - 1))
    end = draw(st.integers(start + 1, 24 * 60 - 1))
    holidays = draw(st.frozensets(st.dates(date(2024, 1, 1), date(2030, 12, 31)), max_size=30))
    return CallingPolicy(
        window=CallingWindow(time(start // 60, start % 60), time(end // 60, end % 60)),
        days=draw(st.frozensets(st.integers(0, 6), min_size=1)),
        holidays=holidays,
        max_attempts=draw(st.integers(1, 6)),
        max_attempts_per_day=draw(st.integers(1, 3)),
        require_consent=draw(st.booleans()),
    )


@st.composite
def facts(draw: st.DrawFn) -> LeadFacts:
    return LeadFacts(
        timezone=draw(st.sampled_from(ZONES)),
        consent=draw(st.booleans()),
        attempts=draw(st.integers(0, 7)),
        attempts_day=draw(st.none() | st.dates(date(2024, 1, 1), date(2030, 12, 31))),
        attempts_today=draw(st.integers(0, 4)),
        dnc_global=draw(st.booleans()),
        dnc_campaign=draw(st.booleans()),
    )


def lawful(f: LeadFacts, policy: CallingPolicy, now: datetime) -> bool:
    """The rules written out plainly: the oracle the gates are checked against."""
    local = now.astimezone(ZoneInfo(f.timezone))
    in_window = policy.window.start <= local.time().replace(tzinfo=None) < policy.window.end
    calls_today = f.attempts_today if f.attempts_day == local.date() else 0
    return (
        in_window
        and local.weekday() in policy.days
        and local.date() not in policy.holidays
        and not f.dnc_global
        and not f.dnc_campaign
        and (f.consent or not policy.require_consent)
        and f.attempts < policy.max_attempts
        and calls_today < policy.max_attempts_per_day
    )


@settings(max_examples=400, deadline=None)
@given(facts(), policies(), clocks)
def test_gates_allow_exactly_the_lawful_leads(
    f: LeadFacts, policy: CallingPolicy, now: datetime
) -> None:
    verdict = evaluate(f, policy, now)
    assert verdict.allowed == lawful(f, policy, now)
    if verdict.reason in (BlockReason.OUTSIDE_WINDOW, BlockReason.MAX_ATTEMPTS_TODAY):
        # A postponed lead comes back later, at a time its window is open.
        assert verdict.not_before is not None and verdict.not_before >= now
        if verdict.not_before - now < timedelta(days=14):
            assert window_open(f.timezone, policy, verdict.not_before)
        if verdict.reason == BlockReason.MAX_ATTEMPTS_TODAY:
            zone = ZoneInfo(f.timezone)
            assert verdict.not_before.astimezone(zone).date() > now.astimezone(zone).date()


def window_open(tz: str, policy: CallingPolicy, when: datetime) -> bool:
    local = when.astimezone(ZoneInfo(tz))
    return (
        policy.window.start <= local.time().replace(tzinfo=None) < policy.window.end
        and local.weekday() in policy.days
        and local.date() not in policy.holidays
    )


_campaigns = itertools.count(1)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    leads=st.lists(facts(), min_size=1, max_size=12),
    policy=policies(),
    now=clocks,
)
async def test_leasing_and_claiming_only_release_lawful_leads(
    db_pool: asyncpg.Pool, leads: list[LeadFacts], policy: CallingPolicy, now: datetime
) -> None:
    name = f"prop{next(_campaigns)}"
    campaign_id = await db_pool.fetchval(
        "INSERT INTO campaigns (name, script_name) VALUES ($1, 's') RETURNING id", name
    )
    by_id: dict[int, LeadFacts] = {}
    for i, f in enumerate(leads):
        number = f"+1202555{i:04d}"
        lead_id = await db_pool.fetchval(
            """INSERT INTO leads (campaign_id, phone_e164, timezone, consent, attempts,
                                  attempts_day, attempts_today, next_attempt_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            campaign_id,
            number,
            f.timezone,
            f.consent,
            f.attempts,
            f.attempts_day,
            f.attempts_today,
            now - timedelta(seconds=1),
        )
        if f.dnc_global:
            await db_pool.execute(
                "INSERT INTO dnc (phone_e164) VALUES ($1) ON CONFLICT DO NOTHING", number
            )
        if f.dnc_campaign:
            await db_pool.execute(
                "INSERT INTO dnc (phone_e164, campaign_id) VALUES ($1, $2)", number, campaign_id
            )
        by_id[lead_id] = f
    # DNC rows of earlier examples share numbers: the truth is what the table says now.
    listed = {
        r["phone_e164"]: (r["g"], r["c"])
        for r in await db_pool.fetch(
            """SELECT phone_e164, bool_or(campaign_id IS NULL) AS g,
                      bool_or(campaign_id = $1) AS c FROM dnc GROUP BY phone_e164""",
            campaign_id,
        )
    }
    numbers = {
        r["id"]: r["phone_e164"]
        for r in await db_pool.fetch(
            "SELECT id, phone_e164 FROM leads WHERE campaign_id = $1", campaign_id
        )
    }

    leased = await lease_eligible(db_pool, campaign_id, name, policy, "prop", 100, now, 60)
    requests = [AttemptRequest(lead, f"call-{name}-{lead.id}", "t", "a") for lead in leased]
    claimed = await claim_attempts(db_pool, name, requests, policy, "prop", now, 60)

    for request in claimed:
        f = by_id[request.lead.id]
        g, c = listed.get(numbers[request.lead.id], (False, False))
        truth = LeadFacts(**{**f.__dict__, "dnc_global": bool(g), "dnc_campaign": bool(c)})
        assert lawful(truth, policy, now), (truth, policy, now)
    # And the lawful ones were all let through: nothing lawful was blocked.
    lawful_ids = {
        i
        for i, f in by_id.items()
        if lawful(
            LeadFacts(
                **{
                    **f.__dict__,
                    "dnc_global": bool(listed.get(numbers[i], (False, False))[0]),
                    "dnc_campaign": bool(listed.get(numbers[i], (False, False))[1]),
                }
            ),
            policy,
            now,
        )
    }
    assert {r.lead.id for r in claimed} == lawful_ids
    # Every lead held back says why.
    held = await db_pool.fetch(
        "SELECT id, status, block_reason FROM leads WHERE campaign_id = $1 AND id <> ALL($2)",
        campaign_id,
        list(lawful_ids),
    )
    assert all(
        r["block_reason"] is not None and r["status"] in ("blocked", "pending") for r in held
    )
