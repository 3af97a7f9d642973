"""The CRM outbox end to end: a campaign against pbxsim, outcome events written with each
attempt's disposition, delivered to a flaky webhook receiver, and nothing lost in a crash."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from crm.webhooks import WebhookSender
from dialer.engine import Dialer
from pbxsim import PbxSim
from pbxsim.dialplan import DialplanStep
from pbxsim.scenario import OutcomeWeights, Scenario
from store.outbox import pending_count
from tests.dialer.crm import Crm, CrmRequest, crm_server
from tests.dialer.helpers import (
    RETRY,
    TEST_CONTEXT,
    add_leads,
    dialer_settings,
    make_campaign,
    numbers,
    running,
    sim_config,
    trunk_for,
    until,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Retries come due at once, so leads are dialled several times and per-lead order matters.
FAST_RETRY = RETRY.model_copy(
    update={"busy_s": 0.05, "no_answer_s": 0.05, "congestion_s": 0.05, "machine_s": 0.05}
)
# What the stand-in call session records for answered people, in turn.
VERDICTS = [
    ("completed", "confirmed", True, None),
    ("transferred", "agent", False, "asked_for_agent"),
]


def scenario(seed: int) -> Scenario:
    return Scenario(
        seed=seed,
        ring_seconds=1.0,
        outcomes=OutcomeWeights(answer=4, busy=2, no_answer=2, congestion=1, machine=1),
    )


def held_call_config(seed: int, speed: float):  # type: ignore[no-untyped-def]
    """Answered calls stay up until hung up (by the stand-in session below)."""
    config = sim_config(scenario(seed), speed=speed)
    config.dialplan = {
        TEST_CONTEXT: [DialplanStep.model_validate(s) for s in ("Answer()", "AMD()", "Wait(60)")]
    }
    return config


async def play_sessions(sim: PbxSim, pool: asyncpg.Pool) -> None:
    """Play the live-call session for answered calls once AMD has decided: for a person,
    write the `calls` row with a verdict, then end the call; a machine is just hung up."""
    handled: set[str] = set()
    verdicts = itertools.cycle(VERDICTS)
    while True:
        for record in list(sim.calls):
            if record.call_id in handled or record.amd_status is None:
                continue
            channel = sim.find_channel(record.channel)
            if channel is None:
                continue
            if record.outcome == "answer":
                disposition, outcome, success, reason = next(verdicts)
                await pool.execute(
                    """INSERT INTO calls (call_id, campaign_id, lead_id, ended_at, disposition,
                                          outcome, success, transfer_reason, script_name)
                       SELECT call_id, campaign_id, lead_id, now(), $2, $3, $4, $5, 'order'
                       FROM call_attempts WHERE call_id = $1""",
                    record.call_id,
                    disposition,
                    outcome,
                    success,
                    reason,
                )
            handled.add(str(record.call_id))
            sim.hangup_channel(channel)
        await asyncio.sleep(0.01)


@asynccontextmanager
async def background(coro: Coroutine[object, object, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(coro)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def sending(sender: WebhookSender) -> AsyncIterator[None]:
    await sender.start()
    try:
        yield
    finally:
        await sender.stop()


async def campaign_settled(pool: asyncpg.Pool) -> bool:
    """No lead is leased or due, and no attempt is open."""
    return bool(
        await pool.fetchval(
            """SELECT NOT EXISTS (SELECT 1 FROM leads
                                  WHERE status = 'leased'
                                     OR (status = 'pending' AND next_attempt_at <= now()))
                  AND NOT EXISTS (SELECT 1 FROM call_attempts WHERE ended_at IS NULL)"""
        )
    )


async def all_delivered(pool: asyncpg.Pool) -> bool:
    return await pending_count(pool) == 0


async def attempts_with_sessions(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT a.call_id, a.lead_id, a.disposition, a.started_at, a.ended_at,
                  a.answered_at, c.call_id AS session, c.outcome, c.success,
                  c.transfer_reason, l.status AS lead_status, l.external_id
           FROM call_attempts a
           JOIN leads l ON l.id = a.lead_id
           LEFT JOIN calls c ON c.call_id = a.call_id
           ORDER BY a.lead_id, a.started_at"""
    )


