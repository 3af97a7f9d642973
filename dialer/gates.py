"""Compliance gates on one lead: may it be dialled now, and if not, why and until when.

Pure: the caller gathers the facts (DNC membership from the `dnc` table, the lead's counters)
and the clock. Checked when a lead is leased and again just before its Originate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from compliance import is_within_calling_window
from dialer.campaigns import CallingPolicy


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
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_date(now_utc: datetime, zone: ZoneInfo) -> date:
    return now_utc.astimezone(zone).date()


def evaluate(facts: LeadFacts, policy: CallingPolicy, now_utc: datetime) -> Verdict:
    """The first gate the lead fails, in order of severity; ALLOWED when none."""
    if facts.dnc_global:
        return Verdict(BlockReason.DNC_GLOBAL)
    if facts.dnc_campaign:
        return Verdict(BlockReason.DNC_CAMPAIGN)
    if facts.missing_fields:
        return Verdict(BlockReason.MISSING_FIELD, detail=facts.missing_fields[0])
    if policy.require_consent and not facts.consent:
        return Verdict(BlockReason.NO_CONSENT)
    if facts.attempts >= policy.max_attempts:
        return Verdict(BlockReason.MAX_ATTEMPTS)
    zone = lead_zone(facts.timezone)
    if zone is None:
        return Verdict(BlockReason.BAD_TIMEZONE)
    today = local_date(now_utc, zone)
    if facts.attempts_day == today and facts.attempts_today >= policy.max_attempts_per_day:
        tomorrow = datetime.combine(today + timedelta(days=1), time(0), zone)
        return Verdict(BlockReason.MAX_ATTEMPTS_TODAY, next_opening(policy, zone, tomorrow))
    if not window_open(policy, zone, now_utc):
        return Verdict(BlockReason.OUTSIDE_WINDOW, next_opening(policy, zone, now_utc))
    return ALLOWED


def window_open(policy: CallingPolicy, zone: ZoneInfo, now_utc: datetime) -> bool:
    return is_within_calling_window(now_utc, zone.key, policy.window, policy.days, policy.holidays)


def next_opening(policy: CallingPolicy, zone: ZoneInfo, after: datetime) -> datetime:
    """The first window start (local time) at or after `after`, within the next two weeks.

    A policy with no open day in that span (every day a holiday) gives two weeks from now:
    the lead is looked at again then.
    """
    start_day = after.astimezone(zone).date()
    for offset in range(15):
        day = start_day + timedelta(days=offset)
        candidate = datetime.combine(day, policy.window.start, zone)
        if offset == 0 and candidate < after:
            # Already inside today's window or past its start: `after` itself may be open.
            if window_open(policy, zone, after):
                return after
            continue
        if window_open(policy, zone, candidate):
            return candidate
    return after + timedelta(days=14)
