"""Soak: `outdial run` against pbxsim for a set time under a steady load (bench/calls.py's
customer mix, grammar mode), sampled from outside at a fixed interval.

    .venv/bin/python bench/soak.py [--minutes 30] [--concurrency 40] [--sample-s 60]
                                   [--warmup-min 5] [--plot soak.png] [--json]

Each sample: the daemon's RSS, open fds and threads (psutil), its asyncio tasks, turn-spool
depth and outbox backlog (its /metrics: outdial_asyncio_tasks, outdial_spool_depth_rows,
outdial_outbox_pending), and the greeting and response p95 heard on pbxsim's side of the wire
for the calls whose media began in that interval. RSS swings by up to 10 % with the calls in
progress, so growth compares medians: the samples of the first `--warmup-min` after the
warm-up against those of the last `--warmup-min` (the single first and last samples are
reported beside it, and a least-squares trend in MB per minute). Latency compares the first and
the last `--warmup-min`.

Meanwhile a CRM adds one new lead through the API every `--lead-every-s` seconds (PUT
/v1/campaigns/bench/leads/{id}), and the hourly jobs (retention purge, A/B retirement) run
every 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._rig import Rig, rig, wire_latency  # noqa: E402

# Calls last about 10-20 s: this many leads per call slot and minute keeps the dialer busy.
LEADS_PER_SLOT_MINUTE = 6
METRICS = {
    "tasks": "outdial_asyncio_tasks",
    "spool_rows": "outdial_spool_depth_rows",
    "outbox_pending": "outdial_outbox_pending",
    "active_calls": "outdial_active_calls",
}


async def sample(setup: Rig, since: float, at: float) -> dict[str, object]:
    values = await setup.metrics()
    return {
        "t_s": round(at, 1),
        **setup.process_sample(),
        **{key: values.get(name) for key, name in METRICS.items()},
        **wire_latency(setup.records, since, time.monotonic(), setup.stalls),
    }


def growth(samples: list[dict], key: str, warmup_s: float) -> tuple[float, float]:
    """The value at the first sample after the warm-up, and the last value."""
    warm = next((s for s in samples if s["t_s"] >= warmup_s), samples[0])
    return float(warm[key]), float(samples[-1][key])


def windowed_growth(samples: list[dict], key: str, warmup_s: float) -> tuple[float, float]:
    """Medians of the first window after the warm-up and of the last window, each
    `warmup_s` long (they overlap on a run shorter than three warm-ups)."""
    after = [s for s in samples if s["t_s"] >= warmup_s] or samples
    end = samples[-1]["t_s"]
    first = [s[key] for s in after if s["t_s"] < after[0]["t_s"] + warmup_s]
    last = [s[key] for s in after if s["t_s"] > end - warmup_s]
    return float(statistics.median(first)), float(statistics.median(last))


def trend_per_minute(samples: list[dict], key: str, warmup_s: float) -> float | None:
    """Least-squares slope of the series after the warm-up, per minute."""
    after = [s for s in samples if s["t_s"] >= warmup_s]
    if len(after) < 2:
        return None
    slope = statistics.linear_regression([s["t_s"] for s in after], [s[key] for s in after])
    return round(slope.slope * 60, 2)


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    keys = ["rss_mb", "fds", "tasks", "threads", "spool_rows", "outbox_pending",
            "greeting_p95_ms", "response_p95_ms"]  # fmt: skip
    figure, axes = plt.subplots(len(keys), 1, figsize=(8, 2 * len(keys)), sharex=True)
    minutes = [s["t_s"] / 60 for s in samples]
    for axis, key in zip(axes, keys, strict=True):
        axis.plot(minutes, [s[key] for s in samples], marker=".")
        axis.set_ylabel(key)
    axes[-1].set_xlabel("minutes")
    figure.tight_layout()
    figure.savefig(path)


async def run(
    minutes: float, concurrency: int, sample_s: float, warmup_min: float, lead_every_s: float = 2.0
) -> dict:
    leads = int(concurrency * minutes * LEADS_PER_SLOT_MINUTE) + 50
    async with rig(concurrency, leads) as setup:
        await setup.start_daemon()
        stop_crm = asyncio.Event()
        crm = asyncio.create_task(setup.add_leads_through_the_api(lead_every_s, stop_crm))
        started = time.monotonic()
        samples = []
        previous = started
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(sample_s)
            now = time.monotonic()
            samples.append(await sample(setup, previous, now - started))
            previous = now
        ended = time.monotonic()
        stop_crm.set()
        api_statuses = await crm
        await setup.stop_daemon(signal.SIGTERM)
        warmup_s = warmup_min * 60
        early = wire_latency(setup.records, started, started + warmup_s, setup.stalls)
        late = wire_latency(setup.records, ended - warmup_s, ended, setup.stalls)
    rss = growth(samples, "rss_mb", warmup_s)
    rss_medians = windowed_growth(samples, "rss_mb", warmup_s)
    fds = growth(samples, "fds", warmup_s)
    tasks = growth(samples, "tasks", warmup_s)
    return {
        "minutes": minutes,
        "concurrency": concurrency,
        "calls": sum(s["calls"] for s in samples),
        "rss_growth_pct": round(100 * (rss_medians[1] - rss_medians[0]) / rss_medians[0], 2),
        "rss_growth_endpoint_pct": round(100 * (rss[1] - rss[0]) / rss[0], 2),
        "rss_trend_mb_per_min": trend_per_minute(samples, "rss_mb", warmup_s),
        "fd_growth": fds[1] - fds[0],
        "task_growth": tasks[1] - tasks[0],
        "rss_mb_after_warmup": rss[0],
        "rss_mb_last": rss[1],
        "rss_mb_median_first_window": rss_medians[0],
        "rss_mb_median_last_window": rss_medians[1],
        "api_leads": {str(k): v for k, v in sorted(api_statuses.items())},
        "first_window": early,
        "last_window": late,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=40, help="calls at once")
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup-min", type=float, default=5.0, help="growth counts after this")
    parser.add_argument("--lead-every-s", type=float, default=2.0, help="API lead arrivals")
    parser.add_argument("--plot", type=Path, help="write a PNG of every series over time")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = asyncio.run(
        run(args.minutes, args.concurrency, args.sample_s, args.warmup_min, args.lead_every_s)
    )
    if args.plot:
        plot(result["samples"], args.plot)
    for key, value in result.items():
        if key != "samples":
            print(f"{key:>20}: {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