def assert_every_attempt_delivered_once_in_lead_order(
    crm: Crm, attempts: Sequence[asyncpg.Record], failures: int
) -> None:
    keys = Counter(r.key for r in crm.accepted)
    assert keys == Counter(f"call.outcome:{a['call_id']}" for a in attempts)
    assert max(keys.values()) == 1  # exactly once per idempotency key
    assert [r.accepted for r in crm.requests[:failures]] == [False] * failures
    assert len(crm.requests) == len(attempts) + failures
    assert all(r.signature_ok for r in crm.requests)
    assert all(r.key == r.event["idempotency_key"] for r in crm.requests)
    for lead_id, rows in itertools.groupby(attempts, key=lambda a: a["lead_id"]):
        calls = [a["call_id"] for a in rows]
        seen = [r.event["call_id"] for r in crm.accepted if r.event["lead_id"] == lead_id]
        assert seen == calls
        # Not even a failed try of a later event went out before the earlier one was accepted.
        for earlier, later in itertools.pairwise(calls):
            assert _first_request(crm.requests, later) > _accepted_at(crm.requests, earlier)


def _first_request(requests: Sequence[CrmRequest], call_id: str) -> int:
    return next(i for i, r in enumerate(requests) if r.event["call_id"] == call_id)


def _accepted_at(requests: Sequence[CrmRequest], call_id: str) -> int:
    return next(i for i, r in enumerate(requests) if r.event["call_id"] == call_id and r.accepted)


def assert_events_match_the_attempts(
    crm: Crm,
    attempts: Sequence[asyncpg.Record],
    campaign: str,
    reclaimed: frozenset[str] = frozenset(),
) -> None:
    event_of = {r.event["call_id"]: r.event for r in crm.accepted}
    last_of_lead = {a["lead_id"]: a["call_id"] for a in attempts}  # ordered by started_at
    for a in attempts:
        event = event_of[a["call_id"]]
        assert event["event"] == "call.outcome"
        assert event["lead_id"] == a["lead_id"]
        assert event["campaign"] == campaign
        assert event["external_id"] == a["external_id"]
        assert event["disposition"] == a["disposition"]
        assert datetime.fromisoformat(event["occurred_at"]) == a["ended_at"]
        # The session's verdict travels with the event; attempts with no session carry none.
        assert (event["outcome"], event["success"]) == (a["outcome"], a["success"])
        details = event["details"]
        assert details["transfer_reason"] == a["transfer_reason"]
        assert details["answered"] == (a["answered_at"] is not None)
        is_last = last_of_lead[a["lead_id"]] == a["call_id"]
        assert details["lead_done"] == (is_last and a["lead_status"] == "done")
        # A reclaimed lead is due again at once; otherwise a lead not done has a retry time.
        expect_retry = not details["lead_done"] and a["call_id"] not in reclaimed
        assert (details["retry_at"] is not None) == expect_retry
    assert not any("+1555" in json.dumps(r.event) for r in crm.requests)


