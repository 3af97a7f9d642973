"""Leads over HTTP get the import's check against the campaign's script: a lead lacking a
field the script requires is refused with a 422 whose error points at that field."""

from __future__ import annotations

from store.scripts import record_script_version
from tests.api.conftest import SCRIPT, Api, problem_pointers

LEAD = "/v1/campaigns/spring/leads/crm-1"
PHONE = "+1 212 555 0100"


async def _require(api: Api, *fields: str) -> None:
    """The campaign's script, as a daemon loads it, needs `fields` of every lead."""
    await record_script_version(api.pool, SCRIPT, "source", "hash", None, list(fields))


async def test_put_names_the_missing_field(api: Api) -> None:
    await _require(api, "customer_name", "amount")
    status, body, _ = await api.call(
        "PUT", LEAD, {"phone": PHONE, "fields": {"customer_name": "Ann", "amount": " "}}
    )
    assert status == 422
    assert problem_pointers(body) == ["#/fields/amount"]
    assert body["errors"][0]["code"] == "missing_field"
    assert "missing_field:amount" in body["errors"][0]["detail"]
    assert await api.pool.fetchval("SELECT count(*) FROM leads") == 0
    status, _, _ = await api.call(
        "PUT", LEAD, {"phone": PHONE, "fields": {"customer_name": "Ann", "amount": "12"}}
    )
    assert status == 201


async def test_bulk_refuses_all_and_lists_each_lead_lacking_a_field(api: Api) -> None:
    await _require(api, "customer_name")
    leads = [
        {"external_id": "a", "phone": "+1 212 555 0101", "fields": {"customer_name": "Ann"}},
        {"external_id": "b", "phone": "+1 212 555 0102", "fields": {}},
        {"external_id": "c", "phone": "+1 212 555 0103", "fields": {"customer_name": ""}},
    ]
    status, body, _ = await api.call("POST", "/v1/campaigns/spring/leads", {"leads": leads})
    assert status == 422
    assert problem_pointers(body) == ["#/leads/1/fields/customer_name",
                                      "#/leads/2/fields/customer_name"]  # fmt: skip
    assert await api.pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_nothing_is_required_while_no_daemon_has_loaded_the_script(api: Api) -> None:
    status, _, _ = await api.call("PUT", LEAD, {"phone": PHONE})
    assert status == 201
