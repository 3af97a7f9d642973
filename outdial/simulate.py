"""The history simulator: weeks of a campaign's life with customers whose traits are hidden
(pbxsim/history.py), through the dialer's own leasing and outcome path and the HTTP API.

Each week every customer still a customer is contacted once. The policy decides the channel:
`always_call` calls everyone; `planner` calls everyone the first week and from then on asks
the API for each lead's follow-up (POST /v1/follow-ups) and uses the channel and hour it
gives. A call goes through the dialer's leasing functions at the simulated moment (lease, the
compliance gates, claim, finish with the outcome advisor: the follow-up and churn risk in the
outbox event); an answered call leaves the `calls` row and turns the session would write. A
message is sent by the simulated CRM, which reports what the customer did through
POST /v1/engagement. At each customer's review the CRM posts the churn label through
POST /v1/churn-labels. docs/simulation.md states the assumptions.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

from analytics.churn import evaluate
from api.server import ApiServer
from api.tokens import create_token, revoke_token
from crm.followup import outcome_advisor
from dialer.campaigns import CampaignSettings, calling_policy, create_campaign
from dialer.dispositions import Disposition, next_step
from dialer.leasing import (
    AttemptRequest,
    AttemptResult,
    claim_attempts,
    finish_attempts,
    lease_eligible,
)
from dialog import load_script
from dialog.grading import CallFacts, grade_call
from dialog.schema import Script
from outdial.config import Config
from pbxsim.history import Conversation, HiddenCustomer, contact_draw, conversation, make_customers
from store.db import create_pool
from store.dnc import add_opt_out_of_lead
from store.engagement import grant_consents
from store.leads import NewLead, add_due_leads
from store.scripts import record_script_version
from store.settings import DatabaseSettings
from store.simulation import PastCall, PastTurn, record_past_calls, scratch_database

Policy = Literal["planner", "always_call"]
SHIPPED_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SCRIPT = "order_confirmation_en"
CALL_DAY = 1  # Tuesday: the week's contacts all happen on one day, each at its own hour
RESPONSE_KIND = {"call": "answered", "sms": "replied", "push": "opened"}
OWNER = "history-simulator"
LEASE_S = 600.0
_CHUNK = 1000


class SimApi:
    """The simulated CRM's side of the HTTP API."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session = session
        self.base = base
        self.token = token

    async def post(self, path: str, body: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.post(self.base + path, json=body, headers=headers) as response:
            payload = await response.json(content_type=None)
            if response.status >= 300:
                raise RuntimeError(f"POST {path}: {response.status} {payload}")
            return payload


@dataclass(frozen=True)
class HistorySettings:
    customers: int = 300
    weeks: int = 6
    seed: int = 1
    policy: Policy = "planner"
    # Far enough back that the whole history is in the past (a Monday).
    start: date = field(
        default_factory=lambda: _monday(datetime.now(UTC).date() - timedelta(weeks=12))
    )


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass
class ChannelCount:
    contacts: int = 0
    responses: int = 0


@dataclass
class HistoryResult:
    policy: Policy
    seed: int
    customers: list[HiddenCustomer]
    channels: dict[str, ChannelCount] = field(
        default_factory=lambda: {c: ChannelCount() for c in ("call", "sms", "push")}
    )
    labels: int = 0
    churned: int = 0
    lead_of: dict[int, int] = field(default_factory=dict)  # customer index -> latest lead id

    @property
    def contacts(self) -> int:
        return sum(c.contacts for c in self.channels.values())

    @property
    def responses(self) -> int:
        return sum(c.responses for c in self.channels.values())

    @property
    def engagement_per_contact(self) -> float:
        return self.responses / self.contacts if self.contacts else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "seed": self.seed,
            "customers": len(self.customers),
            "contacts": self.contacts,
            "responses": self.responses,
            "engagement_per_contact": round(self.engagement_per_contact, 4),
            "channels": {c: vars(n) for c, n in self.channels.items()},
            "labels": self.labels,
            "churned": self.churned,
        }


@dataclass(frozen=True)
class Contact:
    customer: HiddenCustomer
    channel: str
    at: datetime  # UTC


