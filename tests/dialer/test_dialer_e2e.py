"""End to end against pbxsim and a real PostgreSQL: whole campaigns, two dialers, AMI cuts."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import asyncpg
import pytest

from dialer.engine import Dialer
from pbxsim import PbxSim, Scenario
from store.db import create_pool
from store.settings import DatabaseSettings
from tests.dialer.helpers import (
    EXPECTED,
    RETRY,
    add_leads,
    dialer_settings,
    make_campaign,
    mixed_scenario,
    numbers,
    running,
    sim_config,
    trunk_for,
    until,
    wait_attempts_settled,
)

pytestmark = pytest.mark.slow

RETRY_DELAY = {
    "busy": RETRY.busy_s,
    "no-answer": RETRY.no_answer_s,
    "congestion": RETRY.congestion_s,
    "machine": RETRY.machine_s,
    "error": RETRY.error_s,
}


async def _attempts(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT a.call_id, a.lead_id, a.disposition, a.started_at, a.ended_at, a.owner,
                  a.amd_status,
                  l.phone_e164, l.status, l.next_attempt_at, l.attempts, l.lease_owner
           FROM call_attempts a JOIN leads l ON l.id = a.lead_id ORDER BY a.id"""
    )


async def test_thousand_leads_match_pbxsim_and_retries_follow_the_settings(
    db_pool: asyncpg.Pool,
) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(1000))
    async with PbxSim(sim_config(mixed_scenario())) as sim:
        dialer = Dialer(db_pool, dialer_settings("solo"), [trunk_for(sim)])
        async with running(dialer), asyncio.timeout(60):
            await wait_attempts_settled(db_pool, 1000)
            await sim.wait_calls_done(1000, timeout=10)

    attempts = await _attempts(db_pool)
    assert len(attempts) == 1000
    # Call by call: pbxsim's outcome is the disposition the dialer recorded.
    by_call = {a["call_id"]: a for a in attempts}
    assert len(sim.calls) == 1000
    for record in sim.calls:
        attempt = by_call[record.call_id]
        assert attempt["disposition"] == EXPECTED[record.outcome], record
        assert attempt["phone_e164"] == record.number
    assert Counter(a["disposition"] for a in attempts) == Counter(
        EXPECTED[r.outcome] for r in sim.calls
    )
    # Every outcome of the mixed scenario occurred, so every retry rule was exercised.
    assert set(EXPECTED.values()) <= {a["disposition"] for a in attempts}
    for a in attempts:
        assert a["lease_owner"] is None
        if a["disposition"] == "answered":
            assert a["status"] == "done"
        else:
            assert a["status"] == "pending"
            expected_delay = timedelta(seconds=RETRY_DELAY[a["disposition"]])
            assert a["next_attempt_at"] - a["ended_at"] == expected_delay


def _overlap_monitor(sim: PbxSim, seen: list[str]) -> asyncio.Task[None]:
    """Watch pbxsim's live channels: record any number with two calls up at once."""

    async def watch() -> None:
        while True:
            live = Counter(
                c.name.split("/", 1)[1].split("@", 1)[0]
                for c in sim.live_channels()
                if c.name.endswith(";1")
            )
            seen.extend(n for n, k in live.items() if k > 1)
            await asyncio.sleep(0)

    return asyncio.create_task(watch())


async def test_two_dialers_never_call_one_lead_twice_at_once(
    pg_url: str, db_pool: asyncpg.Pool
) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(150))
    # Short retry delays so leads come back while both dialers are still working.
    fast = RETRY.model_copy(
        update={"busy_s": 0.05, "no_answer_s": 0.05, "congestion_s": 0.05, "machine_s": 0.05}
    )
    other_pool = await create_pool(pg_url, DatabaseSettings())
    overlaps: list[str] = []
    try:
        async with PbxSim(sim_config(mixed_scenario(seed=3))) as sim:
            monitor = _overlap_monitor(sim, overlaps)
            one = Dialer(db_pool, dialer_settings("one", retry=fast), [trunk_for(sim)])
            two = Dialer(other_pool, dialer_settings("two", retry=fast), [trunk_for(sim)])
            async with running(one), running(two), asyncio.timeout(60):
                await until(
                    lambda: db_pool.fetchval(
                        "SELECT count(*) = 0 FROM leads WHERE status NOT IN ('done', 'blocked')"
                    )
                )
            monitor.cancel()
    finally:
        await other_pool.close()

    attempts = await _attempts(db_pool)
    assert {a["owner"] for a in attempts} == {"one", "two"}
    # Leads were retried until done or out of attempts: many were dialled more than once.
    assert max(Counter(a["lead_id"] for a in attempts).values()) > 1
    assert overlaps == []
    by_lead: dict[int, list[asyncpg.Record]] = {}
    for a in attempts:
        by_lead.setdefault(a["lead_id"], []).append(a)
    for rows in by_lead.values():
        rows.sort(key=lambda r: r["started_at"])
        for earlier, later in zip(rows, rows[1:], strict=False):
            assert earlier["ended_at"] <= later["started_at"]
    # pbxsim saw exactly the attempts the database holds, each once.
    assert Counter(r.call_id for r in sim.calls) == Counter(a["call_id"] for a in attempts)


