"""Leads over HTTP: idempotent upsert by external id, the CSV import's validation, and
all-or-nothing bulk writes."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import pytest

from store.leads import import_leads
from tests.api.conftest import Api, problem_pointers

LEAD = "/v1/campaigns/spring/leads/crm-1"
# A Manchester landline: one time zone, valid, and not a real subscriber.
GB_NUMBER = "+44 161 496 0000"
US_NUMBER = "+1 212 555 0100"  # 555-01xx is reserved for fiction; New York, one zone


async def _count(api: Api, sql: str, *args: Any) -> int:
    return int(await api.pool.fetchval(sql, *args))


async def test_put_creates_then_updates_the_same_lead(api: Api) -> None:
    status, body, _ = await api.call(
        "PUT", LEAD, {"phone": GB_NUMBER, "priority": 5, "consent": True, "fields": {"name": "Ann"}}
    )
    assert status == 201
    assert body["phone"] == "+441614960000"
    assert body["timezone"] == "Europe/London"
    assert (body["priority"], body["consent"], body["fields"]) == (5, True, {"name": "Ann"})
    assert body["status"] == "pending"

    status, again, _ = await api.call(
        "PUT", LEAD, {"phone": US_NUMBER, "timezone": "America/New_York"}
    )
    assert status == 200
    assert again["id"] == body["id"]
    assert (again["phone"], again["priority"], again["consent"], again["fields"]) == (
        "+12125550100",
        0,
        False,
        {},
    )
    assert await _count(api, "SELECT count(*) FROM leads") == 1

    status, read, _ = await api.call("GET", LEAD)
    assert status == 200
    assert read == again
    actions = await api.pool.fetch("SELECT token_name, action, target FROM api_audit ORDER BY id")
    assert [tuple(r) for r in actions if r["token_name"] == "crm"] == [
        ("crm", "lead.create", "campaign/spring/lead/crm-1"),
        ("crm", "lead.update", "campaign/spring/lead/crm-1"),
        ("crm", "lead.read", "campaign/spring/lead/crm-1"),  # a read of personal data
    ]


async def test_update_keeps_the_dialling_state(api: Api) -> None:
    await api.call("PUT", LEAD, {"phone": GB_NUMBER})
    await api.pool.execute("UPDATE leads SET status = 'done', attempts = 2")
    status, body, _ = await api.call("PUT", LEAD, {"phone": GB_NUMBER, "priority": 9})
    assert status == 200
    assert (body["status"], body["attempts"], body["priority"]) == ("done", 2, 9)


async def test_fields_may_be_numbers_and_booleans_stored_as_a_csv_holds_them(api: Api) -> None:
    lead = {"phone": GB_NUMBER, "fields": {"amount": 35.5, "count": 3, "vip": True, "name": "Ann"}}
    status, body, _ = await api.call("PUT", LEAD, lead)
    assert status == 201, body
    assert body["fields"] == {"amount": "35.5", "count": "3", "vip": "true", "name": "Ann"}


@pytest.mark.parametrize(
    ("lead", "pointer", "code"),
    [
        ({"phone": "12"}, "#/phone", "bad_number"),
        ({"phone": "+1 212 555"}, "#/phone", "bad_number"),
        ({"phone": "not a number"}, "#/phone", "bad_number"),
        ({"phone": ""}, "#/phone", "missing_phone"),
        ({"phone": "+800 1234 5678"}, "#/timezone", "unknown_timezone"),
        ({"phone": "+1 800 555 0100"}, "#/timezone", "ambiguous_timezone"),
        ({"phone": GB_NUMBER, "timezone": "Mars/Olympus"}, "#/timezone", "bad_timezone"),
        ({"phone": GB_NUMBER, "priority": 2**31}, "#/priority", "bad_priority"),
        ({"phone": GB_NUMBER, "priority": "5"}, "#/priority", "int_type"),
        ({"phone": GB_NUMBER, "consent": "yes"}, "#/consent", "bool_type"),
        ({"phone": GB_NUMBER, "fields": {"a": {"b": 1}}}, "#/fields/a", "value_error"),
        ({"phone": GB_NUMBER, "fields": {"a": [1]}}, "#/fields/a", "value_error"),
        ({"phone": GB_NUMBER, "fields": {"a": "x\u0000y"}}, "#/fields/a", "value_error"),
        ({"phone": GB_NUMBER, "colour": "red"}, "#/colour", "extra_forbidden"),
        ({"phone": GB_NUMBER, "region": "XX"}, "#/region", "bad_region"),
        ({}, "#/phone", "missing"),
    ],
)
async def test_invalid_leads_are_refused_with_the_field_at_fault(
    api: Api, lead: dict[str, Any], pointer: str, code: str
) -> None:
    status, body, response = await api.call("PUT", LEAD, lead)
    assert status == 422
    assert response.content_type == "application/problem+json"
    assert body["status"] == 422
    assert body["type"] == "urn:outdial:problem:validation"
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [(pointer, code)]
    assert await _count(api, "SELECT count(*) FROM leads") == 0


async def test_same_number_under_another_external_id_is_a_conflict(api: Api) -> None:
    assert (await api.call("PUT", LEAD, {"phone": GB_NUMBER}))[0] == 201
    status, body, _ = await api.call(
        "PUT", "/v1/campaigns/spring/leads/crm-2", {"phone": "0161 496 0000", "region": "GB"}
    )
    assert status == 409
    assert problem_pointers(body) == ["#/phone"]
    assert await _count(api, "SELECT count(*) FROM leads") == 1


async def test_unknown_campaign_and_lead_are_404(api: Api) -> None:
    status, body, _ = await api.call("PUT", "/v1/campaigns/nope/leads/x", {"phone": GB_NUMBER})
    assert status == 404
    assert "nope" in body["detail"]
    assert (await api.call("GET", "/v1/campaigns/spring/leads/absent"))[0] == 404
    assert await _count(api, "SELECT count(*) FROM api_audit WHERE token_name = 'crm'") == 0


async def test_bad_path_parameters_are_named(api: Api) -> None:
    status, body, _ = await api.call(
        "PUT", "/v1/campaigns/bad%20name/leads/x", {"phone": GB_NUMBER}
    )
    assert status == 422
    assert problem_pointers(body) == ["campaign"]
    status, body, _ = await api.call("PUT", "/v1/campaigns/spring/leads/%20x", {"phone": GB_NUMBER})
    assert status == 422
    assert problem_pointers(body) == ["external_id"]


async def test_malformed_json_wrong_media_type_and_oversized_bodies(api: Api) -> None:
    status, body, response = await api.call("PUT", LEAD, raw=b'{"phone": "+44 161')
    assert status == 400
    assert response.content_type == "application/problem+json"
    assert body["type"] == "urn:outdial:problem:malformed_json"

    status, body, _ = await api.call("PUT", LEAD, raw=b"\xff\xfe{}")
    assert status == 400

    status, body, _ = await api.call(
        "PUT", LEAD, raw=b'{"phone": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert status == 415

    huge = b'{"phone": "' + b"1" * 2_000_000 + b'"}'
    status, body, response = await api.call("PUT", LEAD, raw=huge)
    assert status == 413
    assert response.content_type == "application/problem+json"

    async def chunks() -> Any:
        for _ in range(40):
            yield b" " * 65_536  # no Content-Length: aiohttp's own limit must stop it

    assert (await api.call("PUT", LEAD, raw=b""))[0] == 400  # an empty body is not JSON either
    assert (await api.call("PUT", LEAD))[0] == 415  # no body, no media type
    async with api.session.put(
        api.base + LEAD,
        data=chunks(),
        headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
        assert response.content_type == "application/problem+json"
    assert await _count(api, "SELECT count(*) FROM leads") == 0


def _bulk(*leads: dict[str, Any], region: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"leads": list(leads)}
    if region:
        body["region"] = region
    return body


async def test_bulk_writes_all_and_is_idempotent(api: Api) -> None:
    leads = [{"external_id": f"b{i}", "phone": f"020 7946 00{i:02d}"} for i in range(20)]
    status, body, _ = await api.call(
        "POST", "/v1/campaigns/spring/leads", _bulk(*leads, region="GB")
    )
    assert status == 200
    assert (body["created"], body["updated"]) == (20, 0)
    assert [r["external_id"] for r in body["leads"]] == [f"b{i}" for i in range(20)]

    leads[3]["priority"] = 7
    status, body, _ = await api.call(
        "POST", "/v1/campaigns/spring/leads", _bulk(*leads, region="GB")
    )
    assert (status, body["created"], body["updated"]) == (200, 0, 20)
    assert await _count(api, "SELECT count(*) FROM leads") == 20
    assert await _count(api, "SELECT priority FROM leads WHERE external_id = 'b3'") == 7
    assert await _count(api, "SELECT count(*) FROM api_audit WHERE action = 'lead.update'") == 20


async def test_bulk_with_any_bad_lead_writes_nothing(api: Api) -> None:
    leads = [
        {"external_id": "ok-1", "phone": GB_NUMBER},
        {"external_id": "bad-phone", "phone": "12"},
        {"external_id": "ok-2", "phone": US_NUMBER},
        {"external_id": "ok-1", "phone": "+44 161 496 0001"},
        {"external_id": "same-number", "phone": "+44 (161) 4960000"},
        {"external_id": "bad-tz", "phone": "+44 161 496 0002", "timezone": "Nowhere/Land"},
    ]
    status, body, _ = await api.call("POST", "/v1/campaigns/spring/leads", _bulk(*leads))
    assert status == 422
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("#/leads/1/phone", "bad_number"),
        ("#/leads/3/external_id", "duplicate"),
        ("#/leads/4/phone", "duplicate"),
        ("#/leads/5/timezone", "bad_timezone"),
    ]
    assert await _count(api, "SELECT count(*) FROM leads") == 0
    assert await _count(api, "SELECT count(*) FROM api_audit WHERE token_name = 'crm'") == 0


async def test_bulk_conflicting_with_stored_numbers_writes_nothing(api: Api) -> None:
    await api.call("PUT", "/v1/campaigns/spring/leads/owner", {"phone": GB_NUMBER})
    leads = [
        {"external_id": "new-1", "phone": US_NUMBER},
        {"external_id": "new-2", "phone": GB_NUMBER},
    ]
    status, body, _ = await api.call("POST", "/v1/campaigns/spring/leads", _bulk(*leads))
    assert status == 409
    assert problem_pointers(body) == ["#/leads/1/phone"]
    assert await _count(api, "SELECT count(*) FROM leads") == 1


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"leads": []}, "#/leads"),
        ({"leads": [{"phone": GB_NUMBER}]}, "#/leads/0/external_id"),
        ({"leads": "all"}, "#/leads"),
        ([], "#"),
    ],
)
async def test_bulk_shape_errors(api: Api, body: Any, pointer: str) -> None:
    status, problem, _ = await api.call("POST", "/v1/campaigns/spring/leads", body)
    assert status == 422
    assert problem_pointers(problem)[0] == pointer


# Rows as a CSV file would hold them; the API must accept exactly those the import accepts.
_SAME_AS_IMPORT = [
    {"phone": "+44 161 496 0000"},
    {"phone": "0161 496 0003"},
    {"phone": "+1 212 555 0100", "timezone": " America/New_York "},
    {"phone": "+1 800 555 0100"},
    {"phone": "+1 800 555 0100", "timezone": "America/Chicago"},
    {"phone": "+7 912 345 6789"},
    {"phone": "+86 138 0013 8000"},
    {"phone": "12345"},
    {"phone": "   "},
    {"phone": "+44 161 496 0004", "timezone": "Europe/Londres"},
    {"phone": "+44 161 496 0005", "priority": 2**31 - 1},
    {"phone": "+44 161 496 0006", "priority": -(2**31) - 1},
]


async def test_api_accepts_exactly_what_the_csv_import_accepts(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["external_id", "phone", "timezone", "priority"])
        for i, row in enumerate(_SAME_AS_IMPORT):
            writer.writerow(
                [f"c{i}", row["phone"], row.get("timezone", ""), row.get("priority", "")]
            )
    await api.pool.execute("INSERT INTO campaigns (name, script_name) VALUES ('csv', 'x')")
    async with api.pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="csv", region="GB", workers=1)
    rejected_lines: set[int] = set()
    if summary.rejects_file:
        rejects = await asyncio.to_thread(Path(summary.rejects_file).read_text)
        rejected_lines = {int(r["line"]) for r in csv.DictReader(rejects.splitlines())}
    stored = {
        r["external_id"]: tuple(r)[1:]
        for r in await api.pool.fetch(
            """SELECT external_id, phone_e164, timezone, priority FROM leads l
               JOIN campaigns c ON c.id = l.campaign_id WHERE c.name = 'csv'"""
        )
    }
    for i, row in enumerate(_SAME_AS_IMPORT):
        status, body, _ = await api.call(
            "PUT", f"/v1/campaigns/spring/leads/c{i}", {**row, "region": "GB"}
        )
        if i + 2 in rejected_lines:
            assert status == 422, (row, body)
        else:
            assert status == 201, (row, body)
            assert (body["phone"], body["timezone"], body["priority"]) == stored[f"c{i}"]
    assert 0 < len(rejected_lines) < len(_SAME_AS_IMPORT)
