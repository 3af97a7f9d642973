"""The compliance gates on one lead: may it be dialled now, and if not, why and until when.

Pure: the caller gathers the facts (DNC membership, consent, the lead's attempt counters),
the campaign's rules and the clock. Each rule is its own function; `evaluate` applies them in
order of severity. The dialer checks a lead when it leases it and again just before its
Originate; follow-ups reuse the window functions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from compliance.rules import CallingWindow, is_within_calling_window

# How far ahead the next window opening is looked for.
_SEARCH_DAYS = 14


class BlockReason(StrEnum):
    DNC_GLOBAL = "dnc_global"
    DNC_CAMPAIGN = "dnc_campaign"
    NO_CONSENT = "no_consent"
    MAX_ATTEMPTS = "max_attempts"
    MAX_ATTEMPTS_TODAY = "max_attempts_today"
    OUTSIDE_WINDOW = "outside_window"
    BAD_TIMEZONE = "bad_timezone"
    # The campaign's current script needs a lead field this lead lacks: the call could only
    # fail once the customer answered. Fixing the lead (API PUT) does not unblock it by itself.
    MISSING_FIELD = "missing_field"


# Reasons that end the lead for good; the others only postpone it.
PERMANENT = frozenset(
    {
        BlockReason.DNC_GLOBAL,
        BlockReason.DNC_CAMPAIGN,
        BlockReason.NO_CONSENT,
        BlockReason.MAX_ATTEMPTS,
        BlockReason.BAD_TIMEZONE,
        BlockReason.MISSING_FIELD,
    }
)


class CallingRules(Protocol):
    """The rules a campaign applies to each of its leads (`dialer.campaigns.CallingPolicy`)."""

    @property
    def window(self) -> CallingWindow: ...
    @property
    def days(self) -> Collection[int]: ...
    @property
    def holidays(self) -> Collection[date]: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def max_attempts_per_day(self) -> int: ...
    @property
    def require_consent(self) -> bool: ...


@dataclass(frozen=True)
class LeadFacts:
    timezone: str
    consent: bool
    attempts: int
    attempts_day: date | None  # the lead's local date of the counted attempts_today
    attempts_today: int
    dnc_global: bool
    dnc_campaign: bool
    # Fields the campaign's current script requires that this lead lacks.
    missing_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    reason: BlockReason | None = None
    # For a postponed lead: the earliest time the gates may pass again.
    not_before: datetime | None = None
    # What exactly: the missing field's name.
    detail: str | None = None

    @property
    def label(self) -> str:
        """The lead's `block_reason`: the reason, with its detail (`missing_field:NAME`)."""
        return f"{self.reason}:{self.detail}" if self.detail else str(self.reason)

    @property
    def allowed(self) -> bool:
        return self.reason is None

    @property
    def permanent(self) -> bool:
        return self.reason in PERMANENT


ALLOWED = Verdict()


def lead_zone(name: str) -> ZoneInfo | None:
    """The lead's time zone; None for a name zoneinfo does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_date(now_utc: datetime, zone: ZoneInfo) -> date:
    return now_utc.astimezone(zone).date()


def dnc_verdict(facts: LeadFacts) -> Verdict:
    """The company-wide list first, then the campaign's own."""
    if facts.dnc_global:
        return Verdict(BlockReason.DNC_GLOBAL)
    if facts.dnc_campaign:
        return Verdict(BlockReason.DNC_CAMPAIGN)
    return ALLOWED


def consent_verdict(facts: LeadFacts, rules: CallingRules) -> Verdict:
    """Where the campaign requires consent (AI voices in the US; China, where no explicit
    consent counts as a refusal) a lead without it is never dialled."""
    if rules.require_consent and not facts.consent:
        return Verdict(BlockReason.NO_CONSENT)
    return ALLOWED


def attempts_verdict(facts: LeadFacts, rules: CallingRules) -> Verdict:
    """The lifetime attempt cap ends the lead."""
    if facts.attempts >= rules.max_attempts:
        return Verdict(BlockReason.MAX_ATTEMPTS)
    return ALLOWED


def daily_attempts_verdict(
    facts: LeadFacts, rules: CallingRules, zone: ZoneInfo, now_utc: datetime
) -> Verdict:
    """The daily cap (on the lead's local day) postpones it to the next day's first opening."""
    today = local_date(now_utc, zone)
    if facts.attempts_day == today and facts.attempts_today >= rules.max_attempts_per_day:
        tomorrow = datetime.combine(today + timedelta(days=1), time(0), zone)
        return Verdict(BlockReason.MAX_ATTEMPTS_TODAY, next_opening(rules, zone, tomorrow))
    return ALLOWED


def window_verdict(rules: CallingRules, zone: ZoneInfo, now_utc: datetime) -> Verdict:
    """Outside the calling window: postponed to its next opening."""
    if not window_open(rules, zone, now_utc):
        return Verdict(BlockReason.OUTSIDE_WINDOW, next_opening(rules, zone, now_utc))
    return ALLOWED


def fields_verdict(facts: LeadFacts) -> Verdict:
    """A lead lacking a field the campaign's script needs is not dialled."""
    if facts.missing_fields:
        return Verdict(BlockReason.MISSING_FIELD, detail=facts.missing_fields[0])
    return ALLOWED


def evaluate(facts: LeadFacts, rules: CallingRules, now_utc: datetime) -> Verdict:
    """The first gate the lead fails, in order of severity; ALLOWED when none."""
    for verdict in (
        dnc_verdict(facts),
        fields_verdict(facts),
        consent_verdict(facts, rules),
        attempts_verdict(facts, rules),
    ):
        if not verdict.allowed:
            return verdict
    zone = lead_zone(facts.timezone)
    if zone is None:
        return Verdict(BlockReason.BAD_TIMEZONE)
    daily = daily_attempts_verdict(facts, rules, zone, now_utc)
    return daily if not daily.allowed else window_verdict(rules, zone, now_utc)


def window_open(rules: CallingRules, zone: ZoneInfo, now_utc: datetime) -> bool:
    return is_within_calling_window(now_utc, zone.key, rules.window, rules.days, rules.holidays)


def next_opening(rules: CallingRules, zone: ZoneInfo, after: datetime) -> datetime:
    """The first window start (local time) at or after `after`, within the next two weeks.

    Rules with no open day in that span (every day a holiday) give two weeks from now: the
    lead is looked at again then.
    """
    start_day = after.astimezone(zone).date()
    for offset in range(_SEARCH_DAYS + 1):
        day = start_day + timedelta(days=offset)
        candidate = datetime.combine(day, rules.window.start, zone)
        if offset == 0 and candidate < after:
            # Already inside today's window or past its start: `after` itself may be open.
            if window_open(rules, zone, after):
                return after
            continue
        if window_open(rules, zone, candidate):
            return candidate
    return after + timedelta(days=_SEARCH_DAYS)
