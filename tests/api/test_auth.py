"""Tokens, scopes, rate limits and the token CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from typer.testing import CliRunner

from api.server import OPERATIONS
from api.tokens import revoke_token, token_hash
from outdial.cli import app
from tests.api.conftest import Api, api_config, start_api

REPO = Path(__file__).parents[2]

# One representative request per scope, with a body that would pass validation.
BY_SCOPE = {
    "leads:write": ("PUT", "/v1/campaigns/spring/leads/x", {"phone": "+44 161 496 0000"}),
    "leads:read": ("GET", "/v1/campaigns/spring/leads/x", None),
    "campaigns:read": ("GET", "/v1/campaigns", None),
    "campaigns:write": ("POST", "/v1/campaigns/spring/pause", None),
    "dnc:read": ("POST", "/v1/dnc/check", {"phone": "+44 161 496 0000"}),
    "dnc:write": ("POST", "/v1/dnc", {"phone": "+44 161 496 0000"}),
    "calls:read": ("GET", "/v1/calls/c-1", None),
    "reports:read": ("GET", "/v1/reports/effectiveness", None),
    "personal-data:erase": ("DELETE", "/v1/leads/999/personal-data", None),
    # Lead 998 exists in the test below: its churn label and follow-up are found.
    "engagement:write": ("POST", "/v1/leads/998/churn", {"churned": True}),
    "engagement:read": ("GET", "/v1/leads/998/follow-up", None),
    "scripts:read": ("GET", "/v1/scripts/none/versions", None),
    "scripts:write": (
        "POST",
        "/v1/scripts/payment_reminder_zh/versions",
        {"source": (REPO / "scripts" / "payment_reminder_zh.yaml").read_text(encoding="utf-8")},
    ),
}


def test_every_scope_has_an_operation() -> None:
    assert {op.scope for op in OPERATIONS} - {None} == set(BY_SCOPE)


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "odt_x"])
async def test_missing_or_malformed_authorization_is_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with api.session.get(api.base + "/v1/campaigns", headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.content_type == "application/problem+json"
        assert (await response.json(content_type=None))["status"] == 401


async def test_unknown_token_is_401(api: Api) -> None:
    for wrong in ("odt_" + "A" * 43, api.token[:-1], api.token + "x", "something-else"):
        status, body, _ = await api.call("GET", "/v1/campaigns", token=wrong)
        assert status == 401, wrong
        assert body["detail"] == "unknown or revoked token"


@pytest.mark.parametrize("scope", sorted(BY_SCOPE))
async def test_each_scope_opens_its_group_and_only_it(api: Api, scope: str) -> None:
    token = await api.token_with(scope)
    await api.pool.execute(
        """INSERT INTO leads (id, campaign_id, phone_e164, timezone)
           SELECT 998, id, '+14155550198', 'UTC' FROM campaigns"""
    )
    for other, (method, path, body) in BY_SCOPE.items():
        status, problem, _ = await api.call(method, path, body, token=token)
        if other == scope:
            assert status not in (401, 403), (scope, status, problem)
        else:
            assert status == 403, (scope, other, status)
            assert problem["detail"].endswith(other)
    audited = await api.pool.fetchval("SELECT count(*) FROM api_audit WHERE token_name LIKE 't-%'")
    # Writes are audited, and so are reads that found personal data (a DNC check of a number,
    # a lead's follow-up).
    personal_reads = ("dnc:read", "engagement:read")
    assert audited == (1 if scope.endswith(":write") or scope in personal_reads else 0)


async def test_public_endpoints_need_no_token(api: Api) -> None:
    for path, expected in (("/v1/health", "ok"), ("/v1/ready", "ready")):
        async with api.session.get(api.base + path) as response:
            assert response.status == 200
            assert (await response.json())["status"] == expected
    async with api.session.get(api.base + "/openapi.json") as response:
        assert response.status == 200


async def test_ready_is_503_when_the_database_is_gone(pg_url: str) -> None:
    pool = await asyncpg.create_pool(pg_url, min_size=0, max_size=1)
    server, base = await start_api(pool, api_config(pg_url))
    try:
        await pool.close()
        async with aiohttp.ClientSession() as session, session.get(base + "/v1/ready") as r:
            assert r.status == 503
            assert r.content_type == "application/problem+json"
    finally:
        await server.stop()


async def test_unknown_route_and_method_are_problems(api: Api) -> None:
    status, body, response = await api.call("GET", "/v1/nothing-here")
    assert (status, response.content_type) == (404, "application/problem+json")
    status, body, response = await api.call("DELETE", "/v1/campaigns")
    assert status == 405
    assert "GET" in response.headers["Allow"]


async def test_rate_limit_per_token(db_pool: asyncpg.Pool, pg_url: str, api: Api) -> None:
    limited, base = await start_api(db_pool, api_config(pg_url, rate_per_s=0.01, burst=3))
    other = await api.token_with("campaigns:read", name="other")
    try:
        statuses = []
        for _ in range(5):
            async with api.session.get(
                base + "/v1/campaigns", headers={"Authorization": f"Bearer {api.token}"}
            ) as response:
                statuses.append(response.status)
                retry_after = response.headers.get("Retry-After")
                body = await response.json(content_type=None)
        assert statuses == [200, 200, 200, 429, 429]
        assert retry_after is not None and int(retry_after) >= 1
        assert body["type"] == "urn:outdial:problem:rate_limited"
        # Another token has its own bucket.
        async with api.session.get(
            base + "/v1/campaigns", headers={"Authorization": f"Bearer {other}"}
        ) as response:
            assert response.status == 200
    finally:
        await limited.stop()


# -- the token CLI ------------------------------------------------------------------------------


def _cli(pg_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    result = CliRunner().invoke(
        app, ["--config", str(config), "api", "token", *args], env={"OUTDIAL_DATABASE_URL": pg_url}
    )
    # A UserError reaches the runner as the exception (main() would print it and exit 1).
    error = str(result.exception) if result.exception else result.stderr
    return result.exit_code, result.stdout, error


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_token_cli_create_list_revoke(pg_url: str, tmp_path: Path) -> None:
    code, out, _ = _cli(
        pg_url, tmp_path, "create", "crm-prod", "-s", "leads:write", "-s", "dnc:read"
    )
    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("odt_") and len(secret) > 40
    rows = asyncio.run(_fetch(pg_url, "SELECT name, token_hash, scopes FROM api_tokens"))
    assert [(r["name"], bytes(r["token_hash"]), r["scopes"]) for r in rows] == [
        ("crm-prod", token_hash(secret), ["dnc:read", "leads:write"])
    ]
    assert secret.encode() not in bytes(rows[0]["token_hash"])

    code, out, err = _cli(pg_url, tmp_path, "create", "crm-prod", "-s", "leads:read")
    assert code == 1
    assert "already exists" in err

    code, out, _ = _cli(pg_url, tmp_path, "list")
    assert code == 0 and "crm-prod" in out and "leads:write" in out and secret not in out

    assert _cli(pg_url, tmp_path, "revoke", "crm-prod")[0] == 0
    code, _, err = _cli(pg_url, tmp_path, "revoke", "crm-prod")
    assert code == 1 and "no active token" in err
    code, out, _ = _cli(pg_url, tmp_path, "list")
    assert "crm-prod" not in out
    assert "crm-prod" in _cli(pg_url, tmp_path, "list", "--revoked")[1]
    audit = asyncio.run(
        _fetch(pg_url, "SELECT token_name, action, target FROM api_audit ORDER BY id")
    )
    assert [tuple(r) for r in audit] == [
        ("cli", "token.create", "token/crm-prod"),
        ("cli", "token.revoke", "token/crm-prod"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "crm", "-s", "leads:delete"), "unknown scope leads:delete"),
        (("create", "bad name", "-s", "leads:read"), "token name"),
    ],
)
def test_token_cli_refuses_bad_input(
    pg_url: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, _, err = _cli(pg_url, tmp_path, *args)
    assert code == 1
    assert message in err


async def test_revoked_token_is_refused(api: Api) -> None:
    token = await api.token_with("campaigns:read", name="short-lived")
    assert (await api.call("GET", "/v1/campaigns", token=token))[0] == 200
    async with api.pool.acquire() as conn:
        await revoke_token(conn, "short-lived")
    status, body, _ = await api.call("GET", "/v1/campaigns", token=token)
    assert status == 401


async def test_revocation_takes_effect_within_the_token_cache_time(
    db_pool: asyncpg.Pool, pg_url: str, api: Api
) -> None:
    cache_s = 0.5
    cached, base = await start_api(db_pool, api_config(pg_url, token_cache_s=cache_s))
    token = await api.token_with("campaigns:read", name="cached")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with api.session.get(base + "/v1/campaigns", headers=headers) as response:
            assert response.status == 200  # now in the server's cache
        async with api.pool.acquire() as conn:
            await revoke_token(conn, "cached")
        await asyncio.sleep(cache_s + 0.1)
        async with api.session.get(base + "/v1/campaigns", headers=headers) as response:
            assert response.status == 401
    finally:
        await cached.stop()
