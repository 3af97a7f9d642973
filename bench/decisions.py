"""The decision models on simulated histories: churn AUC against the RFM-only baseline, and
engagement per contact of the follow-up planner against "always call".

    .venv/bin/python bench/decisions.py [--seeds 100 101 102] [--json]

Each seed is a world of its own (pbxsim/history.py, docs/simulation.md) in a scratch database:
1,000 customers over 6 weeks for churn (`outdial models evaluate churn` on the time-based
hold-out), 300 over 8 weeks for the channels (the planner with the default greedy policy and
with Thompson sampling, each in its own database, then "always call" on the same world). An
embedded PostgreSQL runs in a temporary directory unless OUTDIAL_DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics.churn import evaluate  # noqa: E402
from bench._common import scratch_database  # noqa: E402
from outdial.config import Config  # noqa: E402
from outdial.simulate import HistorySettings, Policy, simulate_history  # noqa: E402
from store.db import create_pool  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402

SCRATCH_DB = "outdial_bench_decisions"


def _config(url: str, channel_policy: str = "greedy") -> Config:
    return Config.model_validate(
        {"database": {"url": url}, "analytics": {"channels": {"policy": channel_policy}}}
    )


async def _churn(seed: int) -> dict[str, Any]:
    async with scratch_database(SCRATCH_DB) as db:
        pool = await create_pool(db.url, DatabaseSettings(pool_min=1, pool_max=4))
        try:
            config = _config(db.url)
            settings = HistorySettings(customers=1000, weeks=6, seed=seed, policy="always_call")
            await simulate_history(pool, config, settings)
            found = await evaluate(pool, config.analytics.churn, config.analytics.rfm)
        finally:
            await pool.close()
    keys = ("auc", "baseline_auc", "brier", "baseline_brier", "ece", "baseline_ece", "test")
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in found.as_json().items()
            if k in keys}  # fmt: skip


async def _channels(seed: int, channel_policy: str) -> dict[str, Any]:
    async with scratch_database(SCRATCH_DB) as db:
        pool = await create_pool(db.url, DatabaseSettings(pool_min=1, pool_max=4))
        try:
            config = _config(db.url, channel_policy)
            runs = {}
            policy: Policy
            for policy in ("planner", "always_call"):  # the planner first: docs/simulation.md
                settings = HistorySettings(customers=300, weeks=8, seed=seed, policy=policy)
                runs[policy] = await simulate_history(pool, config, settings)
        finally:
            await pool.close()
    planned, always = runs["planner"], runs["always_call"]
    return {
        "planner": round(planned.engagement_per_contact, 4),
        "always_call": round(always.engagement_per_contact, 4),
        "gain": round(planned.engagement_per_contact - always.engagement_per_contact, 4),
        "channels": {c: vars(n) for c, n in planned.channels.items()},
    }


async def run(seeds: list[int]) -> dict[str, Any]:
    worlds = []
    for seed in seeds:
        worlds.append(
            {
                "seed": seed,
                "churn": await _churn(seed),
                "greedy": await _channels(seed, "greedy"),
                "thompson": await _channels(seed, "thompson"),
            }
        )
    return {
        "seeds": seeds,
        "worlds": worlds,
        "mean_auc": round(statistics.fmean(w["churn"]["auc"] for w in worlds), 4),
        "mean_baseline_auc": round(statistics.fmean(w["churn"]["baseline_auc"] for w in worlds), 4),
        "mean_gain_greedy": round(statistics.fmean(w["greedy"]["gain"] for w in worlds), 4),
        "mean_gain_thompson": round(statistics.fmean(w["thompson"]["gain"] for w in worlds), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = uvloop.run(run(args.seeds))
    for w in result["worlds"]:
        c, g, t = w["churn"], w["greedy"], w["thompson"]
        print(
            f"seed {w['seed']}: churn AUC {c['auc']:.3f} vs RFM baseline {c['baseline_auc']:.3f}"
            f" (Brier {c['brier']:.3f} vs {c['baseline_brier']:.3f}, ECE {c['ece']:.3f} vs "
            f"{c['baseline_ece']:.3f}, hold-out {c['test']}); responses per contact: "
            f"always call {g['always_call']:.3f}, planner greedy {g['planner']:.3f}, "
            f"Thompson {t['planner']:.3f}"
        )
    print(
        f"mean: AUC {result['mean_auc']:.3f} vs {result['mean_baseline_auc']:.3f}; gain per "
        f"contact greedy {result['mean_gain_greedy']:+.3f}, Thompson "
        f"{result['mean_gain_thompson']:+.3f}"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
