"""The API served over real HTTP on a free port, on a fresh migrated PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from pydantic import SecretStr

from api.server import ApiServer
from api.settings import ApiSettings
from api.tokens import SCOPES, create_token
from outdial.config import Config
from store.settings import DatabaseSettings

SCRIPT = "collections_v1"


def api_config(pg_url: str, **api: Any) -> Config:
    settings = {
        "enabled": True,
        "port": 0,
        "rate_per_s": 10_000.0,
        "burst": 10_000,
        "anonymous_rate_per_s": 10_000.0,
        "anonymous_burst": 10_000,
    }
    settings.update(api)
    return Config(
        database=DatabaseSettings(url=SecretStr(pg_url)),
        default_region="US",
        api=ApiSettings(**settings),
    )


@dataclass
class Api:
    """A client of one running server, sending `token` unless told otherwise."""

    session: aiohttp.ClientSession
    base: str
    token: str
    pool: asyncpg.Pool

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        sent = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        kwargs: dict[str, Any] = {"headers": sent, "params": params}
        if raw is not None:
            kwargs["data"] = raw
            sent.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.base + path, **kwargs) as response:
            payload = await response.json(content_type=None) if await response.read() else None
            return response.status, payload, response

    async def token_with(self, *scopes: str, name: str | None = None) -> str:
        async with self.pool.acquire() as conn:
            return await create_token(
                conn, name or "t-" + "-".join(scopes).replace(":", "_"), list(scopes)
            )


async def start_api(pool: asyncpg.Pool, config: Config) -> tuple[ApiServer, str]:
    server = ApiServer(config, pool)
    port = await server.start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def api(db_pool: asyncpg.Pool, pg_url: str) -> AsyncIterator[Api]:
    server, base = await start_api(db_pool, api_config(pg_url, token_cache_s=0))
    async with db_pool.acquire() as conn:
        token = await create_token(conn, "crm", list(SCOPES))
        await conn.execute("INSERT INTO scripts (name) VALUES ($1)", SCRIPT)
        await conn.execute(
            "INSERT INTO campaigns (name, script_name) VALUES ('spring', $1)", SCRIPT
        )
    async with aiohttp.ClientSession() as session:
        yield Api(session, base, token, db_pool)
    await server.stop()


def problem_pointers(payload: dict[str, Any]) -> list[str | None]:
    return [e.get("pointer") or e.get("parameter") for e in payload.get("errors", [])]
