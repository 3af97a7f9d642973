"""The decision models on simulated histories: churn AUC against the RFM-only baseline, and
engagement per contact of the follow-up planner against "always call".

    .venv/bin/python bench/decisions.py [--seeds 100 101 102] [--policy greedy|thompson] [--json]

Each seed is a world of its own (pbxsim/history.py, docs/simulation.md), judged by
outdial.simulate.judge_world in scratch databases: 1,000 customers over 6 weeks for churn
(the time-based hold-out of `outdial models evaluate churn`), 300 over 8 weeks for the
channels (the planner, then "always call" on the same people and draws). An embedded
PostgreSQL runs in a temporary directory unless OUTDIAL_DATABASE_URL is set.
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

from bench._common import scratch_database  # noqa: E402
from outdial.config import Config  # noqa: E402
from outdial.simulate import judge_world  # noqa: E402

SCRATCH_DB = "outdial_bench_decisions"


async def run(seeds: list[int], policy: str) -> dict[str, Any]:
    worlds = []
    async with scratch_database(SCRATCH_DB) as db:
        config = Config.model_validate(
            {"database": {"url": db.url}, "analytics": {"channels": {"policy": policy}}}
        )
        for seed in seeds:
            worlds.append((await judge_world(db.url, config, seed)).as_json())
    return {
        "seeds": seeds,
        "policy": policy,
        "worlds": worlds,
        "mean_auc": round(statistics.fmean(w["churn"]["auc"] for w in worlds), 4),
        "mean_baseline_auc": round(statistics.fmean(w["churn"]["baseline_auc"] for w in worlds), 4),
        "mean_gain": round(
            statistics.fmean(w["engagement_per_contact"]["gain"] for w in worlds), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--policy", choices=("greedy", "thompson"), default="greedy")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = uvloop.run(run(args.seeds, args.policy))
    for w in result["worlds"]:
        c, e = w["churn"], w["engagement_per_contact"]
        print(
            f"seed {w['seed']}: churn AUC {c['auc']:.3f} vs RFM baseline {c['baseline_auc']:.3f}"
            f" (Brier {c['brier']:.3f} vs {c['baseline_brier']:.3f}, ECE {c['ece']:.3f} vs "
            f"{c['baseline_ece']:.3f}, hold-out {c['test']}); responses per contact: "
            f"planner ({args.policy}) {e['planner']:.3f}, always call {e['always_call']:.3f}"
        )
    print(
        f"mean: churn AUC {result['mean_auc']:.3f} vs {result['mean_baseline_auc']:.3f}; "
        f"responses per contact {result['mean_gain']:+.3f} over always calling"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