async def test_three_ami_cuts_lose_and_duplicate_no_attempt(db_pool: asyncpg.Pool) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(600))
    config = sim_config(mixed_scenario(seed=11))
    config.faults.ami_drop_after_events = 2500
    async with PbxSim(config) as sim:
        dialer = Dialer(db_pool, dialer_settings("cut"), [trunk_for(sim, cps=100)])
        link = dialer.links[0]
        async with running(dialer), asyncio.timeout(90):
            # The fault drops every session after N events; stop it after the third cut.
            await until(lambda: link.conn.connects >= 4)
            sim.config.faults.ami_drop_after_events = None
            await wait_attempts_settled(db_pool, 600)
            await sim.wait_calls_done(len(sim.calls), timeout=10)

    assert link.conn.connects == 4
    attempts = await _attempts(db_pool)
    by_call = {a["call_id"]: a for a in attempts}
    # No duplicate: each lead was dialled exactly once (all retries are far in the future),
    # and pbxsim saw each call id at most once.
    assert len(attempts) == 600
    assert len({a["lead_id"] for a in attempts}) == 600
    sim_ids = Counter(r.call_id for r in sim.calls)
    assert max(sim_ids.values()) == 1
    # Nothing lost: every call pbxsim placed is an attempt, settled.
    assert set(sim_ids) <= set(by_call)
    assert all(a["ended_at"] is not None for a in attempts)
    settled_unknown = 0
    for record in sim.calls:
        attempt = by_call[record.call_id]
        expected = EXPECTED[record.outcome]
        if attempt["disposition"] == "error":
            settled_unknown += 1  # its end fell into an outage and left no trace
        elif expected == "machine" and attempt["amd_status"] is None:
            # Answered, and AMD's verdict fell into an outage with the channel: it is known
            # to have been answered, no more.
            assert attempt["disposition"] == "answered"
            settled_unknown += 1
        else:
            assert attempt["disposition"] == expected, record
    # Attempts pbxsim never saw (the Originate died with the link) are settled as errors.
    for a in attempts:
        if a["call_id"] not in sim_ids:
            assert a["disposition"] == "error"
    # Most calls kept their real outcome: the cuts cost at most the calls in flight.
    assert settled_unknown < 100


async def test_a_hang_up_during_amd_is_retried_not_done(db_pool: asyncpg.Pool) -> None:
    """The customer answers and hangs up while AMD() still listens: AMD says HANGUP, and the
    lead is called again after `retry.early_hangup_s` instead of being closed as answered."""
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(1))
    impatient = {
        "amd": {"status": "HUMAN", "cause": "HUMAN-800-800", "seconds": 3},
        "steps": [{"silence": 0.5}, {"hangup": True}],
    }
    scenario = Scenario.model_validate({"ring_seconds": 0.5, "customers": {"impatient": impatient}})
    retry = RETRY.model_copy(update={"early_hangup_s": 120})
    async with PbxSim(sim_config(scenario)) as sim:
        dialer = Dialer(db_pool, dialer_settings("amd", retry=retry), [trunk_for(sim)])
        async with running(dialer), asyncio.timeout(30):
            await wait_attempts_settled(db_pool, 1)
    (attempt,) = await _attempts(db_pool)
    assert (attempt["amd_status"], attempt["disposition"]) == ("HANGUP", "early-hangup")
    assert attempt["status"] == "pending"
    assert attempt["next_attempt_at"] - attempt["ended_at"] == timedelta(seconds=120)
