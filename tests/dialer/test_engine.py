"""The Dialer against pbxsim on a real database: drain, session outcomes, login, pause, leases."""

from __future__ import annotations

import asyncio
import logging
import socket
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from dialer.campaigns import CampaignSettings, set_status
from dialer.engine import Dialer
from dialer.leasing import lease, reclaim_expired
from dialer.settings import TrunkSettings
from pbxsim import PbxSim, SimConfig
from pbxsim.dialplan import RECORD_STEP, DialplanStep
from pbxsim.scenario import OutcomeWeights, Scenario
from tests.dialer.helpers import (
    TEST_CONTEXT,
    add_leads,
    dialer_settings,
    make_campaign,
    numbers,
    running,
    sim_config,
    trunk_for,
    until,
    wait_attempts_settled,
)

ANSWER_ALL = Scenario(seed=1, ring_seconds=0.2, outcomes=OutcomeWeights(answer=1))


def long_call_config(wait_s: float, speed: float):  # type: ignore[no-untyped-def]
    config = sim_config(ANSWER_ALL, speed=speed)
    config.dialplan = {
        TEST_CONTEXT: [DialplanStep.model_validate(s) for s in ("Answer()", f"Wait({wait_s})")]
    }
    return config


async def test_stop_drains_hangs_up_after_the_bound_and_releases_every_lease(
    db_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dialer")
    campaign = await make_campaign(db_pool, settings=CampaignSettings(max_channels=4))
    await add_leads(db_pool, campaign.id, numbers(10))
    async with PbxSim(long_call_config(wait_s=600, speed=1)) as sim:
        dialer = Dialer(db_pool, dialer_settings("drain", drain_timeout_s=0.3), [trunk_for(sim)])
        task = asyncio.create_task(dialer.run())
        async with asyncio.timeout(20):
            await until(lambda: sum(r.reason == 4 for r in sim.calls) == 4)
            dialer.stop()
            await task  # run() returns once drained
        assert all(r.done for r in sim.calls)
    attempts = await db_pool.fetch("SELECT disposition, ended_at FROM call_attempts")
    assert len(attempts) == 4  # the campaign cap held
    assert all(a["ended_at"] is not None and a["disposition"] == "answered" for a in attempts)
    assert await db_pool.fetchval("SELECT count(*) FROM leads WHERE status = 'leased'") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM leads WHERE lease_owner IS NOT NULL") == 0
    # Numbers never reach the logs in clear.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "draining" in logged
    assert not any(n in logged for n in numbers(10))


async def test_the_call_sessions_disposition_wins_over_ami(db_pool: asyncpg.Pool) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(3))
    async with PbxSim(long_call_config(wait_s=20, speed=10)) as sim:
        dialer = Dialer(db_pool, dialer_settings("sess"), [trunk_for(sim)])
        async with running(dialer), asyncio.timeout(30):
            # Play the live-call session: it writes the calls row while the call is up.
            written: set[str] = set()
            while len(written) < 3:
                for row in await db_pool.fetch("SELECT call_id, lead_id FROM call_attempts"):
                    if row["call_id"] not in written:
                        await db_pool.execute(
                            """INSERT INTO calls (call_id, campaign_id, lead_id, ended_at,
                                                  disposition)
                               VALUES ($1, $2, $3, now(), 'transferred')""",
                            row["call_id"],
                            campaign.id,
                            row["lead_id"],
                        )
                        written.add(row["call_id"])
                await asyncio.sleep(0.01)
            await wait_attempts_settled(db_pool, 3)
    rows = await db_pool.fetch("SELECT disposition FROM call_attempts")
    assert [r["disposition"] for r in rows] == ["transferred"] * 3
    assert await db_pool.fetchval("SELECT count(*) FROM leads WHERE status = 'done'") == 3


async def test_a_wrong_ami_secret_never_dials(db_pool: asyncpg.Pool) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(3))
    async with PbxSim(sim_config(ANSWER_ALL)) as sim:
        trunk = trunk_for(sim).model_copy(update={"secret": SecretStr("wrong")})
        dialer = Dialer(db_pool, dialer_settings("badpw"), [trunk])
        task = asyncio.create_task(dialer.run())
        await asyncio.sleep(1.0)  # several login attempts with backoff
        dialer.stop()
        await asyncio.wait_for(task, 10)
    assert dialer.links[0].conn.connects == 0
    assert REGISTRY.get_sample_value("outdial_ami_connected") == 0
    assert sim.calls == []
    assert await db_pool.fetchval("SELECT count(*) FROM call_attempts") == 0