class HistorySimulator:
    def __init__(
        self, pool: asyncpg.Pool, config: Config, settings: HistorySettings, api: SimApi
    ) -> None:
        self.pool = pool
        self.config = config
        self.settings = settings
        self.api = api
        self.advisor = outcome_advisor(config.analytics, config.dialer)
        self.campaign_settings = CampaignSettings(window="09:00-20:00", max_attempts=1)
        self.policy = calling_policy(self.campaign_settings, config.dialer)
        loaded = load_script(SHIPPED_SCRIPTS / f"{SCRIPT}.yaml")
        self.script: Script = loaded.script
        self._loaded = loaded
        # The disposition the session reports for each outcome (its `end` node's).
        self._ends = {
            n.outcome: n.disposition for n in self.script.nodes.values() if n.kind == "end"
        }
        self.version = 0

    async def run(self) -> HistoryResult:
        s = self.settings
        loaded = self._loaded
        self.version = await record_script_version(
            self.pool, SCRIPT, loaded.source, loaded.content_hash, loaded.path
        )
        customers = make_customers(s.customers, s.seed, s.weeks, s.start)
        result = HistoryResult(s.policy, s.seed, customers)
        for week in range(1, s.weeks + 1):
            active = [c for c in customers if not (c.churns and c.review_week < week)]
            contacts = await self._plan_week(week, active, result)
            await self._calls(week, [c for c in contacts if c.channel == "call"], result)
            await self._messages(week, [c for c in contacts if c.channel != "call"], result)
            await self._reviews(week, [c for c in active if c.review_week == week], result)
        return result

    # --- deciding ------------------------------------------------------------------------------

    def _week_day(self, week: int) -> date:
        return self.settings.start + timedelta(weeks=week - 1, days=CALL_DAY)

    def _at(self, week: int, customer: HiddenCustomer, hour: int) -> datetime:
        local = datetime.combine(self._week_day(week), dtime(hour), ZoneInfo(customer.timezone))
        return local.astimezone(UTC)

    def _dialer_hour(self, week: int, customer: HiddenCustomer) -> int:
        """The hour a plain dialer reaches the lead: anywhere in the calling window."""
        return random.Random(f"hour|{self.settings.seed}|{customer.index}|{week}").randint(9, 19)

    async def _plan_week(
        self, week: int, active: list[HiddenCustomer], result: HistoryResult
    ) -> list[Contact]:
        if self.settings.policy == "always_call" or week == 1:
            return [
                Contact(c, "call", self._at(week, c, self._dialer_hour(week, c))) for c in active
            ]
        plans = {}
        for chunk in _chunks([result.lead_of[c.index] for c in active], 500):
            reply = await self.api.post("/v1/follow-ups", {"lead_ids": chunk})
            plans.update({p["lead_id"]: p for p in reply["follow_ups"]})
        contacts = []
        for customer in active:
            plan = plans[result.lead_of[customer.index]]
            if plan["channel"] is None:
                continue  # nothing may reach them (an opt-out, no consent)
            hour = datetime.fromisoformat(plan["at"]).astimezone(ZoneInfo(customer.timezone)).hour
            contacts.append(Contact(customer, plan["channel"], self._at(week, customer, hour)))
        return contacts

    def _answered(self, week: int, contact: Contact) -> bool:
        customer = contact.customer
        hour = contact.at.astimezone(ZoneInfo(customer.timezone)).hour
        p = customer.response_probability(contact.channel, hour)
        return contact_draw(self.settings.seed, customer, week) < p

    # --- calls ---------------------------------------------------------------------------------

    async def _calls(self, week: int, contacts: list[Contact], result: HistoryResult) -> None:
        if not contacts:
            return
        s = self.settings
        name = f"sim{s.seed}-{s.policy}-w{week}"
        async with self.pool.acquire() as conn, conn.transaction():
            campaign = await create_campaign(conn, name, SCRIPT, self.campaign_settings)
            leads = [
                NewLead(c.customer.phone, c.customer.timezone, c.customer.fields, c.at)
                for c in contacts
            ]
            ids = await add_due_leads(conn, campaign.id, leads)
            await grant_consents(conn, list(ids.values()), ("sms", "push"), "simulator")
        by_lead = {}
        for contact in contacts:
            lead_id = ids[contact.customer.phone]
            result.lead_of[contact.customer.index] = lead_id
            by_lead[lead_id] = contact
        for moment in sorted({c.at for c in contacts}):
            await self._dial_at(week, campaign.id, name, moment, by_lead, result)

    async def _dial_at(
        self,
        week: int,
        campaign_id: int,
        campaign: str,
        now: datetime,
        by_lead: dict[int, Contact],
        result: HistoryResult,
    ) -> None:
        """One pass of the dialer at `now`: lease the due leads, gate, claim, settle."""
        allowed = await lease_eligible(
            self.pool, campaign_id, campaign, self.policy, OWNER, len(by_lead), now, LEASE_S
        )
        prefix = f"sim-{self.settings.seed}-{self.settings.policy}"
        requests = [
            AttemptRequest(lead, f"{prefix}-{lead.id}", "sim", str(lead.id)) for lead in allowed
        ]
        claimed = await claim_attempts(
            self.pool, campaign, requests, self.policy, OWNER, now, LEASE_S
        )
        results, calls, opted_out = [], [], []
        for request in claimed:
            contact = by_lead[request.lead.id]
            channel = result.channels["call"]
            channel.contacts += 1
            if not self._answered(week, contact):
                ended = now + timedelta(seconds=30)
                step = next_step(Disposition.NO_ANSWER, ended, self.config.dialer)
                results.append(AttemptResult(request.call_id, Disposition.NO_ANSWER, step, ended))
                continue
            channel.responses += 1
            talk = conversation(contact.customer, self.settings.seed, week)
            call = self._past_call(request, campaign_id, now, talk)
            calls.append(call)
            if talk.outcome == "opt_out":
                opted_out.append(call)
            disposition = Disposition(call.disposition)
            step = next_step(disposition, call.ended_at, self.config.dialer)
            results.append(
                AttemptResult(request.call_id, disposition, step, call.ended_at, answered_at=now)
            )
        async with self.pool.acquire() as conn, conn.transaction():
            await record_past_calls(conn, calls)
            for call in opted_out:
                await add_opt_out_of_lead(conn, call.lead_id, call.call_id)
            await finish_attempts(conn, OWNER, results, self.advisor)

    def _past_call(
        self, request: AttemptRequest, campaign_id: int, now: datetime, talk: Conversation
    ) -> PastCall:
        """The call as the session records it, graded by the script's own rules."""
        turns, clock = [], talk.prompt_s / 2
        for turn in talk.turns:
            start = clock + turn.pause_s
            clock = start + turn.speech_s
            turns.append(
                PastTurn("customer", "confirm_order", turn.intent, turn.agitation,
                         {"speech_start": round(start, 3), "speech_end": round(clock, 3)})
            )  # fmt: skip
        facts = CallFacts(
            outcome=talk.outcome,
            disposition=self._ends.get(talk.outcome or "", "transferred"),
            success=talk.outcome in self.script.success_outcomes,
            intents=frozenset(t.intent for t in talk.turns if t.intent),
            entities=frozenset(),
            agitation_peak=max(t.agitation for t in talk.turns),
            duration_s=talk.duration_s,
        )
        graded = grade_call(self.script.grading, facts)
        return PastCall(
            call_id=request.call_id,
            campaign_id=campaign_id,
            lead_id=request.lead.id,
            script_name=SCRIPT,
            script_version=self.version,
            started_at=now,
            ended_at=now + timedelta(seconds=talk.duration_s),
            disposition=talk.disposition,
            outcome=talk.outcome,
            success=facts.success,
            grade=graded.grade if graded else None,
            grade_reason=graded.reason if graded else None,
            transfer_reason="customer needs an agent" if talk.outcome is None else None,
            turns=turns,
        )

    # --- messages and reviews ------------------------------------------------------------------

    async def _messages(self, week: int, contacts: list[Contact], result: HistoryResult) -> None:
        events: list[dict[str, Any]] = []
        for contact in contacts:
            customer, channel = contact.customer, contact.channel
            lead_id = result.lead_of[customer.index]
            key = f"sim{self.settings.seed}-w{week}-{customer.index}"
            kinds = [("sent", contact.at), ("delivered", contact.at + timedelta(seconds=5))]
            result.channels[channel].contacts += 1
            if self._answered(week, contact):
                result.channels[channel].responses += 1
                kinds.append((RESPONSE_KIND[channel], contact.at + timedelta(minutes=4)))
            events += [
                {"lead_id": lead_id, "event_id": f"{key}-{kind}", "channel": channel,
                 "kind": kind, "contact_id": key, "occurred_at": at.isoformat()}
                for kind, at in kinds
            ]  # fmt: skip
        for chunk in _chunks(events, _CHUNK):
            await self.api.post("/v1/engagement", {"events": chunk})

    async def _reviews(
        self, week: int, reviewed: list[HiddenCustomer], result: HistoryResult
    ) -> None:
        """The CRM learns whether each reviewed customer stays, and posts it back."""
        week_start = datetime.combine(
            self.settings.start + timedelta(weeks=week - 1), dtime(0), UTC
        )
        labels = [
            {"lead_id": result.lead_of[c.index], "churned": c.churns,
             "observed_at": (week_start + timedelta(seconds=c.review_offset_s)).isoformat()}
            for c in reviewed
            if c.index in result.lead_of
        ]  # fmt: skip
        for chunk in _chunks(labels, _CHUNK):
            await self.api.post("/v1/churn-labels", {"labels": chunk})
        result.labels += len(labels)
        result.churned += sum(1 for label in labels if label["churned"])


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


