"""Campaigns (create, list, pause, resume, stats) and the DNC lists over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dialog.validate import content_hash
from store.scripts import record_script_version
from tests.api.conftest import SCRIPT, Api, problem_pointers

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

NUMBER = "+44 161 496 0000"


async def test_create_list_get_pause_resume(api: Api) -> None:
    body = {"name": "summer", "script": SCRIPT, "settings": {"window": "09:00-20:00", "cps": 2}}
    status, created, _ = await api.call("POST", "/v1/campaigns", body)
    assert status == 201
    assert (created["name"], created["script"], created["status"]) == ("summer", SCRIPT, "active")
    assert created["settings"] == {"window": "09:00-20:00", "cps": 2.0}

    status, listing, _ = await api.call("GET", "/v1/campaigns")
    assert [c["name"] for c in listing["campaigns"]] == ["spring", "summer"]

    status, paused, _ = await api.call("POST", "/v1/campaigns/summer/pause")
    assert (status, paused["status"]) == (200, "paused")
    stored = await api.pool.fetchval("SELECT status FROM campaigns WHERE name = 'summer'")
    assert stored == "paused"
    status, resumed, _ = await api.call("POST", "/v1/campaigns/summer/resume")
    assert (status, resumed["status"]) == (200, "active")
    assert (await api.call("GET", "/v1/campaigns/summer"))[1] == resumed

    audit = await api.pool.fetch(
        "SELECT action, target FROM api_audit WHERE token_name = 'crm' ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [
        ("campaign.create", "campaign/summer"),
        ("campaign.pause", "campaign/summer"),
        ("campaign.resume", "campaign/summer"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "pointer"),
    [
        ({"name": "spring", "script": SCRIPT}, 409, None),
        ({"name": "new", "script": "no_such_script"}, 422, "#/script"),
        ({"name": "bad name", "script": SCRIPT}, 422, "#/name"),
        (
            {"name": "new", "script": SCRIPT, "settings": {"window": "9-5"}},
            422,
            "#/settings/window",
        ),
        ({"name": "new", "script": SCRIPT, "settings": {"cps": 0}}, 422, "#/settings/cps"),
        ({"name": "new", "script": SCRIPT, "settings": {"speed": 1}}, 422, "#/settings/speed"),
        ({"name": "new"}, 422, "#/script"),
        # The test's script has no stored version to read a recording notice from.
        ({"name": "new", "script": SCRIPT, "settings": {"record": True}}, 422, "#/settings/record"),
    ],
)
async def test_bad_campaigns_are_refused(
    api: Api, body: dict[str, Any], status: int, pointer: str | None
) -> None:
    got, problem, _ = await api.call("POST", "/v1/campaigns", body)
    assert got == status
    if pointer is not None:
        assert problem_pointers(problem) == [pointer]
    assert await api.pool.fetchval("SELECT count(*) FROM campaigns") == 1
    assert await api.pool.fetchval("SELECT count(*) FROM api_audit") == 1  # the token's creation


async def test_a_recording_campaign_needs_a_script_that_says_so(api: Api) -> None:
    shipped = (SCRIPTS / "order_confirmation_en.yaml").read_text()
    silent = shipped.replace(" This call may be recorded.", "")
    for version, source in enumerate((silent, shipped), 1):
        await record_script_version(api.pool, SCRIPT, source, content_hash(source), None)
        body = {"name": f"taped{version}", "script": SCRIPT, "settings": {"record": True}}
        status, problem, _ = await api.call("POST", "/v1/campaigns", body)
        if source is silent:
            assert status == 422 and problem_pointers(problem) == ["#/settings/record"]
            assert "does not say so in its identification" in problem["errors"][0]["detail"]
        else:
            assert status == 201 and problem["settings"] == {"record": True}


async def test_unknown_campaign_is_404_everywhere(api: Api) -> None:
    for method, path in (
        ("GET", "/v1/campaigns/ghost"),
        ("POST", "/v1/campaigns/ghost/pause"),
        ("POST", "/v1/campaigns/ghost/resume"),
        ("GET", "/v1/campaigns/ghost/stats"),
    ):
        status, problem, _ = await api.call(method, path)
        assert status == 404, path
        assert problem["type"] == "urn:outdial:problem:not_found"


async def test_stats_count_leads_and_attempts(api: Api) -> None:
    await api.call(
        "POST",
        "/v1/campaigns/spring/leads",
        {
            "region": "GB",
            "leads": [{"external_id": f"s{i}", "phone": f"0161 496 000{i}"} for i in range(3)],
        },
    )
    await api.pool.execute("UPDATE leads SET status = 'done' WHERE external_id = 's0'")
    await api.pool.execute(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner, ended_at,
                                      disposition)
           SELECT 'a-' || d, l.id, l.campaign_id, 't', 'o', now(), d
           FROM leads l, unnest(ARRAY['completed', 'no_answer']) AS d
           WHERE l.external_id = 's0'"""
    )
    status, stats, _ = await api.call("GET", "/v1/campaigns/spring/stats")
    assert status == 200
    assert stats["leads_by_status"] == {"done": 1, "pending": 2}
    assert stats["attempts_by_disposition"] == {"completed": 1, "no_answer": 1}
    assert stats["live_attempts"] == 0
    assert stats["answer_rate"] == 0.5


