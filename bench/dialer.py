"""Sustained originates per second: the Dialer against pbxsim and an embedded PostgreSQL.

Runs a campaign of `--leads` leads with a mixed scenario through one Dialer and measures
originates per second from the first Originate to the last. Accounting is exact: pbxsim's
calls, the attempts in the database and their dispositions must all agree, else it exits 1.

    .venv/bin/python bench/dialer.py [--leads 4000] [--cps 400] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dialer.campaigns import CampaignSettings, create_campaign  # noqa: E402
from dialer.engine import Dialer  # noqa: E402
from dialer.settings import DialerSettings, RetryDelays, TrunkSettings  # noqa: E402
from pbxsim import PbxSim, SimConfig  # noqa: E402
from pbxsim.dialplan import DialplanStep  # noqa: E402
from pbxsim.scenario import OutcomeWeights, Scenario  # noqa: E402
from store.db import Database  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402

EXPECTED = {
    "answer": "answered",
    "machine": "machine",
    "busy": "busy",
    "no_answer": "no-answer",
    "congestion": "congestion",
}


async def bench(leads: int, cps: float, channels: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-dialer-") as tmp:
        db = await Database.open(DatabaseSettings(pool_max=10), Path(tmp))
        try:
            return await _run(db, leads, cps, channels)
        finally:
            await db.close()


async def _run(db: Database, leads: int, cps: float, channels: int) -> dict[str, object]:
    pool = db.pool
    async with pool.acquire() as conn:
        campaign = await create_campaign(conn, "bench", "bench", CampaignSettings())
    await pool.executemany(
        """INSERT INTO leads (campaign_id, phone_e164, timezone, next_attempt_at)
           VALUES ($1, $2, 'UTC', now() - interval '1 minute')""",
        [(campaign.id, f"+1555{i:07d}") for i in range(leads)],
    )
    scenario = Scenario(
        seed=1,
        ring_seconds=1.0,
        outcomes=OutcomeWeights(answer=4, busy=2, no_answer=2, congestion=1, machine=1),
    )
    plan = {"bench": [DialplanStep.model_validate(s) for s in ("Answer()", "AMD()", "Hangup()")]}
    config = SimConfig(scenario=scenario, dialplan=plan, speed=100, record_audio=False)
    async with PbxSim(config) as sim:
        trunk = TrunkSettings(
            name="sim",
            port=sim.ami_port,
            username=config.username,
            secret=config.secret,
            dial_string="Local/{number}@customers",
            cps=cps,
            max_channels=channels,
            context="bench",
            ring_timeout_s=5,
        )
        settings = DialerSettings(
            owner="bench",
            window="00:00-23:59",
            max_channels=channels,
            lease_batch=200,
            poll_interval_s=0.2,
            retry=RetryDelays(busy_s=3600, no_answer_s=3600, congestion_s=3600, machine_s=3600),
            session_result_wait_s=0,
        )
        dialer = Dialer(pool, settings, [trunk])
        task = asyncio.create_task(dialer.run())
        async with asyncio.timeout(20):
            await dialer.wait_connected()
        started = time.perf_counter()
        async with asyncio.timeout(300):
            await _until(lambda: dialer.originated >= leads, 0.005)
        elapsed = time.perf_counter() - started
        async with asyncio.timeout(60):
            await sim.wait_calls_done(leads, timeout=60)
            await _until(lambda: dialer.settled >= leads, 0.05)
        dialer.stop()
        await task
    rows = await pool.fetch("SELECT call_id, disposition FROM call_attempts")
    ours = {r["call_id"]: r["disposition"] for r in rows}
    theirs = {r.call_id: EXPECTED[r.outcome] for r in sim.calls}
    exact = ours == theirs and len(rows) == leads
    return {
        "leads": leads,
        "cps_cap": cps,
        "max_channels": channels,
        "originates": dialer.originated,
        "seconds": round(elapsed, 3),
        "originates_per_s": round(leads / elapsed, 1),
        "dispositions": dict(Counter(ours.values())),
        "exact_accounting": exact,
    }


async def _until(check: Callable[[], bool], every_s: float) -> None:
    while not check():  # noqa: ASYNC110 - polling a counter is the measurement itself
        await asyncio.sleep(every_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=4000)
    parser.add_argument("--cps", type=float, default=400.0, help="trunk CPS cap")
    parser.add_argument("--channels", type=int, default=400, help="live call cap")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    try:
        import uvloop

        result = uvloop.run(bench(args.leads, args.cps, args.channels))
    except ImportError:
        result = asyncio.run(bench(args.leads, args.cps, args.channels))
    print(f"originates: {result['originates']} in {result['seconds']} s")
    print(f"sustained originates/s: {result['originates_per_s']} (cap {result['cps_cap']})")
    print(f"dispositions: {result['dispositions']}")
    print(f"exact accounting (pbxsim == database, call by call): {result['exact_accounting']}")
    if args.json:
        print(json.dumps(result))
    if not result["exact_accounting"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
