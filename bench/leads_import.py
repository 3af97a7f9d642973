"""Lead import throughput: 100,000 generated leads from a CSV file into PostgreSQL.

    .venv/bin/python bench/leads_import.py [--rows N] [--workers N] [--json]

Numbers are mixed: national US numbers read with the default region, and international
numbers from ten other countries, with 1% duplicates and 1% bad numbers. The clock covers
the whole import (reading, normalising, deduplicating, committing, writing rejects), not the
file generation or database start. An embedded PostgreSQL runs in a temporary directory
unless OUTDIAL_DATABASE_URL is set (the bench then uses a scratch database on that server).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import asyncpg
import phonenumbers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import scratch_database, tree_cpu_s  # noqa: E402
from store.campaigns import ensure_campaign  # noqa: E402
from store.leads import import_leads  # noqa: E402

TARGET_ROWS_PER_S = 20_000
INTERNATIONAL = ["GB", "DE", "FR", "KR", "CN", "JP", "IN", "BR", "IT", "ES"]
SCRATCH_DB = "outdial_bench_leads"


# Area codes inside one time zone each (a split one, e.g. 208, needs a timezone column).
US_AREA_CODES = ["201", "206", "212", "213", "303", "305", "312", "404", "415", "512", "602",
                 "617", "702", "713", "808"]  # fmt: skip


def _candidate(rng: random.Random, region: str) -> str:
    if region == "US":
        area, exchange = rng.choice(US_AREA_CODES), rng.randrange(200, 1000)
        return f"({area}) {exchange}-{rng.randrange(10_000):04d}"
    example = phonenumbers.example_number(region)
    national = str(example.national_number)
    return f"+{example.country_code} {national[:-4]}{rng.randrange(10_000):04d}"


def _number_pool(rng: random.Random, count: int) -> list[str]:
    """`count` distinct valid numbers: 60% US national format, 40% international."""
    numbers: set[str] = set()
    while len(numbers) < count:
        region = "US" if rng.random() < 0.6 else rng.choice(INTERNATIONAL)
        text = _candidate(rng, region)
        if phonenumbers.is_valid_number(phonenumbers.parse(text, "US")):
            numbers.add(text)
    return sorted(numbers, key=lambda _: rng.random())


def write_leads(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    numbers = _number_pool(rng, rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["external_id", "first_name", "phone", "priority", "consent", "plan"])
        for i, number in enumerate(numbers):
            roll = rng.random()
            if roll < 0.01:
                number = numbers[rng.randrange(i + 1)]  # a duplicate
            elif roll < 0.02:
                number = f"555-{rng.randrange(100)}"  # not a number
            out.writerow(
                [
                    f"X{i}",
                    f"name{i}",
                    number,
                    rng.randrange(5),
                    rng.choice(["yes", "no"]),
                    rng.choice(["gold", "silver", "bronze"]),
                ]  # fmt: skip
            )


async def run(rows: int, workers: int | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="outdial-leads-") as tmp:
        path = Path(tmp) / "leads.csv"
        write_leads(path, rows)
        async with scratch_database(SCRATCH_DB) as db:
            conn = await asyncpg.connect(db.url)
            try:
                await ensure_campaign(conn, "bench", "bench_script")
                pids = [os.getpid()] + ([db.postmaster_pid] if db.postmaster_pid else [])
                before = [tree_cpu_s(pid) for pid in pids]
                summary = await import_leads(
                    conn, path, campaign="bench", region="US", workers=workers
                )
                cpu = [tree_cpu_s(pid) - b for pid, b in zip(pids, before, strict=True)]
                stored = await conn.fetchval("SELECT count(*) FROM leads")
            finally:
                await conn.close()
    result: dict[str, object] = {
        "rows": summary.rows,
        "imported": summary.imported,
        "duplicates": summary.duplicates_in_file + summary.duplicates_in_db,
        "rejected": summary.rejected,
        "stored": stored,
        "seconds": round(summary.seconds, 3),
        "rows_per_s": round(summary.rows_per_s, 1),
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "workers": workers if workers is not None else "auto",
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_s_import": round(cpu[0], 2),  # this process, the fork server and its workers
    }
    if len(cpu) == 2:
        # On a shared machine the wall clock mostly measures the neighbours; CPU time says
        # what the import itself costs, and so what the cores would give it on their own.
        total = cpu[0] + cpu[1]
        result["cpu_s_postgres"] = round(cpu[1], 2)
        result["rows_per_s_if_cores_idle"] = round(summary.rows * (os.cpu_count() or 1) / total)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=None, help="default: auto")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = asyncio.run(run(args.rows, args.workers))
    print(f"rows: {result['rows']:,} in {result['seconds']} s (workers: {result['workers']})")
    print(
        f"imported {result['imported']:,}, duplicates {result['duplicates']:,}, "
        f"rejected {result['rejected']:,}, in the table {result['stored']:,}"
    )
    print(f"throughput: {result['rows_per_s']:,.0f} rows/s (target >= {TARGET_ROWS_PER_S:,})")
    postgres_cpu = result.get("cpu_s_postgres", "?")
    print(f"CPU: import {result['cpu_s_import']} s, PostgreSQL {postgres_cpu} s")
    if "rows_per_s_if_cores_idle" in result:
        print(
            f"CPU-bound ceiling on {result['cpus']} idle cores: "
            f"{result['rows_per_s_if_cores_idle']:,} rows/s (load now {result['load_average_1m']})"
        )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
