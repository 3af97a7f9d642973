"""HTTP API throughput: single-lead creates (PUT, one lead per request) per second.

    .venv/bin/python bench/api.py [--leads N] [--concurrency N] [--json]

The API server runs as in the daemon (aiohttp on uvloop, asyncpg pool, the real validation,
upsert and audit row per request, concurrent requests' upserts group-committed) against
PostgreSQL; the client is a separate process with its own event loop and keep-alive
connections, sending distinct valid US numbers. The clock covers the timed requests only
(after a warm-up); every one must answer 201. An embedded PostgreSQL runs in a temporary
directory unless OUTDIAL_DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvloop
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.server import ApiServer  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from api.tokens import create_token  # noqa: E402
from bench._common import scratch_database, tree_cpu_s  # noqa: E402
from outdial.config import Config  # noqa: E402
from store.db import create_pool  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402

TARGET_LEADS_PER_S = 1_000
SCRATCH_DB = "outdial_bench_api"
WARMUP = 500
AREA_CODES = ("212", "312", "415", "617", "713")  # one time zone each
# Exchanges 201-999 without N11 or 555 codes: valid NANP numbers.
EXCHANGES = [e for e in range(201, 1000) if e % 100 != 11 and e != 555]


def _phone(i: int) -> str:
    """The i-th of distinct valid US numbers."""
    area = AREA_CODES[i % len(AREA_CODES)]
    rest = i // len(AREA_CODES)
    return f"+1 {area} {EXCHANGES[rest // 10_000]} {rest % 10_000:04d}"


async def _client(base: str, token: str, start: int, count: int, concurrency: int) -> list[float]:
    """Send leads start..start+count; the latency of each, in seconds."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    next_index = iter(range(start, start + count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def worker() -> None:
            for i in next_index:
                body = {"phone": _phone(i), "consent": True, "fields": {"name": f"lead {i}"}}
                sent = time.perf_counter()
                async with session.put(f"/v1/campaigns/bench/leads/L{i}", json=body) as r:
                    await r.read()
                    if r.status != 201:
                        raise RuntimeError(f"lead {i}: HTTP {r.status}: {await r.text()}")
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _client_process(
    base: str, token: str, count: int, concurrency: int, out: multiprocessing.Queue
) -> None:
    uvloop.run(_client(base, token, 0, WARMUP, concurrency))
    out.put("warm")
    started, cpu = time.perf_counter(), time.process_time()
    latencies = uvloop.run(_client(base, token, WARMUP, count, concurrency))
    out.put((time.perf_counter() - started, time.process_time() - cpu, latencies))


@dataclass(frozen=True)
class Timed:
    seconds: float
    latencies: list[float]
    cpu_client_s: float
    cpu_server_s: float
    cpu_postgres_s: float | None


async def run(leads: int, concurrency: int, token_cache_s: float) -> dict[str, object]:
    async with scratch_database(SCRATCH_DB) as db:
        pool = await create_pool(db.url, DatabaseSettings(pool_min=4, pool_max=16))
        try:
            async with pool.acquire() as conn:
                token = await create_token(conn, "bench", ["leads:write"])
                await conn.execute(
                    "INSERT INTO campaigns (name, script_name) VALUES ('bench', 's')"
                )
            config = Config(
                database=DatabaseSettings(url=SecretStr(db.url)),
                api=ApiSettings(
                    enabled=True,
                    port=0,
                    rate_per_s=1e6,
                    burst=1_000_000,
                    token_cache_s=token_cache_s,
                ),
            )
            server = ApiServer(config, pool)
            port = await server.start()
            try:
                base = f"http://127.0.0.1:{port}"
                timed = await _drive(base, token, leads, concurrency, db.postmaster_pid)
            finally:
                await server.stop()
            stored = await pool.fetchval("SELECT count(*) FROM leads")
            audited = await pool.fetchval(
                "SELECT count(*) FROM api_audit WHERE action = 'lead.create'"
            )
        finally:
            await pool.close()
    cuts = statistics.quantiles(timed.latencies, n=100)
    result: dict[str, object] = {
        "leads": leads,
        "concurrency": concurrency,
        "seconds": round(timed.seconds, 3),
        "leads_per_s": round(leads / timed.seconds, 1),
        "target_leads_per_s": TARGET_LEADS_PER_S,
        "latency_p50_ms": round(cuts[49] * 1000, 2),
        "latency_p99_ms": round(cuts[98] * 1000, 2),
        "stored": stored,
        "audited": audited,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_s_server": round(timed.cpu_server_s, 2),
        "cpu_s_client": round(timed.cpu_client_s, 2),
        "cpu_ms_per_lead_server": round(timed.cpu_server_s * 1000 / leads, 3),
        "cpu_ms_per_lead_client": round(timed.cpu_client_s * 1000 / leads, 3),
    }
    if timed.cpu_postgres_s is not None:
        # On a shared machine the wall clock also measures the neighbours; CPU time says what
        # server, PostgreSQL and client cost, and so what the cores would give them alone.
        total = timed.cpu_server_s + timed.cpu_client_s + timed.cpu_postgres_s
        result["cpu_s_postgres"] = round(timed.cpu_postgres_s, 2)
        result["cpu_ms_per_lead_postgres"] = round(timed.cpu_postgres_s * 1000 / leads, 3)
        result["leads_per_s_if_cores_idle"] = round(leads * (os.cpu_count() or 1) / total)
    return result


async def _drive(
    base: str, token: str, leads: int, concurrency: int, postmaster: int | None
) -> Timed:
    """Run the client process while this process's event loop serves it."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    process = context.Process(
        target=_client_process, args=(base, token, leads, concurrency, results)
    )
    process.start()
    try:
        await asyncio.to_thread(results.get, True, 600)  # warmed up
        server_cpu = time.process_time()
        postgres_cpu = tree_cpu_s(postmaster) if postmaster else None
        seconds, client_cpu, latencies = await asyncio.to_thread(results.get, True, 600)
        server_cpu = time.process_time() - server_cpu
        if postgres_cpu is not None and postmaster is not None:
            postgres_cpu = tree_cpu_s(postmaster) - postgres_cpu
    finally:
        await asyncio.to_thread(process.join, 30)
    return Timed(seconds, latencies, client_cpu, server_cpu, postgres_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--token-cache-s",
        type=float,
        default=ApiSettings().token_cache_s,
        help="api.token_cache_s (default: the config's default, 0: a token check per request)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = uvloop.run(run(args.leads, args.concurrency, args.token_cache_s))
    print(
        f"{result['leads']:,} single-lead creates over HTTP in {result['seconds']} s "
        f"({result['concurrency']} connections)"
    )
    print(
        f"throughput: {result['leads_per_s']:,.0f} leads/s (target >= {TARGET_LEADS_PER_S:,}); "
        f"latency p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms"
    )
    print(f"stored {result['stored']:,} leads, {result['audited']:,} lead.create audit rows")
    print(
        f"CPU: server {result['cpu_s_server']} s, client {result['cpu_s_client']} s, "
        f"PostgreSQL {result.get('cpu_s_postgres', '?')} s; "
        f"if the cores were idle: {result.get('leads_per_s_if_cores_idle', '?')} leads/s"
    )
    print(
        f"CPU per lead: server {result['cpu_ms_per_lead_server']} ms, "
        f"client {result['cpu_ms_per_lead_client']} ms, "
        f"PostgreSQL {result.get('cpu_ms_per_lead_postgres', '?')} ms"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
