"""The compliance gates as pure functions: each rule alone, then their order in `evaluate`.

The property test in tests/dialer/test_gates_property.py checks `evaluate` against a plain
statement of the rules over random zones, windows and clocks; these pin each rule's verdict.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from compliance.gates import (
    ALLOWED,
    BlockReason,
    LeadFacts,
    attempts_verdict,
    consent_verdict,
    daily_attempts_verdict,
    dnc_verdict,
    evaluate,
    fields_verdict,
    lead_zone,
    next_opening,
    window_open,
    window_verdict,
)
from compliance.rules import CallingWindow

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 2025-03-12, 12:00 in Shanghai.
NOON = datetime(2025, 3, 12, 4, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Rules:
    window: CallingWindow = CallingWindow(time(9), time(18))
    days: Collection[int] = frozenset(range(5))  # Monday to Friday
    holidays: Collection[date] = frozenset()
    max_attempts: int = 3
    max_attempts_per_day: int = 1
    require_consent: bool = False


CLEAN = LeadFacts(
    timezone="Asia/Shanghai",
    consent=True,
    attempts=0,
    attempts_day=None,
    attempts_today=0,
    dnc_global=False,
    dnc_campaign=False,
)


def test_a_clean_lead_inside_its_window_is_allowed() -> None:
    assert evaluate(CLEAN, Rules(), NOON) is ALLOWED


def test_dnc_company_list_before_the_campaign_list_both_for_good() -> None:
    both = replace(CLEAN, dnc_global=True, dnc_campaign=True)
    assert dnc_verdict(both).reason is BlockReason.DNC_GLOBAL
    campaign_only = dnc_verdict(replace(CLEAN, dnc_campaign=True))
    assert campaign_only.reason is BlockReason.DNC_CAMPAIGN and campaign_only.permanent
    assert dnc_verdict(CLEAN).allowed


@pytest.mark.parametrize(
    ("required", "consent", "allowed"),
    [(True, False, False), (True, True, True), (False, False, True), (False, True, True)],
)
def test_consent_is_needed_only_where_the_campaign_requires_it(
    required: bool, consent: bool, allowed: bool
) -> None:
    verdict = consent_verdict(replace(CLEAN, consent=consent), Rules(require_consent=required))
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.reason is BlockReason.NO_CONSENT and verdict.permanent


def test_the_lifetime_attempt_cap_ends_the_lead() -> None:
    assert attempts_verdict(replace(CLEAN, attempts=2), Rules(max_attempts=3)).allowed
    capped = attempts_verdict(replace(CLEAN, attempts=3), Rules(max_attempts=3))
    assert capped.reason is BlockReason.MAX_ATTEMPTS and capped.permanent


def test_the_daily_cap_counts_the_leads_local_day_and_postpones_to_the_next_opening() -> None:
    today = date(2025, 3, 12)
    called_today = replace(CLEAN, attempts_day=today, attempts_today=1)
    verdict = daily_attempts_verdict(called_today, Rules(), SHANGHAI, NOON)
    assert verdict.reason is BlockReason.MAX_ATTEMPTS_TODAY and not verdict.permanent
    assert verdict.not_before == datetime(2025, 3, 13, 9, 0, tzinfo=SHANGHAI)
    # Yesterday's count does not hold the lead back today.
    called_yesterday = replace(called_today, attempts_day=date(2025, 3, 11))
    assert daily_attempts_verdict(called_yesterday, Rules(), SHANGHAI, NOON).allowed


def test_outside_the_window_waits_for_its_next_opening_skipping_weekend_and_holiday() -> None:
    friday_evening = datetime(2025, 3, 14, 19, 0, tzinfo=SHANGHAI)
    rules = Rules(holidays=frozenset({date(2025, 3, 17)}))  # Monday off
    verdict = window_verdict(rules, SHANGHAI, friday_evening)
    assert verdict.reason is BlockReason.OUTSIDE_WINDOW and not verdict.permanent
    assert verdict.not_before == datetime(2025, 3, 18, 9, 0, tzinfo=SHANGHAI)
    assert window_open(rules, SHANGHAI, verdict.not_before)
    assert window_verdict(rules, SHANGHAI, NOON).allowed


def test_next_opening_is_now_inside_the_window_and_two_weeks_on_when_none_opens() -> None:
    assert next_opening(Rules(), SHANGHAI, NOON) == NOON
    never = Rules(days=frozenset())
    assert next_opening(never, SHANGHAI, NOON) == datetime(2025, 3, 26, 4, 0, tzinfo=UTC)


def test_a_lead_missing_a_script_field_says_which() -> None:
    verdict = fields_verdict(replace(CLEAN, missing_fields=("address", "item")))
    assert verdict.label == "missing_field:address" and verdict.permanent


def test_an_unknown_zone_ends_the_lead() -> None:
    assert lead_zone("Mars/Olympus") is None
    verdict = evaluate(replace(CLEAN, timezone="Mars/Olympus"), Rules(), NOON)
    assert verdict.reason is BlockReason.BAD_TIMEZONE and verdict.permanent


def test_evaluate_reports_the_most_severe_gate_first() -> None:
    everything_wrong = LeadFacts(
        timezone="Mars/Olympus",
        consent=False,
        attempts=9,
        attempts_day=date(2025, 3, 12),
        attempts_today=5,
        dnc_global=False,
        dnc_campaign=True,
        missing_fields=("item",),
    )
    rules = Rules(require_consent=True)
    order = []
    facts = everything_wrong
    for fix in (
        {"dnc_campaign": False},
        {"missing_fields": ()},
        {"consent": True},
        {"attempts": 0},
        {"timezone": "Asia/Shanghai"},
        {"attempts_today": 0},
    ):
        order.append(evaluate(facts, rules, datetime(2025, 3, 12, 12, tzinfo=UTC)).reason)
        facts = replace(facts, **fix)
    order.append(evaluate(facts, rules, datetime(2025, 3, 12, 12, tzinfo=UTC)).reason)
    assert order == [
        BlockReason.DNC_CAMPAIGN,
        BlockReason.MISSING_FIELD,
        BlockReason.NO_CONSENT,
        BlockReason.MAX_ATTEMPTS,
        BlockReason.BAD_TIMEZONE,
        BlockReason.MAX_ATTEMPTS_TODAY,
        BlockReason.OUTSIDE_WINDOW,  # 20:00 in Shanghai
    ]
