"""An unauthenticated flood against the HTTP API, and what a CRM's requests see meanwhile.

    .venv/bin/python bench/api_flood.py [--seconds 15] [--flooders 16] [--json]

The API server runs as in the daemon against PostgreSQL (an embedded one in a temporary
directory unless OUTDIAL_DATABASE_URL is set). A legitimate client (its own process, a valid
token) sends `GET /v1/campaigns` 20 times a second throughout; after `--seconds` alone, a
flood process sends requests with unknown `odt_` tokens (each one a database lookup when it
gets that far) as fast as `--flooders` keep-alive connections allow, for `--seconds` more.
The run is made twice: with the per-address limit for requests without a valid token (the
default, 5/s, burst 20) and with it lifted, which is how the API behaved before (finding 5
of issue 23). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import uvloop
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.server import ApiServer  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from api.tokens import create_token  # noqa: E402
from bench._common import scratch_database  # noqa: E402
from outdial.config import Config  # noqa: E402
from store.db import create_pool  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402

SCRATCH_DB = "outdial_bench_api_flood"
LEGIT_INTERVAL_S = 0.05
UNKNOWN = "odt_" + "A" * 43
MODES: dict[str, dict[str, float]] = {
    "limited": {},  # the defaults
    "unlimited": {"anonymous_rate_per_s": 1e6, "anonymous_burst": 1e6},  # as before issue 23
}


async def _legit(base: str, token: str, seconds: float) -> list[tuple[float, float, int]]:
    """(time sent, latency, status) of each request over `seconds`."""
    done: list[tuple[float, float, int]] = []
    headers = {"Authorization": f"Bearer {token}"}
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession(base, headers=headers) as session:
        while (sent := time.monotonic()) < end:
            async with session.get("/v1/campaigns") as response:
                await response.read()
            done.append((sent, time.monotonic() - sent, response.status))
            await asyncio.sleep(max(0.0, LEGIT_INTERVAL_S - (time.monotonic() - sent)))
    return done


async def _flood(base: str, flooders: int, seconds: float) -> Counter[int]:
    statuses: Counter[int] = Counter()
    end = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=flooders)
    headers = {"Authorization": f"Bearer {UNKNOWN}"}
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def one() -> None:
            while time.monotonic() < end:
                async with session.get("/v1/campaigns") as response:
                    await response.read()
                    statuses[response.status] += 1

        await asyncio.gather(*(one() for _ in range(flooders)))
    return statuses


def _legit_process(base: str, token: str, seconds: float, out: multiprocessing.Queue) -> None:
    out.put(("legit", time.monotonic(), uvloop.run(_legit(base, token, seconds))))


def _flood_process(
    base: str, flooders: int, delay: float, seconds: float, out: multiprocessing.Queue
) -> None:
    time.sleep(delay)
    started = time.monotonic()
    out.put(("flood", started, dict(uvloop.run(_flood(base, flooders, seconds)))))


def _ms(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 2)


async def _round(base: str, token: str, seconds: float, flooders: int) -> dict[str, object]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    legit = context.Process(target=_legit_process, args=(base, token, 2 * seconds, out))
    flood = context.Process(target=_flood_process, args=(base, flooders, seconds, seconds, out))
    legit.start()
    flood.start()
    results = {}
    for _ in range(2):
        kind, started, value = await asyncio.to_thread(out.get, True, 600)
        results[kind] = (started, value)
    await asyncio.to_thread(legit.join, 30)
    await asyncio.to_thread(flood.join, 30)
    flood_start, statuses = results["flood"]
    requests = results["legit"][1]
    alone = [lat for t, lat, status in requests if t < flood_start and status == 200]
    flooded = [lat for t, lat, status in requests if t >= flood_start and status == 200]
    return {
        "legit_alone_p50_ms": _ms(alone, 50),
        "legit_alone_p95_ms": _ms(alone, 95),
        "legit_flood_p50_ms": _ms(flooded, 50),
        "legit_flood_p95_ms": _ms(flooded, 95),
        "legit_not_200": sum(status != 200 for _, _, status in requests),
        "flood_requests_per_s": round(sum(statuses.values()) / seconds),
        "flood_statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def run(seconds: float, flooders: int) -> dict[str, object]:
    result: dict[str, object] = {"seconds": seconds, "flooders": flooders}
    async with scratch_database(SCRATCH_DB) as db:
        pool = await create_pool(db.url, DatabaseSettings(pool_min=4, pool_max=16))
        try:
            async with pool.acquire() as conn:
                token = await create_token(conn, "crm", ["campaigns:read"])
            for name, anonymous in MODES.items():
                api = ApiSettings(enabled=True, port=0, **anonymous)
                config = Config(database=DatabaseSettings(url=SecretStr(db.url)), api=api)
                server = ApiServer(config, pool)
                port = await server.start()
                try:
                    result[name] = await _round(
                        f"http://127.0.0.1:{port}", token, seconds, flooders
                    )
                finally:
                    await server.stop()
        finally:
            await pool.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--flooders", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = uvloop.run(run(args.seconds, args.flooders))
    for key, value in result.items():
        print(f"{key:>10}: {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