async def test_stop_while_the_pbx_is_unreachable_does_not_wait_out_the_backoff(
    db_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM with no live calls took about 29 s: the AMI reconnect loop slept out its
    backoff (up to reconnect_max_s) before it saw the stop."""
    caplog.set_level(logging.WARNING, logger="dialer.ami")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    trunk = TrunkSettings(name="down", port=port, secret=SecretStr("s"))
    # A first backoff of about 10 minutes: a stop that waited it out fails the bound below.
    settings = dialer_settings("down", reconnect_initial_s=600, reconnect_max_s=600)
    dialer = Dialer(db_pool, settings, [trunk])
    task = asyncio.create_task(dialer.run())
    async with asyncio.timeout(30):
        await until(lambda: any("cannot connect" in r.getMessage() for r in caplog.records))
    dialer.stop()
    await asyncio.wait_for(task, 30)
    assert dialer.links[0].conn.connects == 0


async def test_stop_with_live_calls_and_the_pbx_gone_ends_after_one_hangup_grace(
    db_pool: asyncpg.Pool,
) -> None:
    """The PBX went away under 8 live calls (no AMI, so no call's end is ever heard), then
    SIGTERM: the drain's hang-ups found no link and each waited out its grace for an end,
    one call after another (8 x 5 s here; a SIGTERM'd daemon of the chaos run hung so)."""
    live = 8
    campaign = await make_campaign(db_pool, settings=CampaignSettings(max_channels=live))
    await add_leads(db_pool, campaign.id, numbers(live))
    settings = dialer_settings("gone", drain_timeout_s=0.3, reconnect_max_s=600)
    async with PbxSim(long_call_config(wait_s=600, speed=1)) as sim:
        dialer = Dialer(db_pool, settings, [trunk_for(sim)])
        task = asyncio.create_task(dialer.run())
        async with asyncio.timeout(30):
            await until(lambda: sum(r.reason == 4 for r in sim.calls) == live)
    async with asyncio.timeout(30):  # the PBX is gone, and its AMI with it
        await until(lambda: not dialer.links[0].conn.connected)
    dialer.stop()
    # Bound: the drain timeout, one hang-up grace (5 s) and room for a loaded box; the
    # calls one after another took 40 s.
    await asyncio.wait_for(task, 25)
    attempts = await db_pool.fetch("SELECT disposition, ended_at FROM call_attempts")
    assert len(attempts) == live
    assert all(a["ended_at"] is not None for a in attempts)
    assert await db_pool.fetchval("SELECT count(*) FROM leads WHERE lease_owner IS NOT NULL") == 0


async def test_a_paused_campaign_is_not_dialled_until_resumed(db_pool: asyncpg.Pool) -> None:
    paused = await make_campaign(db_pool, "paused")
    active = await make_campaign(db_pool, "active")
    await add_leads(db_pool, paused.id, numbers(5))
    await add_leads(db_pool, active.id, numbers(5, start=100))
    async with db_pool.acquire() as conn:
        await set_status(conn, "paused", "paused")
    async with PbxSim(sim_config(ANSWER_ALL)) as sim:
        dialer = Dialer(db_pool, dialer_settings("pause"), [trunk_for(sim)])
        async with running(dialer), asyncio.timeout(30):
            await wait_attempts_settled(db_pool, 5)
            assert {r.number for r in sim.calls} == set(numbers(5, start=100))
            async with db_pool.acquire() as conn:
                await set_status(conn, "paused", "active")
            await wait_attempts_settled(db_pool, 10)
    assert len({r.number for r in sim.calls}) == 10


async def test_a_crashed_owners_leases_return_and_its_open_attempts_end(
    db_pool: asyncpg.Pool,
) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(4))
    now = datetime.now(UTC)
    async with db_pool.acquire() as conn:
        held = await lease(conn, campaign.id, "crashed", 4, now, lease_s=60)
        assert len(held) == 4
        await conn.execute(
            """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
               VALUES ('open-1', $1, $2, 't', 'crashed')""",
            held[0].id,
            campaign.id,
        )
        # Another dialer sees nothing to lease while the leases are valid...
        assert await lease(conn, campaign.id, "other", 4, now, lease_s=60) == []
        assert await reclaim_expired(conn, now + timedelta(seconds=30)) == []
        # ...and everything once they expired.
        returned = await reclaim_expired(conn, now + timedelta(seconds=61))
        assert sorted(returned) == sorted(lead.id for lead in held)
        again = await lease(conn, campaign.id, "other", 4, now + timedelta(seconds=61), 60)
        assert len(again) == 4
    attempt = await db_pool.fetchrow("SELECT ended_at, disposition FROM call_attempts")
    assert attempt["ended_at"] is not None and attempt["disposition"] == "error"


async def test_only_a_recording_campaigns_calls_are_recorded(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The dialer asks (OUTDIAL_RECORD=1) for the campaign that records; the deploy dialplan's
    step, run by pbxsim, then writes one WAV per call of that campaign and none for the other."""
    taped = await make_campaign(db_pool, "taped", CampaignSettings(record=True))
    plain = await make_campaign(db_pool, "plain")
    await add_leads(db_pool, taped.id, numbers(3))
    await add_leads(db_pool, plain.id, numbers(3, start=100))
    steps = ("Answer()", RECORD_STEP, "Wait(0.5)", "Hangup()")
    config = SimConfig(
        scenario=ANSWER_ALL,
        dialplan={TEST_CONTEXT: [DialplanStep.model_validate(s) for s in steps]},
        speed=10,
        monitor_dir=tmp_path,
    )
    async with PbxSim(config) as sim:
        dialer = Dialer(db_pool, dialer_settings("rec"), [trunk_for(sim)])
        async with running(dialer), asyncio.timeout(60):
            await wait_attempts_settled(db_pool, 6)
            await until(lambda: all(r.done for r in sim.calls))
    attempts = await db_pool.fetch("SELECT call_id, campaign_id FROM call_attempts")
    expected = {tmp_path / "outdial" / f"{a['call_id']}.wav" for a in attempts
                if a["campaign_id"] == taped.id}  # fmt: skip
    assert len(expected) == 3 and set((tmp_path / "outdial").iterdir()) == expected
    assert sorted(p for r in sim.calls for p in r.recordings) == sorted(expected)
    for path in expected:
        with wave.open(str(path)) as recording:
            assert (recording.getframerate(), recording.getnchannels()) == (8000, 1)