async def simulate_history(
    pool: asyncpg.Pool, config: Config, settings: HistorySettings
) -> HistoryResult:
    """Run a history against this database, the simulated CRM talking to an API server of
    its own on a free loopback port with a token made for the run (revoked after)."""
    api = config.api.model_copy(
        update={"enabled": True, "host": "127.0.0.1", "port": 0, "rate_per_s": 1e6,
                "burst": 1_000_000}
    )  # fmt: skip
    server = ApiServer(config.model_copy(update={"api": api}), pool)
    port = await server.start()
    name = f"simulator-{settings.seed}-{settings.policy}-{secrets.token_hex(4)}"
    async with pool.acquire() as conn:
        token = await create_token(conn, name, ["engagement:read", "engagement:write"])
    try:
        async with aiohttp.ClientSession() as session:
            client = SimApi(session, f"http://127.0.0.1:{port}", token)
            return await HistorySimulator(pool, config, settings, client).run()
    finally:
        async with pool.acquire() as conn:
            await revoke_token(conn, name)
        await server.stop()


@dataclass(frozen=True)
class WorldFigures:
    """What a simulated world shows of the models: the churn model against the RFM-only
    baseline on the time-based hold-out, and the planner's engagement per contact against
    "always call" on the same people and draws."""

    seed: int
    churn: dict[str, float | int]
    planner: HistoryResult
    always_call: HistoryResult

    @property
    def gain(self) -> float:
        return self.planner.engagement_per_contact - self.always_call.engagement_per_contact

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "churn": self.churn,
            "engagement_per_contact": {
                "planner": round(self.planner.engagement_per_contact, 4),
                "always_call": round(self.always_call.engagement_per_contact, 4),
                "gain": round(self.gain, 4),
            },
            "planner_channels": {c: vars(n) for c, n in self.planner.channels.items()},
        }


