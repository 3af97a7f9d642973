"""Turn log throughput: 100,000 turns through TurnWriter into PostgreSQL.

    .venv/bin/python bench/turn_log.py [--turns N] [--calls N] [--json]

Turns look like real ones (text, intent, entities, emotion scores, per-stage timings) and are
written by concurrent "calls", each yielding to the event loop after every turn, as live call
sessions do. The clock runs from the first write() to the end of close(), when every turn is
committed. An embedded PostgreSQL runs in a temporary directory unless OUTDIAL_DATABASE_URL
is set (the bench then uses a scratch database on that server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import scratch_database  # noqa: E402
from store.db import create_pool  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402
from store.turns import TurnRecord, TurnWriter  # noqa: E402

TARGET_TURNS_PER_S = 10_000
SCRATCH_DB = "outdial_bench_turns"


def make_turn(call: int, seq: int) -> TurnRecord:
    if seq % 2 == 0:
        return TurnRecord(
            call_id=f"bench-{call}", seq=seq, speaker="bot", node="offer",
            text="We can split the balance into three payments. Would that work for you?",
            timings={"tts_first_ms": 118.0, "tts_total_ms": 640.5},
        )  # fmt: skip
    return TurnRecord(
        call_id=f"bench-{call}", seq=seq, speaker="customer", node="offer",
        text="yes three payments starting next friday", asr_confidence=0.87, intent="affirm",
        intent_confidence=0.93, entities={"date": "2026-03-13", "count": 3},
        emotion={"pitch_z": 0.4, "energy_z": 0.2, "rate_z": -0.1}, agitation=0.12,
        timings={"vad_ms": 300.0, "asr_ms": 95.2, "nlu_ms": 3.1, "decide_ms": 0.4},
    )  # fmt: skip


async def _call(writer: TurnWriter, call: int, turns: int) -> None:
    for seq in range(turns):
        writer.write(make_turn(call, seq))
        await asyncio.sleep(0)


async def run(turns: int, calls: int) -> dict[str, object]:
    async with scratch_database(SCRATCH_DB) as db:
        url = db.url
        pool = await create_pool(url, DatabaseSettings(pool_min=1, pool_max=4))
        try:
            with tempfile.TemporaryDirectory(prefix="outdial-spool-") as spool:
                writer = TurnWriter(pool, Path(spool))
                await writer.start()
                started = time.perf_counter()
                per_call, extra = divmod(turns, calls)
                await asyncio.gather(
                    *(_call(writer, c, per_call + (c < extra)) for c in range(calls))
                )
                await writer.close()
                seconds = time.perf_counter() - started
            stored = await pool.fetchval("SELECT count(*) FROM turns")
        finally:
            await pool.close()
    stats = writer.stats()
    return {
        "turns": turns,
        "calls": calls,
        "stored": stored,
        "seconds": round(seconds, 3),
        "turns_per_s": round(turns / seconds, 1),
        "target_turns_per_s": TARGET_TURNS_PER_S,
        "spooled": stats.rows_spooled,
        "overflow_spills": stats.overflow_spills,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200, help="concurrent writers")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = uvloop.run(run(args.turns, args.calls))  # the daemon's event loop
    print(f"turns: {result['turns']:,} from {result['calls']} calls in {result['seconds']} s")
    print(f"stored: {result['stored']:,}, spooled on the way: {result['spooled']:,}")
    print(f"throughput: {result['turns_per_s']:,.0f} turns/s (target >= {TARGET_TURNS_PER_S:,})")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