# -- DNC ------------------------------------------------------------------------------------------


async def test_dnc_add_check_remove_global_and_campaign(api: Api) -> None:
    status, body, _ = await api.call("POST", "/v1/dnc", {"phone": NUMBER, "reason": "asked"})
    assert (status, body) == (201, {"added": True})
    status, body, _ = await api.call("POST", "/v1/dnc", {"phone": "0161 496 0000", "region": "GB"})
    assert (status, body) == (200, {"added": False})
    row = await api.pool.fetchrow("SELECT phone_e164, campaign_id, source, reason FROM dnc")
    assert tuple(row) == ("+441614960000", None, "api", "asked")

    status, check, _ = await api.call(
        "POST", "/v1/dnc/check", {"phone": NUMBER, "campaign": "spring"}
    )
    assert check == {"listed": True, "on_global_list": True, "on_campaign_list": False}

    other = "+44 161 496 0001"
    await api.call("POST", "/v1/dnc", {"phone": other, "campaign": "spring"})
    status, check, _ = await api.call("POST", "/v1/dnc/check", {"phone": other})
    assert check == {"listed": False, "on_global_list": False, "on_campaign_list": None}
    status, check, _ = await api.call(
        "POST", "/v1/dnc/check", {"phone": other, "campaign": "spring"}
    )
    assert check == {"listed": True, "on_global_list": False, "on_campaign_list": True}

    # Removing from the global list leaves the campaign's list alone, and vice versa.
    status, body, _ = await api.call("POST", "/v1/dnc/remove", {"phone": other})
    assert body == {"removed": False}
    status, body, _ = await api.call(
        "POST", "/v1/dnc/remove", {"phone": other, "campaign": "spring"}
    )
    assert body == {"removed": True}
    status, body, _ = await api.call("POST", "/v1/dnc/remove", {"phone": NUMBER})
    assert body == {"removed": True}
    assert await api.pool.fetchval("SELECT count(*) FROM dnc") == 0

    audit = await api.pool.fetch(
        """SELECT action, target, detail, subject = subject_hash('+441614960000') AS first
           FROM api_audit WHERE token_name = 'crm' ORDER BY id"""
    )
    # Who checked or changed which list, and about whom (the number's hash: `first` is the
    # first number); checks are reads of personal data, audited too.
    assert [(r["action"], r["target"], r["detail"].get("changed"), r["first"]) for r in audit] == [
        ("dnc.add", "dnc/global", True, True),
        ("dnc.add", "dnc/global", False, True),
        ("dnc.check", "dnc/spring", None, True),
        ("dnc.add", "dnc/spring", True, False),
        ("dnc.check", "dnc/global", None, False),
        ("dnc.check", "dnc/spring", None, False),
        ("dnc.remove", "dnc/global", False, False),
        ("dnc.remove", "dnc/spring", True, False),
        ("dnc.remove", "dnc/global", True, True),
    ]
    # The audit log never holds a number in clear.
    dump = str([dict(r) for r in await api.pool.fetch("SELECT * FROM api_audit")])
    assert "4960000" not in dump and "4960001" not in dump


@pytest.mark.parametrize(
    ("path", "body", "status", "pointer"),
    [
        ("/v1/dnc", {"phone": "123"}, 422, "#/phone"),
        ("/v1/dnc", {"phone": "+44 161 496 0000", "campaign": "ghost"}, 404, "#/campaign"),
        ("/v1/dnc", {"phone": "+44 161 496 0000", "reason": 5}, 422, "#/reason"),
        ("/v1/dnc/check", {"phone": "0161 496 0000", "region": "ZZ"}, 422, "#/region"),
        ("/v1/dnc/check", {"number": "+44 161 496 0000"}, 422, "#/phone"),
        ("/v1/dnc/remove", {"phone": "+44 161 496 0000", "reason": "x"}, 422, "#/reason"),
    ],
)
async def test_bad_dnc_requests(
    api: Api, path: str, body: dict[str, Any], status: int, pointer: str
) -> None:
    got, problem, _ = await api.call("POST", path, body)
    assert got == status
    assert pointer in problem_pointers(problem)
    assert await api.pool.fetchval("SELECT count(*) FROM dnc") == 0
