"""Every follow-up in a call's outcome event (the CRM webhook) respects the person's
do-not-contact lists and consents per channel: every combination, through the dialer's own
lease, claim and finish path with the daemon's outcome advisor."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from analytics.churn import FEATURES, LinearChurnModel
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
from outdial.config import Config
from store.churn import save_model
from store.engagement import EngagementEvent, record_events
from store.leads import NewLead, add_due_leads
from store.scripts import record_script_version
from store.settings import DatabaseSettings

SCRIPT = "order_confirmation_en"
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
NOW = datetime(2026, 6, 2, 15, 0, tzinfo=UTC)  # a Tuesday afternoon, in the window
CHANNELS = ("call", "sms", "push")
# Per lead: on the DNC list for call, sms, push; consent to call, sms, push.
COMBINATIONS = list(itertools.product((False, True), repeat=6))


async def test_every_webhook_follow_up_respects_dnc_and_consent_per_channel(
    db_pool: asyncpg.Pool, pg_url: str
) -> None:
    config = Config(database=DatabaseSettings(url=SecretStr(pg_url)))
    loaded = load_script(SCRIPTS / f"{SCRIPT}.yaml")
    await record_script_version(db_pool, SCRIPT, loaded.source, loaded.content_hash, None)
    settings = CampaignSettings(window="09:00-20:00", max_attempts=3, require_consent=True)
    fields = {"order_number": "S-9", "store": "Lamps", "address": "1 Main St", "item": "a lamp"}
    async with db_pool.acquire() as conn, conn.transaction():
        campaign = await create_campaign(conn, "follow-ups", SCRIPT, settings)
        leads = [
            NewLead(f"+1415555{i:04d}", "UTC", fields, NOW - timedelta(minutes=1))
            for i in range(len(COMBINATIONS))
        ]
        ids = await add_due_leads(conn, campaign.id, leads)
    policy = calling_policy(settings, config.dialer)
    leased = await lease_eligible(
        db_pool, campaign.id, campaign.name, policy, "t", len(leads), NOW, 600
    )
    requests = [AttemptRequest(lead, f"fu-{lead.id}", "t", str(lead.id)) for lead in leased]
    claimed = await claim_attempts(db_pool, campaign.name, requests, policy, "t", NOW, 600)
    assert len(claimed) == len(COMBINATIONS)

    # While the calls ring, the CRM records each person's lists and consents.
    facts = {ids[lead.phone_e164]: combo for lead, combo in zip(leads, COMBINATIONS, strict=True)}
    async with db_pool.acquire() as conn:
        for lead_id, (*dnc, call_ok, sms_ok, push_ok) in facts.items():
            for channel, listed in zip(CHANNELS, dnc, strict=True):
                if listed:  # the campaign's list for odd ids, the global list for even
                    await conn.execute(
                        """INSERT INTO dnc (phone_e164, campaign_id, source, channel)
                           SELECT phone_e164, CASE WHEN id % 2 = 1 THEN campaign_id END,
                                  'api', $2 FROM leads WHERE id = $1""",
                        lead_id,
                        channel,
                    )
            await conn.execute("UPDATE leads SET consent = $2 WHERE id = $1", lead_id, call_ok)
            await conn.executemany(
                """INSERT INTO channel_consents (lead_id, channel, granted, source)
                   VALUES ($1, $2, $3, 'test')""",
                [(lead_id, "sms", sms_ok), (lead_id, "push", push_ok)],
            )
    ended = NOW + timedelta(seconds=40)
    step = next_step(Disposition.NO_ANSWER, ended, config.dialer)
    results = [AttemptResult(r.call_id, Disposition.NO_ANSWER, step, ended) for r in claimed]
    async with db_pool.acquire() as conn:
        advisor = outcome_advisor(config.analytics, config.dialer)
        assert await finish_attempts(conn, "t", results, advisor) == len(results)
        events = await conn.fetch("SELECT payload FROM outbox WHERE event_type = 'call.outcome'")

    assert len(events) == len(COMBINATIONS)
    chosen = set()
    for row in events:
        payload = row["payload"]
        *dnc, call_ok, sms_ok, push_ok = facts[payload["lead_id"]]
        allowed = {
            channel
            for channel, listed, ok in zip(CHANNELS, dnc, (call_ok, sms_ok, push_ok), strict=True)
            if not listed and ok
        }
        follow_up = payload["follow_up"]
        assert set(follow_up["blocked"]) == set(CHANNELS) - allowed, payload
        if allowed:
            assert follow_up["channel"] in allowed, payload
            assert follow_up["at"] is not None and follow_up["reason"]
        else:
            assert follow_up["channel"] is None and follow_up["at"] is None, payload
            assert follow_up["reason"].startswith("no channel allowed")
        if follow_up["channel"] in ("sms", "push"):
            assert "S-9" in follow_up["text"]
        chosen.add(follow_up["channel"])
    # Every channel (and none) was chosen somewhere: the check above had each case to judge.
    assert chosen == {"call", "sms", "push", None}


async def test_the_dialer_stops_calling_a_lead_who_answers_sms_and_not_calls(
    db_pool: asyncpg.Pool, pg_url: str
) -> None:
    config = Config.model_validate(
        {
            "database": {"url": pg_url},
            "analytics": {"channels": {"policy": "greedy", "require_consent": []}},
        }
    )
    loaded = load_script(SCRIPTS / f"{SCRIPT}.yaml")
    await record_script_version(db_pool, SCRIPT, loaded.source, loaded.content_hash, None)
    settings = CampaignSettings(window="09:00-20:00", max_attempts=5)
    fields = {"order_number": "S-9", "store": "Lamps", "address": "1 Main St", "item": "a lamp"}
    async with db_pool.acquire() as conn, conn.transaction():
        campaign = await create_campaign(conn, "prefers-sms", SCRIPT, settings)
        due = NOW - timedelta(minutes=1)
        # Different segments: the texter's history is not the caller's prior.
        people = [
            NewLead("+14155550001", "UTC", fields | {"segment": "a"}, due),
            NewLead("+14155550002", "UTC", fields | {"segment": "b"}, due),
        ]
        ids = await add_due_leads(conn, campaign.id, people)
        texter, caller = ids["+14155550001"], ids["+14155550002"]
        # The texter replied to 8 SMS and missed 8 calls; the caller has no history.
        await record_events(
            conn,
            [
                EngagementEvent(
                    texter, f"{kind}{i}", channel, kind, NOW - timedelta(days=i + 1), f"{kind}{i}"
                )
                for i in range(8)
                for channel, kind in (("sms", "replied"), ("call", "missed"))
            ],
        )
    policy = calling_policy(settings, config.dialer)
    leased = await lease_eligible(db_pool, campaign.id, campaign.name, policy, "t", 2, NOW, 600)
    requests = [AttemptRequest(lead, f"ps-{lead.id}", "t", str(lead.id)) for lead in leased]
    claimed = await claim_attempts(db_pool, campaign.name, requests, policy, "t", NOW, 600)
    # A churn model whose risk grows with the call attempts alone: sigmoid(attempts).
    n = len(FEATURES)
    params = LinearChurnModel(
        FEATURES,
        (0.0,) * n,
        (0.0,) * n,
        (1.0,) * n,
        tuple(float(f == "attempts") for f in FEATURES),
        0.0,
        -1.0,
        0.0,
    )
    await save_model(db_pool, FEATURES, params.params(), {}, {})  # fmt: skip
    ended = NOW + timedelta(seconds=40)
    step = next_step(Disposition.NO_ANSWER, ended, config.dialer)
    assert not step.done  # without the advisor, both leads would be called again
    results = [AttemptResult(r.call_id, Disposition.NO_ANSWER, step, ended) for r in claimed]
    async with db_pool.acquire() as conn:
        advisor = outcome_advisor(config.analytics, config.dialer)
        await finish_attempts(conn, "t", results, advisor)
    rows = {
        r["id"]: (r["status"], r["block_reason"])
        for r in await db_pool.fetch("SELECT id, status, block_reason FROM leads")
    }
    assert rows[texter] == ("done", "prefers_sms")
    assert rows[caller] == ("pending", None)
    plans = {
        r["lead_id"]: r["channel"]
        for r in await db_pool.fetch("SELECT lead_id, channel FROM follow_ups")
    }
    assert plans == {texter: "sms", caller: "call"}
    # The CRM hears each lead's churn risk and what raised it.
    events = await db_pool.fetch("SELECT payload FROM outbox WHERE event_type = 'call.outcome'")
    for row in events:
        churn = row["payload"]["churn"]
        assert churn["score"] == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-3)
        assert churn["model_version"] == 1
        assert churn["top_features"] == [{"feature": "attempts", "value": 1.0, "contribution": 1.0}]
