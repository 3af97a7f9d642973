"""PostgreSQL stopped under a running API: every route that needs the database answers 503
problem+json with Retry-After (not 500), and the API answers normally once it is back."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from api.problems import DATABASE_RETRY_AFTER_S
from api.routing import PATH_PARAMS, Operation
from api.server import OPERATIONS, api_state, create_app
from api.tokens import SCOPES, create_token
from store.db import create_pool
from store.embedded import EmbeddedPostgres
from store.settings import DatabaseSettings
from tests.api.conftest import SCRIPT, Api, api_config, start_api
from tests.dialer.helpers import until

LEAD = "/v1/campaigns/spring/leads/crm-1"
# Valid bodies, so that these requests get past validation to their handlers.
BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/v1/campaigns/{campaign}/leads/{external_id}"): {"phone": "+14155550100"},
    ("POST", "/v1/campaigns/{campaign}/leads"): {
        "leads": [{"external_id": "crm-2", "phone": "+14155550101"}]
    },
    ("POST", "/v1/dnc/check"): {"phone": "+14155550100"},
}


@dataclasses.dataclass
class Outage:
    server: EmbeddedPostgres
    api: Api


@pytest.fixture
async def outage(own_server: EmbeddedPostgres) -> AsyncIterator[Outage]:
    settings = DatabaseSettings(pool_min=1, pool_max=4, connect_timeout_s=2)
    pool = await create_pool(own_server.url, settings)
    server, base = await start_api(pool, api_config(own_server.url, token_cache_s=0))
    async with pool.acquire() as conn:
        token = await create_token(conn, "crm", list(SCOPES))
        await conn.execute("INSERT INTO scripts (name) VALUES ($1)", SCRIPT)
        await conn.execute(
            "INSERT INTO campaigns (name, script_name) VALUES ('spring', $1)", SCRIPT
        )
    try:
        async with aiohttp.ClientSession() as session:
            yield Outage(own_server, Api(session, base, token, pool))
    finally:
        await server.stop()
        await pool.close()


def _path(op: Operation) -> str:
    return op.path.format(**{name: PATH_PARAMS[name].example for name in op.path_params})


def _assert_unavailable(status: int, payload: Any, response: aiohttp.ClientResponse) -> None:
    assert status == 503, (status, payload)
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    assert payload["status"] == 503


async def _back(api: Api) -> None:
    """Wait until the API finds the database again (the pool reconnects by itself)."""

    async def ready() -> bool:
        return (await api.call("GET", "/v1/ready"))[0] == 200

    async with asyncio.timeout(60):
        await until(ready)


async def test_every_database_route_answers_503_while_the_database_is_down(
    outage: Outage,
) -> None:
    api = outage.api
    status, _, _ = await api.call("PUT", LEAD, {"phone": "+14155550100"})
    assert status == 201
    await asyncio.to_thread(outage.server.stop)

    needing_the_database = [op for op in OPERATIONS if op.path != "/v1/health"]
    for op in needing_the_database:
        body = BODIES.get((op.method, op.path), {} if op.body else None)
        status, payload, response = await api.call(op.method, _path(op), body)
        _assert_unavailable(status, payload, response)
        expected = "not_ready" if op.scope is None else "database_unavailable"
        assert payload["type"].endswith(expected), (op.method, op.path, payload)
    status, _, _ = await api.call("GET", "/v1/health")
    assert status == 200  # liveness does not ask the database

    await asyncio.to_thread(outage.server.start_again)
    await _back(api)
    status, payload, _ = await api.call("PUT", LEAD, {"phone": "+14155550199"})
    assert status == 200, payload  # the lead written before the outage, updated
    status, payload, _ = await api.call("GET", LEAD)
    assert (status, payload["phone"]) == (200, "+14155550199")


async def test_a_handler_that_loses_the_database_answers_503(outage: Outage) -> None:
    """A token checked just before the outage (cached) lets requests reach their handlers,
    whose own queries then meet the database gone."""
    config = api_config(outage.server.url, token_cache_s=3600)
    state = api_state(config, outage.api.pool)
    state.revocations_heard = True  # as while ApiServer's listener hears announcements
    runner = web.AppRunner(create_app(config, outage.api.pool, state))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    api = dataclasses.replace(outage.api, base=f"http://127.0.0.1:{runner.addresses[0][1]}")
    reachable = [
        op
        for op in OPERATIONS
        if op.scope is not None and (op.body is None or (op.method, op.path) in BODIES)
    ]
    assert len(reachable) >= 18
    try:
        status, _, _ = await api.call("GET", "/v1/campaigns")
        assert status == 200  # the token is checked, and cached
        await asyncio.to_thread(outage.server.stop)
        for op in reachable:
            body = BODIES.get((op.method, op.path))
            status, payload, response = await api.call(op.method, _path(op), body)
            _assert_unavailable(status, payload, response)
            assert payload["type"].endswith("database_unavailable"), (op.path, payload)
        await asyncio.to_thread(outage.server.start_again)
        await _back(api)
        status, payload, _ = await api.call("GET", "/v1/campaigns/spring")
        assert (status, payload["name"]) == (200, "spring")
    finally:
        await runner.cleanup()


async def test_a_query_error_is_still_a_500(outage: Outage) -> None:
    """Only a database that is away is a 503: a failing query is our bug, and says so."""
    pool = outage.api.pool
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE leads RENAME TO leads_gone")
    status, payload, response = await outage.api.call("GET", LEAD)
    assert status == 500, payload
    assert "Retry-After" not in response.headers
