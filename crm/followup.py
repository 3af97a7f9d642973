"""The follow-up after a call: which channel (call, SMS, app push), when, with which of the
script's templates, and why, for every ended call attempt and on request through the API.

The estimate per channel is analytics/channels.py (Beta posteriors with segment priors; the
best posterior mean, or Thompson sampling); what may reach the person is
compliance/channels.py (do-not-contact and consent per channel); the facts come from
store/engagement.py; the template text from the script's `follow_up:` section
(dialog/followup.py). `OutcomeAdvisor` plugs the planner (and the churn score) into the
dialer's outcome events, and stops call retries for a lead who answers messages and not calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import ValidationError

from analytics.channels import Beta, best_hour, choose, posteriors, seeded_rng
from analytics.churn import ChurnScorer, score_payload
from analytics.metrics import FOLLOW_UPS
from analytics.settings import AnalyticsSettings, ChannelSettings
from compliance import CallingWindow
from compliance.channels import ChannelFacts, channel_block
from compliance.gates import lead_zone, next_opening, window_open
from dialer.campaigns import CampaignSettings, calling_policy
from dialer.dispositions import NextStep
from dialer.leasing import Advice, EndedAttempt
from dialer.settings import DialerSettings
from dialog import ScriptError, parse_script
from dialog.followup import pick_template, render_follow_up
from dialog.schema import Script
from store.engagement import (
    CHANNELS,
    ChannelHistory,
    FollowUpRow,
    LeadChannels,
    captured_of,
    lead_channels,
    lead_histories,
    record_follow_ups,
    segment_histories,
)
from store.scripts import latest_script_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanRequest:
    lead_id: int
    now: datetime
    call_id: str | None = None
    outcome: str | None = None  # of the call just ended (None: not answered, or no call)
    grade: str | None = None
    captured: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FollowUp:
    lead_id: int
    channel: str | None  # None: no channel may reach the lead
    at: datetime | None
    template: str | None
    text: str | None
    reason: str
    estimates: dict[str, float] = field(default_factory=dict)  # response rate per channel
    blocked: dict[str, str] = field(default_factory=dict)  # channel -> why not

    def payload(self) -> dict[str, Any]:
        """The outbox event's `follow_up`."""
        return {
            "channel": self.channel,
            "at": self.at.isoformat() if self.at else None,
            "template": self.template,
            "text": self.text,
            "reason": self.reason,
            "estimates": {c: round(v, 4) for c, v in self.estimates.items()},
            "blocked": self.blocked,
        }


class ScriptTemplates:
    """The newest version of each script in the database, parsed once per content."""

    def __init__(self) -> None:
        self._parsed: dict[str, Script | None] = {}

    async def script(self, conn: asyncpg.Connection | asyncpg.Pool, name: str) -> Script | None:
        found = await latest_script_source(conn, name)
        if found is None:
            return None
        content_hash, source = found
        if content_hash not in self._parsed:
            try:
                self._parsed[content_hash] = parse_script(source, f"<{name}>").script
            except ScriptError:
                log.warning("script %s in the database does not validate: no follow-ups", name)
                self._parsed[content_hash] = None
        return self._parsed[content_hash]


