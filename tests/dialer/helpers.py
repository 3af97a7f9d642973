"""Shared pieces of the dialer tests: campaigns and leads in a real database, pbxsim, a Dialer."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg

from dialer.campaigns import Campaign, CampaignSettings, create_campaign
from dialer.engine import Dialer
from dialer.settings import DialerSettings, RetryDelays, TrunkSettings
from pbxsim import PbxSim, SimConfig
from pbxsim.dialplan import DialplanStep
from pbxsim.scenario import OutcomeWeights, Scenario

# Answered calls run AMD and hang up after a moment: no call session is involved, so the
# disposition comes from AMI alone (AMD's verdict for answered calls).
TEST_CONTEXT = "outdial-test"
TEST_DIALPLAN = {
    TEST_CONTEXT: [
        DialplanStep.model_validate(s) for s in ("Answer()", "AMD()", "Wait(1)", "Hangup()")
    ]
}
# pbxsim outcome -> the disposition the dialer must record.
EXPECTED = {
    "answer": "answered",
    "machine": "machine",
    "busy": "busy",
    "no_answer": "no-answer",
    "congestion": "congestion",
}
# Long enough that no retry comes due while a test runs.
RETRY = RetryDelays(busy_s=300, no_answer_s=1800, congestion_s=600, machine_s=3600, error_s=900)


def mixed_scenario(seed: int = 7) -> Scenario:
    return Scenario(
        seed=seed,
        ring_seconds=1.0,
        outcomes=OutcomeWeights(answer=4, busy=2, no_answer=2, congestion=1, machine=1),
    )


def sim_config(scenario: Scenario, speed: float = 50.0, **kwargs: object) -> SimConfig:
    return SimConfig(
        scenario=scenario, dialplan=TEST_DIALPLAN, speed=speed, record_audio=False, **kwargs
    )


def trunk_for(
    sim: PbxSim, name: str = "sim", cps: float = 200.0, channels: int = 100
) -> TrunkSettings:
    return TrunkSettings(
        name=name,
        host="127.0.0.1",
        port=sim.ami_port,
        username=sim.config.username,
        secret=sim.config.secret,
        dial_string="Local/{number}@customers",
        cps=cps,
        max_channels=channels,
        context=TEST_CONTEXT,
        ring_timeout_s=5.0,
    )


def dialer_settings(owner: str, **kwargs: object) -> DialerSettings:
    base: dict[str, object] = {
        "owner": owner,
        "poll_interval_s": 0.2,
        "window": "00:00-23:59",
        "max_attempts": 5,
        "max_attempts_per_day": 5,
        "retry": RETRY,
        "session_result_wait_s": 0.5,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
        "max_channels": 200,
    }
    base.update(kwargs)
    return DialerSettings.model_validate(base)


async def make_campaign(
    pool: asyncpg.Pool, name: str = "c1", settings: CampaignSettings | None = None
) -> Campaign:
    async with pool.acquire() as conn:
        return await create_campaign(conn, name, "test-script", settings or CampaignSettings())


def midday_timezone() -> str:
    """A zone whose local time is far from midnight now, so a 00:00-23:59 window is open."""
    hour = datetime.now(UTC).hour
    return "UTC" if 2 <= hour <= 21 else "Etc/GMT-8"  # Etc signs are inverted: UTC+8


async def add_leads(
    pool: asyncpg.Pool,
    campaign_id: int,
    numbers: Sequence[str],
    timezone: str | None = None,
    consent: bool = True,
) -> None:
    timezone = timezone or midday_timezone()
    await pool.executemany(
        """INSERT INTO leads (campaign_id, phone_e164, timezone, consent, next_attempt_at)
           VALUES ($1, $2, $3, $4, now() - interval '1 minute')""",
        [(campaign_id, n, timezone, consent) for n in numbers],
    )


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1555{i:07d}" for i in range(start, start + n)]


async def wait_attempts_settled(pool: asyncpg.Pool, expected: int) -> None:
    """Until `expected` attempts exist and all have ended (bound it with asyncio.timeout)."""
    while True:
        row = await pool.fetchrow(
            "SELECT count(*) AS n, count(ended_at) AS ended FROM call_attempts"
        )
        if row["n"] >= expected and row["ended"] == row["n"]:
            return
        await asyncio.sleep(0.1)


async def until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Poll `check` until it holds (bound it with asyncio.timeout)."""
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(dialer: Dialer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(dialer.run())
    try:
        async with asyncio.timeout(10):
            await dialer.wait_connected()
        yield task
    finally:
        dialer.stop()
        await asyncio.wait_for(task, 60)
