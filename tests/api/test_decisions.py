"""Engagement, consent, churn labels and risk, follow-ups over HTTP: good and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dialog import load_script
from store.scripts import record_script_version
from tests.api.conftest import Api, problem_pointers

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
ORDERS = "order_confirmation_en"
NUMBER = "+14155550123"


def event(event_id: str, channel: str = "sms", kind: str = "delivered", lead: int = 1) -> dict:
    return {
        "lead_id": lead,
        "event_id": event_id,
        "channel": channel,
        "kind": kind,
        "contact_id": "sms-1",
        "occurred_at": "2026-06-01T10:00:00Z",
    }


@pytest.fixture
async def lead(api: Api) -> int:
    """A lead of the shipped order-confirmation script (its follow-up templates are stored)."""
    loaded = load_script(SCRIPTS / f"{ORDERS}.yaml")
    await record_script_version(
        api.pool, ORDERS, loaded.source, loaded.content_hash, str(loaded.path)
    )
    return int(
        await api.pool.fetchval(
            """WITH c AS (INSERT INTO campaigns (name, script_name) VALUES ('orders', $1)
                          RETURNING id)
               INSERT INTO leads (id, campaign_id, phone_e164, timezone, consent, fields)
               SELECT 1, id, $2, 'America/New_York', true, $3 FROM c RETURNING id""",
            ORDERS,
            NUMBER,
            {"order_number": "S-1", "item": "a lamp", "store": "Lamps", "address": "1 Main St"},
        )
    )


async def test_duplicate_engagement_events_are_counted_once(api: Api, lead: int) -> None:
    first = [event("e1"), event("e2", kind="replied"), event("e1")]  # e1 twice in one batch
    status, body, _ = await api.call("POST", "/v1/engagement", {"events": first})
    assert (status, body) == (200, {"recorded": 2, "duplicates": 1})
    again = [event("e2", kind="replied"), event("e3", "push", "opened")]
    status, body, _ = await api.call("POST", "/v1/engagement", {"events": again})
    assert (status, body) == (200, {"recorded": 1, "duplicates": 1})
    rows = await api.pool.fetch("SELECT event_id FROM engagement_events ORDER BY event_id")
    assert [r["event_id"] for r in rows] == ["e1", "e2", "e3"]
    # The report counts the SMS (two events about one message) as one contact, one response.
    status, report, _ = await api.call(
        "GET", "/v1/reports/decisions", params={"since": "2026-05-01T00:00:00Z"}
    )
    assert status == 200, report
    by_channel = {e["channel"]: (e["contacts"], e["responses"]) for e in report["engagement"]}
    assert by_channel == {"sms": (1, 1), "push": (1, 1)}


@pytest.mark.parametrize(
    ("events", "pointer"),
    [
        ([event("x", lead=999)], "#/events/0/lead_id"),  # unknown lead
        ([event("ok"), event("x", "sms", "opened")], "#/events/1/kind"),  # wrong channel
        ([event("x", "call", "replied")], "#/events/0/kind"),
        ([event("x", "fax")], "#/events/0/channel"),
        ([{**event("x"), "occurred_at": "2026-06-01T10:00:00"}], "#/events/0/occurred_at"),
        ([{**event("x"), "event_id": ""}], "#/events/0/event_id"),
        ([], "#/events"),
    ],
)
async def test_bad_engagement_is_refused_and_nothing_is_recorded(
    api: Api, lead: int, events: list[dict[str, Any]], pointer: str
) -> None:
    status, problem, _ = await api.call("POST", "/v1/engagement", {"events": events})
    assert status == 422, problem
    assert pointer in problem_pointers(problem)
    assert await api.pool.fetchval("SELECT count(*) FROM engagement_events") == 0


async def test_consent_and_churn_labels_of_unknown_leads_are_404(api: Api, lead: int) -> None:
    for path, body in [
        ("/v1/leads/999/consents", {"channel": "sms", "granted": True}),
        ("/v1/leads/999/churn", {"churned": True}),
    ]:
        status, problem, _ = await api.call("POST", path, body)
        assert status == 404 and "no lead with id 999" in problem["detail"], problem
    status, problem, _ = await api.call(
        "POST", f"/v1/leads/{lead}/consents", {"channel": "fax", "granted": True}
    )
    assert (status, problem_pointers(problem)) == (422, ["#/channel"])
    labels = [{"lead_id": lead, "churned": True}, {"lead_id": 999, "churned": False}]
    status, problem, _ = await api.call("POST", "/v1/churn-labels", {"labels": labels})
    assert (status, problem_pointers(problem)) == (422, ["#/labels/1/lead_id"])
    assert await api.pool.fetchval("SELECT count(*) FROM churn_labels") == 0
    # Until a model scored the lead there is no risk to read.
    status, problem, _ = await api.call("GET", f"/v1/leads/{lead}/churn")
    assert status == 404 and "no churn score" in problem["detail"]
    status, body, _ = await api.call("POST", "/v1/churn-labels", {"labels": labels[:1]})
    assert (status, body) == (200, {"recorded": 1})


async def _follow_up(api: Api, lead: int) -> dict[str, Any]:
    status, plan, _ = await api.call("GET", f"/v1/leads/{lead}/follow-up")
    assert status == 200, plan
    return plan


async def test_follow_ups_respect_each_channels_dnc_and_consent(api: Api, lead: int) -> None:
    # No consent to messages yet: only a call may follow up.
    plan = await _follow_up(api, lead)
    assert plan["channel"] == "call"
    assert plan["blocked"] == {"sms": "no consent to sms", "push": "no consent to push"}
    for channel in ("sms", "push"):
        body = {"channel": channel, "granted": True}
        assert (await api.call("POST", f"/v1/leads/{lead}/consents", body))[0] == 200
    # The person answers SMS and never calls: SMS it is, with the script's template.
    replies = [event(f"r{i}", kind="replied") | {"contact_id": f"s{i}"} for i in range(8)]
    missed = [event(f"m{i}", "call", "missed") | {"contact_id": f"c{i}"} for i in range(8)]
    await api.call("POST", "/v1/engagement", {"events": replies + missed})
    await api.call("POST", "/v1/dnc", {"phone": NUMBER, "channel": "push"})
    plan = await _follow_up(api, lead)
    assert plan["channel"] == "sms", plan
    assert plan["template"] == "please_confirm_sms"
    assert "order S-1" in plan["text"] and plan["at"] is not None
    assert plan["blocked"] == {"push": "on the do-not-contact list for push"}
    # An SMS STOP: not by SMS any more; withdrawn call consent leaves nothing.
    await api.call("POST", "/v1/dnc", {"phone": NUMBER, "channel": "sms", "campaign": "orders"})
    assert (await _follow_up(api, lead))["channel"] == "call"
    await api.call("POST", f"/v1/leads/{lead}/consents", {"channel": "call", "granted": False})
    await api.pool.execute("UPDATE campaigns SET settings = '{\"require_consent\": true}'")
    plan = await _follow_up(api, lead)
    assert plan["channel"] is None and plan["at"] is None
    assert set(plan["blocked"]) == {"call", "sms", "push"}
    # The SMS list entry does not stop calls: the dialer's lists are the call lists.
    assert await api.pool.fetchval("SELECT count(*) FROM dnc WHERE channel = 'call'") == 0


async def test_bulk_follow_ups_name_unknown_leads(api: Api, lead: int) -> None:
    status, problem, _ = await api.call("POST", "/v1/follow-ups", {"lead_ids": [lead, 404]})
    assert (status, problem_pointers(problem)) == (422, ["#/lead_ids/1"])
    status, body, _ = await api.call("POST", "/v1/follow-ups", {"lead_ids": [lead, lead]})
    assert status == 200 and [p["lead_id"] for p in body["follow_ups"]] == [lead]
    status, problem, _ = await api.call("GET", "/v1/leads/404/follow-up")
    assert status == 404
