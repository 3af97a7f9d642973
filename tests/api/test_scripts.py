"""Script versions over HTTP: stage, list, promote (tests must pass, or force), roll back,
with scopes and the audit log. Real PostgreSQL and spaCy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.api.conftest import Api, api_config, problem_pointers, start_api
from tests.dialog.conftest import SCRIPTS

NAME = "payment_reminder_zh"
SOURCE = (SCRIPTS / f"{NAME}.yaml").read_text(encoding="utf-8")
CASES = {p.name: p.read_text(encoding="utf-8") for p in (SCRIPTS / "tests" / NAME).glob("*.yaml")}


@pytest.fixture
async def api(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    config = api_config(pg_url, token_cache_s=0).model_copy(update={"state_dir": tmp_path})
    server, base = await start_api(db_pool, config)
    async with aiohttp.ClientSession() as session:
        client = Api(session, base, "", db_pool)
        client.token = await client.token_with("scripts:read", "scripts:write", name="admin")
        yield client
    await server.stop()


async def test_stage_list_promote_rollback(api: Api) -> None:
    status, staged, _ = await api.call(
        "POST", f"/v1/scripts/{NAME}/versions", {"source": SOURCE, "cases": CASES}
    )
    assert status == 201, staged
    assert (staged["version"], staged["live"], staged["staged_by"]) == (1, False, "api:admin")
    status, promoted, _ = await api.call("POST", f"/v1/scripts/{NAME}/promote", {})
    assert (status, promoted["version"], promoted["forced"]) == (200, 1, False)
    second = SOURCE.replace("感谢您的配合，再见。", "谢谢您，再见。")
    await api.call("POST", f"/v1/scripts/{NAME}/versions", {"source": second, "cases": CASES})
    assert (await api.call("POST", f"/v1/scripts/{NAME}/promote", {"version": 2}))[0] == 200
    status, back, _ = await api.call("POST", f"/v1/scripts/{NAME}/rollback")
    assert (status, back["version"]) == (200, 1)
    status, listing, _ = await api.call("GET", f"/v1/scripts/{NAME}/versions")
    assert [(v["version"], v["live"]) for v in listing["versions"]] == [(2, False), (1, True)]
    assert listing["versions"][1]["promoted_by"] == "api:admin"
    audit = await api.pool.fetch(
        "SELECT action FROM api_audit WHERE token_name = 'admin' ORDER BY id"
    )
    assert [r["action"] for r in audit] == [
        "script.stage", "script.promote", "script.stage", "script.promote", "script.rollback",
    ]  # fmt: skip


async def test_failing_tests_refuse_a_promotion_unless_forced(api: Api) -> None:
    broken = SOURCE.replace("请忽略本次提醒，系统到账可能稍有延迟", "我们会尽快为您处理")
    await api.call("POST", f"/v1/scripts/{NAME}/versions", {"source": broken, "cases": CASES})
    status, problem, _ = await api.call("POST", f"/v1/scripts/{NAME}/promote", {})
    assert status == 409 and "'请忽略本次提醒'" in problem["detail"]
    status, forced, _ = await api.call("POST", f"/v1/scripts/{NAME}/promote", {"force": True})
    assert (status, forced["forced"]) == (200, True)
    row = await api.pool.fetchrow("SELECT by_whom, forced FROM script_promotions")
    assert tuple(row) == ("api:admin", True)


async def test_scopes_and_bad_input(api: Api) -> None:
    reader = await api.token_with("scripts:read", name="reader")
    body = {"source": SOURCE}
    status, _, _ = await api.call("POST", f"/v1/scripts/{NAME}/versions", body, token=reader)
    assert status == 403
    status, problem, _ = await api.call("POST", "/v1/scripts/other/versions", body)
    assert status == 422 and "named 'payment_reminder_zh', not 'other'" in problem["detail"]
    bad = SOURCE.replace("start: confirm_identity", "start: nowhere")
    status, problem, _ = await api.call("POST", f"/v1/scripts/{NAME}/versions", {"source": bad})
    assert status == 422 and "undefined node 'nowhere'" in problem["detail"]
    assert problem_pointers(problem)[0] == "#/source"
    cases = {"x.yaml": "cases:\n  - name: x\n    steps:\n      - nod: 1\n"}
    body = {"source": SOURCE, "cases": cases}
    status, problem, _ = await api.call("POST", f"/v1/scripts/{NAME}/versions", body)
    assert status == 422 and "unknown field 'nod'" in problem["detail"]
    status, _, _ = await api.call("GET", "/v1/scripts/none/versions")
    assert status == 404


async def test_a_campaign_needs_the_script_promoted_not_only_staged(api: Api) -> None:
    await api.call("POST", f"/v1/scripts/{NAME}/versions", {"source": SOURCE, "cases": CASES})
    writer = await api.token_with("campaigns:write", name="campaigns")
    body = {"name": "reminders", "script": NAME}
    status, problem, _ = await api.call("POST", "/v1/campaigns", body, token=writer)
    assert status == 422 and problem_pointers(problem) == ["#/script"]
    error = problem["errors"][0]
    assert error["code"] == "not_live"
    assert f"'{NAME}' is only staged (version 1), not live" in error["detail"]
    assert f"`outdial script promote {NAME}`" in error["detail"]
    assert (await api.call("POST", f"/v1/scripts/{NAME}/promote", {}))[0] == 200
    status, created, _ = await api.call("POST", "/v1/campaigns", body, token=writer)
    assert (status, created["script"]) == (201, NAME)