_CHURN_FIGURES = ("auc", "baseline_auc", "brier", "baseline_brier", "ece", "baseline_ece", "test")


@asynccontextmanager
async def scratch_pool(url: str, name: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh migrated database `name` beside `url`, dropped afterwards."""
    async with scratch_database(url, name) as scratch:
        pool = await create_pool(scratch, DatabaseSettings(pool_min=1, pool_max=4))
        try:
            yield pool
        finally:
            await pool.close()


async def judge_world(
    url: str,
    config: Config,
    seed: int,
    *,
    churn_customers: int = 1000,
    churn_weeks: int = 6,
    channel_customers: int = 300,
    channel_weeks: int = 8,
) -> WorldFigures:
    """Run world `seed` in scratch databases beside `url` (dropped after): one history for the
    churn model, and one per policy for the channels, each in a database of its own (a person
    is their number: one run's calls and opt-outs must not be in the other's history)."""
    base = f"outdial_sim_{seed}_{secrets.token_hex(3)}"
    async with scratch_pool(url, f"{base}_churn") as pool:
        settings = HistorySettings(churn_customers, churn_weeks, seed, "always_call")
        await simulate_history(pool, config, settings)
        found = await evaluate(pool, config.analytics.churn, config.analytics.rfm)
    churn = {k: round(v, 4) if isinstance(v, float) else v
             for k, v in found.as_json().items() if k in _CHURN_FIGURES}  # fmt: skip
    runs: dict[str, HistoryResult] = {}
    policy: Policy
    for policy in ("planner", "always_call"):
        async with scratch_pool(url, f"{base}_{policy}") as pool:
            settings = HistorySettings(channel_customers, channel_weeks, seed, policy)
            runs[policy] = await simulate_history(pool, config, settings)
    return WorldFigures(seed, churn, runs["planner"], runs["always_call"])
