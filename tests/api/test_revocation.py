"""Revocation holds at once on every daemon sharing the database: two API servers, one
PostgreSQL, a token revoked by the CLI (or by SQL by hand) is refused by both."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest

from api.server import ApiServer
from api.tokens import create_token, revoke_token
from store.db import create_pool
from store.settings import DatabaseSettings
from tests.api.conftest import api_config
from tests.dialer.helpers import until

PATH = "/v1/campaigns"


async def _status(session: aiohttp.ClientSession, base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(base + PATH, headers=headers) as response:
        return response.status


async def _two_daemons(pg_url: str, cache_s: float) -> list[tuple[ApiServer, asyncpg.Pool]]:
    daemons = []
    for _ in range(2):  # each with its own pool, as two processes would have
        pool = await create_pool(pg_url, DatabaseSettings())
        server = ApiServer(api_config(pg_url, token_cache_s=cache_s), pool)
        await server.start()
        daemons.append((server, pool))
    return daemons


async def _stop(daemons: list[tuple[ApiServer, asyncpg.Pool]]) -> None:
    for server, pool in daemons:
        await server.stop()
        await pool.close()


async def test_a_revoked_token_is_refused_on_the_next_request_on_every_daemon(
    db_pool: asyncpg.Pool, pg_url: str
) -> None:
    """The default: no token cache, every request asks the database."""
    daemons = await _two_daemons(pg_url, cache_s=0)
    async with db_pool.acquire() as conn:
        secret = await create_token(conn, "crm", ["campaigns:read"])
    try:
        async with aiohttp.ClientSession() as session:
            bases = [f"http://127.0.0.1:{server.port}" for server, _ in daemons]
            assert [await _status(session, b, secret) for b in bases] == [200, 200]
            async with db_pool.acquire() as conn:
                await revoke_token(conn, "crm")
            assert [await _status(session, b, secret) for b in bases] == [401, 401]
    finally:
        await _stop(daemons)


@pytest.mark.parametrize("how", ["cli", "sql"])
async def test_a_cached_token_is_dropped_by_every_daemon_when_revoked(
    db_pool: asyncpg.Pool, pg_url: str, how: str
) -> None:
    """With a token cache (an hour: expiry cannot explain what follows), PostgreSQL's
    announcement makes both daemons drop the token, whoever revoked it."""
    daemons = await _two_daemons(pg_url, cache_s=3600)
    async with db_pool.acquire() as conn:
        secret = await create_token(conn, "crm", ["campaigns:read"])
        keeper = await create_token(conn, "other", ["campaigns:read"])
        token_id = await conn.fetchval("SELECT id FROM api_tokens WHERE name = 'crm'")
    try:
        async with aiohttp.ClientSession() as session:
            bases = [f"http://127.0.0.1:{server.port}" for server, _ in daemons]
            for token in (secret, keeper):
                assert [await _status(session, b, token) for b in bases] == [200, 200]
            assert all(token_id in s.state.cached_token_ids() for s, _ in daemons)
            async with db_pool.acquire() as conn:
                if how == "cli":
                    await revoke_token(conn, "crm")
                else:
                    await conn.execute("DELETE FROM api_audit")  # keeps the FK quiet
                    await conn.execute("DELETE FROM api_tokens WHERE name = 'crm'")
            for server, _ in daemons:
                async with asyncio.timeout(30):
                    await until(lambda s=server: token_id not in s.state.cached_token_ids())
            assert [await _status(session, b, secret) for b in bases] == [401, 401]
            # Only the revoked token went: the other one is still trusted from the cache.
            assert [await _status(session, b, keeper) for b in bases] == [200, 200]
            assert all(len(s.state.cached_token_ids()) == 1 for s, _ in daemons)
    finally:
        await _stop(daemons)


async def test_a_lost_announcement_channel_stops_the_cache(
    db_pool: asyncpg.Pool, pg_url: str
) -> None:
    daemons = await _two_daemons(pg_url, cache_s=3600)
    server = daemons[0][0]
    async with db_pool.acquire() as conn:
        secret = await create_token(conn, "crm", ["campaigns:read"])
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{server.port}"
            assert await _status(session, base, secret) == 200
            assert server.state.cached_token_ids()
            # The listening session dies (a database restart, an admin's pg_terminate_backend).
            await db_pool.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"""
            )
            async with asyncio.timeout(30):
                await until(lambda: not server.state.revocations_heard)
            assert not server.state.cached_token_ids()
            async with db_pool.acquire() as conn:
                await revoke_token(conn, "crm")
            assert await _status(session, base, secret) == 401
    finally:
        await _stop(daemons)
