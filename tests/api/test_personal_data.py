"""DELETE /v1/leads/{lead_id}/personal-data: erasure on request through the API."""

from __future__ import annotations

from tests.api.conftest import Api

LEAD = "/v1/campaigns/spring/leads/crm-5"


async def test_erasure_through_the_api(api: Api) -> None:
    status, lead, _ = await api.call(
        "PUT", LEAD, {"phone": "+12025550111", "fields": {"customer_name": "Ada Lovelace"}}
    )
    assert status == 201
    path = f"/v1/leads/{lead['id']}/personal-data"
    status, body, _ = await api.call("DELETE", path)
    assert status == 200 and body["leads"] == 1 and body["audit_rows"] == 1
    # The lead is gone for the CRM (no external id, no number), and a second erasure says so.
    assert (await api.call("GET", LEAD))[0] == 404
    status, problem, _ = await api.call("DELETE", path)
    assert status == 404 and "was erased" in problem["detail"]
    dump = str([dict(r) for r in await api.pool.fetch("SELECT * FROM leads")])
    assert "Ada" not in dump and "0111" not in dump
    audit = await api.pool.fetchrow(
        "SELECT token_name, token_id FROM api_audit WHERE action = 'personal_data.erase'"
    )
    assert audit["token_name"] == "crm" and audit["token_id"] is not None


async def test_erasure_waits_for_a_call_in_progress(api: Api) -> None:
    status, lead, _ = await api.call("PUT", LEAD, {"phone": "+12025550112"})
    await api.pool.execute("UPDATE leads SET status = 'leased' WHERE id = $1", lead["id"])
    status, problem, _ = await api.call("DELETE", f"/v1/leads/{lead['id']}/personal-data")
    assert status == 409 and "being dialled" in problem["detail"]
    assert await api.pool.fetchval("SELECT phone_e164 FROM leads") == "+12025550112"


async def test_bad_or_unknown_lead_ids(api: Api) -> None:
    for bad in ("abc", "0", "-1", "1" * 30):
        status, problem, _ = await api.call("DELETE", f"/v1/leads/{bad}/personal-data")
        assert status == 422 and problem["errors"][0]["parameter"] == "lead_id", bad
    status, problem, _ = await api.call("DELETE", "/v1/leads/424242/personal-data")
    assert status == 404 and problem["detail"] == "no lead with id 424242"