class FollowUpPlanner:
    def __init__(self, settings: AnalyticsSettings, dialer: DialerSettings) -> None:
        self.settings: ChannelSettings = settings.channels
        self.dialer = dialer
        self.templates = ScriptTemplates()
        self._message_window = CallingWindow.parse(self.settings.message_window)
        self._segments: tuple[float, datetime, dict[str, ChannelHistory]] | None = None

    async def plan(
        self, conn: asyncpg.Connection | asyncpg.Pool, requests: Sequence[PlanRequest]
    ) -> dict[int, FollowUp]:
        """A follow-up per request (keyed by lead id)."""
        if not requests:
            return {}
        ids = [r.lead_id for r in requests]
        as_of = max(r.now for r in requests)
        facts = await lead_channels(conn, ids, self.settings.segment_field)
        histories = await lead_histories(conn, ids, as_of)
        segments = await self._segment_histories(conn, as_of)
        plans = {}
        for request in requests:
            lead = facts.get(request.lead_id)
            if lead is None or lead.erased:
                plans[request.lead_id] = _nothing(
                    request.lead_id, "the lead was erased or is unknown"
                )
                continue
            script = await self.templates.script(conn, lead.script_name)
            plans[request.lead_id] = self._plan_one(
                request, lead, script, histories[request.lead_id], segments.get(lead.segment)
            )
        return plans

    async def _segment_histories(
        self, conn: asyncpg.Connection | asyncpg.Pool, as_of: datetime
    ) -> dict[str, ChannelHistory]:
        """The segments' priors, recomputed every `prior_refresh_s` (or when the clock given
        moved by more than that, as in the history simulator)."""
        cached = self._segments
        refresh = self.settings.prior_refresh_s
        if (
            cached is not None
            and time.monotonic() - cached[0] < refresh
            and abs((as_of - cached[1]).total_seconds()) < refresh
        ):
            return cached[2]
        since = as_of - timedelta(days=self.settings.prior_window_days)
        histories = await segment_histories(conn, self.settings.segment_field, since, as_of)
        self._segments = (time.monotonic(), as_of, histories)
        return histories

    def _plan_one(
        self,
        request: PlanRequest,
        lead: LeadChannels,
        script: Script | None,
        own: ChannelHistory,
        segment: ChannelHistory | None,
    ) -> FollowUp:
        settings = self.settings
        if request.outcome == "opt_out":
            return _nothing(lead.lead_id, "the customer refused further contact on the call")
        estimates = posteriors(
            own, segment, settings.default_rates, settings.prior_strength, CHANNELS
        )
        means = {c: b.mean for c, b in estimates.items()}
        blocked = self._blocked(request, lead, script)
        allowed = [c for c in CHANNELS if c not in blocked]
        # Seeded by the decision's identity: the call, or (asked through the API) the history
        # so far; the same question about the same history gets the same answer.
        history = sum(t.contacts + t.responses * 1000 for t in own.totals.values())
        rng = seeded_rng(lead.lead_id, request.call_id or f"history-{history}")
        choice = choose(estimates, allowed, rng, greedy=settings.policy == "greedy")
        if choice is None:
            why = "; ".join(f"{c}: {b}" for c, b in blocked.items())
            return FollowUp(lead.lead_id, None, None, None, None, f"no channel allowed ({why})",
                            means, blocked)  # fmt: skip
        channel = choice.channel
        zone = lead_zone(lead.timezone) or ZoneInfo("UTC")
        hour, at = self._when(request, lead, channel, estimates[channel], own, segment, zone)
        template, text = self._message(request, lead, script, channel)
        reason = _reason(channel, own, means, allowed, hour, settings.policy)
        return FollowUp(lead.lead_id, channel, at, template, text, reason, means, blocked)

    def _blocked(
        self, request: PlanRequest, lead: LeadChannels, script: Script | None
    ) -> dict[str, str]:
        campaign = _campaign_settings(lead)
        facts = ChannelFacts(
            dnc=lead.dnc,
            call_consent=lead.consent,
            consented=lead.consented,
            calls_need_consent=campaign.require_consent,
            messages_need_consent=self.settings.require_consent,
        )
        blocked = {}
        for channel in CHANNELS:
            why = channel_block(channel, facts)
            if why is None and channel != "call":
                templates = script.follow_up if script else []
                if pick_template(templates, channel, request.outcome, request.grade) is None:
                    why = f"the script has no {channel} follow-up for this call"
            if why is not None:
                blocked[channel] = why
        return blocked

    def _when(
        self,
        request: PlanRequest,
        lead: LeadChannels,
        channel: str,
        estimate: Beta,
        own: ChannelHistory,
        segment: ChannelHistory | None,
        zone: ZoneInfo,
    ) -> tuple[int | None, datetime]:
        """The best local hour within the channel's window, and the first time at that hour
        after the minimum delay (for a call, inside the campaign's calling days)."""
        policy = calling_policy(_campaign_settings(lead), self.dialer)
        window = policy.window if channel == "call" else self._message_window
        hours = [h for h in range(24) if window.start.hour <= h and _hour_starts_before(h, window)]
        hour = best_hour(
            own.hourly[channel],
            segment.hourly[channel] if segment else None,
            estimate.mean,
            self.settings.prior_strength,
            hours,
        )
        earliest = request.now + timedelta(seconds=self.settings.min_delay_s)
        at = _next_at_hour(earliest, hour, window, zone)
        if channel == "call" and not window_open(policy, zone, at):
            at = next_opening(policy, zone, at)
        return hour, at

    def _message(
        self, request: PlanRequest, lead: LeadChannels, script: Script | None, channel: str
    ) -> tuple[str | None, str | None]:
        if channel == "call" or script is None:
            return lead.script_name, None  # a call follow-up is the script, dialled again
        template = pick_template(script.follow_up, channel, request.outcome, request.grade)
        if template is None:  # _blocked() leaves a message channel only with a template
            return None, None
        values = {**lead.fields, **request.captured}
        return template.name, render_follow_up(template, script, values)