async def test_every_finished_attempt_reaches_a_flaky_crm_once_in_lead_order(
    db_pool: asyncpg.Pool,
) -> None:
    campaign = await make_campaign(db_pool, "spring")
    await add_leads(db_pool, campaign.id, numbers(20))
    await db_pool.execute("UPDATE leads SET external_id = 'crm-' || id")
    settings = dialer_settings("one", retry=FAST_RETRY, max_attempts=3)
    async with (
        crm_server(failures=3) as crm,
        PbxSim(held_call_config(seed=5, speed=10)) as sim,
    ):
        dialer = Dialer(db_pool, settings, [trunk_for(sim)])
        async with (
            sending(WebhookSender(db_pool, crm.settings())),
            background(play_sessions(sim, db_pool)),
            running(dialer),
            asyncio.timeout(90),
        ):
            await until(lambda: campaign_settled(db_pool))
            await until(lambda: all_delivered(db_pool))

    attempts = await attempts_with_sessions(db_pool)
    # The run exercised what it claims to: retried leads, and both session verdicts.
    assert max(Counter(a["lead_id"] for a in attempts).values()) > 1
    assert {"completed", "transferred", "busy"} <= {a["disposition"] for a in attempts}
    assert_every_attempt_delivered_once_in_lead_order(crm, attempts, failures=3)
    assert_events_match_the_attempts(crm, attempts, "spring")
    # Every event was written with its disposition: one outbox row per attempt, all delivered.
    rows = await db_pool.fetch("SELECT call_id, delivered_at FROM outbox")
    assert sorted(r["call_id"] for r in rows) == sorted(a["call_id"] for a in attempts)


async def start_dialer_process(pg_url: str, sim: PbxSim, owner: str) -> asyncio.subprocess.Process:
    settings = dialer_settings(owner, retry=FAST_RETRY, max_attempts=3, lease_s=1.0)
    trunk = trunk_for(sim)
    trunk_json = json.dumps(trunk.model_dump(mode="json") | {"secret": sim.config.secret})
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.dialer.dialer_proc",
        pg_url,
        settings.model_dump_json(),
        trunk_json,
        cwd=REPO,
        env=env,
    )


async def test_a_crash_between_disposition_and_delivery_loses_no_event(
    pg_url: str, db_pool: asyncpg.Pool
) -> None:
    campaign = await make_campaign(db_pool, "autumn")
    await add_leads(db_pool, campaign.id, numbers(12))
    async with PbxSim(held_call_config(seed=9, speed=5)) as sim:
        # A dialer in its own process settles some calls, then dies with calls still up: it
        # never had a webhook sender, so its events can only be in the outbox.
        proc = await start_dialer_process(pg_url, sim, "crashing")
        try:
            async with background(play_sessions(sim, db_pool)), asyncio.timeout(60):
                await until(
                    lambda: db_pool.fetchval(
                        """SELECT count(ended_at) >= 4 AND count(*) > count(ended_at)
                           FROM call_attempts"""
                    )
                )
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        crashed = await db_pool.fetch("SELECT call_id, ended_at FROM call_attempts")
        queued = await db_pool.fetch("SELECT call_id FROM outbox")
        # Disposition and event committed together: each ended attempt has its event, no
        # open one has any.
        assert sorted(r["call_id"] for r in queued) == sorted(
            r["call_id"] for r in crashed if r["ended_at"] is not None
        )
        assert any(r["ended_at"] is None for r in crashed)

        # A new dialer reclaims the dead one's leases (its open attempts end as errors, with
        # events) and finishes the campaign; a new sender delivers everything.
        async with crm_server(failures=3) as crm:
            dialer = Dialer(
                db_pool,
                dialer_settings("second", retry=FAST_RETRY, max_attempts=3),
                [trunk_for(sim)],
            )
            async with (
                background(play_sessions(sim, db_pool)),
                running(dialer),
                asyncio.timeout(90),
            ):
                await until(lambda: campaign_settled(db_pool))
            async with sending(WebhookSender(db_pool, crm.settings())), asyncio.timeout(30):
                await until(lambda: all_delivered(db_pool))

    attempts = await attempts_with_sessions(db_pool)
    open_at_crash = {r["call_id"] for r in crashed if r["ended_at"] is None}
    assert {a["disposition"] for a in attempts if a["call_id"] in open_at_crash} == {"error"}
    assert_every_attempt_delivered_once_in_lead_order(crm, attempts, failures=3)
    assert_events_match_the_attempts(crm, attempts, "autumn", frozenset(open_at_crash))
