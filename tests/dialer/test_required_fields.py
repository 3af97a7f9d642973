"""The dialer never dials a lead its campaign's current script cannot be run with: at lease
time such a lead is blocked for good, with the field in `block_reason` and a compliance
event, while the campaign's other leads are called."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from compliance.gates import BlockReason, LeadFacts, evaluate
from dialer.campaigns import CampaignSettings, calling_policy
from dialer.engine import Dialer
from dialer.settings import DialerSettings
from pbxsim import PbxSim, Scenario
from store.scripts import record_script_version
from tests.dialer.helpers import (
    add_leads,
    dialer_settings,
    make_campaign,
    running,
    sim_config,
    trunk_for,
    until,
)

SCRIPT = "test-script"  # helpers.make_campaign's script
NOON = datetime(2026, 3, 4, 12, tzinfo=UTC)


async def test_a_lead_lacking_a_required_field_is_blocked_not_dialled(
    db_pool: asyncpg.Pool,
) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, ["+15550000001", "+15550000002", "+15550000003"])
    # The leads came in under a script that needed nothing; the version loaded since needs
    # the customer's name.
    await record_script_version(db_pool, SCRIPT, "v1", "h1", None, [])
    await db_pool.execute(
        """UPDATE leads SET fields = CASE phone_e164
               WHEN '+15550000001' THEN '{"customer_name": "Ann"}'::jsonb
               WHEN '+15550000002' THEN '{"customer_name": "  "}'::jsonb
               ELSE '{}'::jsonb END"""
    )
    await record_script_version(db_pool, SCRIPT, "v2", "h2", None, ["customer_name"])
    async with PbxSim(sim_config(Scenario(ring_seconds=0.5))) as sim:
        dialer = Dialer(db_pool, dialer_settings("req"), [trunk_for(sim)])
        async with running(dialer), asyncio.timeout(30):
            await until(
                lambda: db_pool.fetchval(
                    "SELECT count(*) = 3 FROM leads WHERE status IN ('done', 'blocked')"
                )
            )
            await sim.wait_calls_done(1, timeout=10)
    dialled = {r.number for r in sim.calls}
    assert dialled == {"+15550000001"}
    leads = {
        r["phone_e164"]: (r["status"], r["block_reason"], r["attempts"])
        for r in await db_pool.fetch("SELECT * FROM leads")
    }
    assert leads["+15550000002"] == ("blocked", "missing_field:customer_name", 0)
    assert leads["+15550000003"] == ("blocked", "missing_field:customer_name", 0)
    events = await db_pool.fetch(
        "SELECT direction, category, action, detail FROM compliance_events ORDER BY id"
    )
    assert [(e["direction"], e["category"], e["action"], e["detail"]["field"]) for e in events] == [
        ("dialer", "missing_field", "blocked", "customer_name")
    ] * 2


def test_the_gate_blocks_for_good_and_names_the_field() -> None:
    facts = LeadFacts("UTC", True, 0, None, 0, False, False, ("item", "address"))
    verdict = evaluate(facts, calling_policy(CampaignSettings(), DialerSettings()), NOON)
    assert (verdict.reason, verdict.permanent, verdict.label) == (
        BlockReason.MISSING_FIELD,
        True,
        "missing_field:item",
    )
    # DNC outranks it: the lead is not to be called whatever its data.
    dnc = LeadFacts("UTC", True, 0, None, 0, True, False, ("item",))
    assert evaluate(dnc, calling_policy(CampaignSettings(), DialerSettings()), NOON).label == (
        "dnc_global"
    )