def _campaign_settings(lead: LeadChannels) -> CampaignSettings:
    try:
        return CampaignSettings.model_validate(lead.campaign_settings)
    except ValidationError:
        return CampaignSettings()


def _hour_starts_before(hour: int, window: CallingWindow) -> bool:
    return (hour, 0) < (window.end.hour, window.end.minute)


def _next_at_hour(
    earliest: datetime, hour: int | None, window: CallingWindow, zone: ZoneInfo
) -> datetime:
    """The first moment at or after `earliest` in local hour `hour` (and in the window)."""
    if hour is None:
        return earliest
    local = earliest.astimezone(zone)
    start = max(dtime(hour), window.start)
    if local.hour == hour and local.time() >= start:
        return earliest
    candidate = datetime.combine(local.date(), start, zone)
    if candidate < local:
        candidate = datetime.combine(local.date() + timedelta(days=1), start, zone)
    return candidate


def _nothing(lead_id: int, reason: str) -> FollowUp:
    return FollowUp(lead_id, None, None, None, None, reason)


def _reason(
    channel: str,
    own: ChannelHistory,
    means: Mapping[str, float],
    allowed: Sequence[str],
    hour: int | None,
    policy: str,
) -> str:
    tally = own.totals[channel]
    others = ", ".join(f"{c} {means[c]:.0%}" for c in allowed if c != channel)
    parts = [
        f"{channel}: estimated {means[channel]:.0%} response "
        f"({tally.responses} of {tally.contacts} of this person's contacts)",
        f"vs {others}" if others else "the only channel allowed",
        f"best hour {hour:02d}:00" if hour is not None else "",
        "chosen by Thompson sampling" if policy == "thompson" and others else "",
    ]
    return "; ".join(p for p in parts if p)


class OutcomeAdvisor:
    """The dialer's outcome advisor: the follow-up and the churn risk in each outcome event;
    no more call retries for a lead whose calls do clearly worse than its messages."""

    def __init__(self, planner: FollowUpPlanner, churn: ChurnScorer | None = None) -> None:
        self.planner = planner
        self.churn = churn

    async def __call__(
        self, conn: asyncpg.Connection, attempts: Sequence[EndedAttempt]
    ) -> dict[str, Advice]:
        captured = await captured_of(conn, [a.call_id for a in attempts if a.answered])
        requests = [
            PlanRequest(
                lead_id=a.lead_id,
                now=a.ended_at,
                call_id=a.call_id,
                outcome=a.outcome,
                grade=a.grade,
                captured=captured.get(a.call_id, {}),
            )
            for a in attempts
        ]
        plans = await self.planner.plan(conn, requests)
        scores = await self.churn.score(conn, [a.lead_id for a in attempts]) if self.churn else {}
        await record_follow_ups(
            conn,
            [
                FollowUpRow(a.lead_id, a.campaign_id, a.call_id, p.channel, p.at, p.template,
                            p.reason)
                for a in attempts
                if (p := plans.get(a.lead_id)) is not None
            ],
        )  # fmt: skip
        advice = {}
        for attempt in attempts:
            plan = plans.get(attempt.lead_id)
            if plan is not None:
                FOLLOW_UPS.labels(channel=plan.channel or "none").inc()
            event: dict[str, Any] = {"follow_up": plan.payload() if plan else None}
            if attempt.lead_id in scores:
                event["churn"] = score_payload(scores[attempt.lead_id])
            step, block = self._next_step(attempt, plan)
            advice[attempt.call_id] = Advice(event, step, block)
        return advice

    def _next_step(
        self, attempt: EndedAttempt, plan: FollowUp | None
    ) -> tuple[NextStep | None, str | None]:
        """Calls are one channel among three: a retry is dropped when the follow-up goes by a
        message channel whose estimate the call's falls well short of."""
        if attempt.next_step.done or plan is None or plan.channel in (None, "call"):
            return None, None
        call = plan.estimates.get("call", 0.0)
        best = plan.estimates.get(plan.channel, 0.0)
        if call >= self.planner.settings.stop_calls_below * best:
            return None, None
        return NextStep(done=True), f"prefers_{plan.channel}"


def outcome_advisor(analytics: AnalyticsSettings, dialer: DialerSettings) -> OutcomeAdvisor:
    """What the dialer adds to each call's outcome event: the follow-up and the churn risk."""
    planner = FollowUpPlanner(analytics, dialer)
    return OutcomeAdvisor(planner, ChurnScorer(analytics.churn, analytics.rfm))
