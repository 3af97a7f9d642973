"""Call and turn lookup (redacted), and the effectiveness report, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from compliance.settings import ComplianceSettings
from outdial.commands.calls import load_call
from tests.api.conftest import Api, api_config, problem_pointers, start_api

RAW_TEXT = "call me on +44 161 496 0000 or at ann@example.com, card 4111 1111 1111 1111"


async def _seed_call(pool: asyncpg.Pool, call_id: str = "c-1") -> None:
    """A lead dialled twice: one unanswered attempt, one answered call with three turns."""
    await pool.execute(
        """INSERT INTO leads (campaign_id, external_id, phone_e164, timezone)
           SELECT id, 'crm-7', '+441614960009', 'Europe/London' FROM campaigns"""
    )
    await pool.execute(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner, started_at,
                                      answered_at, ended_at, disposition, amd_status)
           SELECT v.call_id, l.id, l.campaign_id, 't', 'o', v.started, v.answered, v.ended, v.d,
                  v.amd
           FROM leads l, (VALUES
               ('c-0', now() - interval '2 hours', NULL::timestamptz,
                now() - interval '2 hours', 'no_answer', NULL),
               ($1, now() - interval '1 hour', now() - interval '1 hour',
                now() - interval '50 minutes', 'completed', 'HUMAN')
           ) AS v(call_id, started, answered, ended, d, amd)""",
        call_id,
    )
    await pool.execute(
        """INSERT INTO calls (call_id, campaign_id, lead_id, script_name, script_version, variant,
                              started_at, ended_at, disposition, outcome, success, summary,
                              grade, grade_reason)
           SELECT $1, campaign_id, id, 'collections_v1', 2, 'b', now() - interval '1 hour',
                  now() - interval '50 minutes', 'completed', 'promise_to_pay', true, $2,
                  'A', 'promised to pay on a date'
           FROM leads""",
        call_id,
        RAW_TEXT,
    )
    await pool.execute(
        """INSERT INTO turns (call_id, seq, speaker, node, text, intent, dtmf) VALUES
           ($1, 1, 'bot', 'greet', 'Hello, this is Acme.', NULL, NULL),
           ($1, 2, 'customer', 'greet', $2, 'callback', NULL),
           ($1, 3, 'customer', 'pay', '', NULL, '4111111111111111')""",
        call_id,
        RAW_TEXT,
    )


async def test_call_by_id_with_redacted_turns(api: Api) -> None:
    await _seed_call(api.pool)
    status, call, _ = await api.call("GET", "/v1/calls/c-1")
    assert status == 200
    assert (call["campaign"], call["external_id"], call["disposition"]) == (
        "spring",
        "crm-7",
        "completed",
    )
    assert (call["outcome"], call["success"], call["variant"], call["amd_status"]) == (
        "promise_to_pay",
        True,
        "b",
        "HUMAN",
    )
    assert [t["seq"] for t in call["turns"]] == [1, 2, 3]
    assert call["turns"][0]["text"] == "Hello, this is Acme."
    said = call["turns"][1]["text"]
    assert "[PHONE]" in said and "[EMAIL]" in said and "[CARD]" in said
    assert "496 0000" not in said and "ann@" not in said and "4111" not in said
    assert call["turns"][2]["dtmf"] == "[CARD]"
    assert "[PHONE]" in call["summary"]
    assert call["turns"][1]["intent"] == "callback"
    assert (call["grade"], call["grade_reason"]) == ("A", "promised to pay on a date")


async def test_the_api_and_calls_show_return_the_same_document(
    api: Api, pg_url: str, tmp_path: Path
) -> None:
    await _seed_call(api.pool)
    await api.pool.execute(
        """INSERT INTO compliance_events (call_id, direction, category, action, detail)
           VALUES ('c-1', 'customer', 'profanity', 'log', '{"node": "pay", "term": "damn"}')"""
    )
    _, served, _ = await api.call("GET", "/v1/calls/c-1")
    config = api_config(pg_url).model_copy(update={"state_dir": tmp_path})
    shown = await load_call(config, "c-1")
    assert served == shown.model_dump(mode="json")
    assert served["compliance_events"][0]["term"] == "damn"


async def test_calls_of_a_lead_newest_first(api: Api) -> None:
    await _seed_call(api.pool)
    status, body, _ = await api.call("GET", "/v1/campaigns/spring/leads/crm-7/calls")
    assert status == 200
    assert [c["call_id"] for c in body["calls"]] == ["c-1", "c-0"]
    unanswered = body["calls"][1]
    assert (unanswered["disposition"], unanswered["answered_at"], unanswered["turns"]) == (
        "no_answer",
        None,
        [],
    )
    assert len(body["calls"][0]["turns"]) == 3


async def test_unknown_call_and_lead_are_404(api: Api) -> None:
    assert (await api.call("GET", "/v1/calls/nope"))[0] == 404
    assert (await api.call("GET", "/v1/campaigns/spring/leads/nobody/calls"))[0] == 404
    assert (await api.call("GET", "/v1/campaigns/ghost/leads/crm-7/calls"))[0] == 404


async def test_transcripts_as_stored_when_redaction_is_off(
    db_pool: asyncpg.Pool, pg_url: str, api: Api
) -> None:
    await _seed_call(api.pool)
    config = api_config(pg_url).model_copy(
        update={"compliance": ComplianceSettings(redaction=False)}
    )
    server, base = await start_api(db_pool, config)
    try:
        headers = {"Authorization": f"Bearer {api.token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(base + "/v1/calls/c-1", headers=headers) as response,
        ):
            call = await response.json()
    finally:
        await server.stop()
    assert call["turns"][1]["text"] == RAW_TEXT


# -- the effectiveness report ---------------------------------------------------------------------


async def _seed_report(pool: asyncpg.Pool) -> None:
    # Script s, variant a: 3 completed calls, 2 successes; variant b: 1 completed, 1 failed call.
    await pool.execute(
        """INSERT INTO calls (call_id, campaign_id, script_name, variant, started_at, ended_at,
                              disposition, success)
           SELECT 'r-' || n, (SELECT id FROM campaigns), 's', v, now() - interval '1 hour',
                  now() - interval '1 hour' + interval '30 seconds', d, ok
           FROM (VALUES (1, 'a', 'completed', true), (2, 'a', 'completed', true),
                        (3, 'a', 'transferred', false), (4, 'b', 'completed', false),
                        (5, 'b', 'failed', NULL)) AS t(n, v, d, ok)"""
    )


async def test_report_over_the_default_window(api: Api) -> None:
    await _seed_report(api.pool)
    status, report, _ = await api.call("GET", "/v1/reports/effectiveness")
    assert status == 200
    rows = {r["variant"]: r for r in report["variants"]}
    assert (rows["a"]["calls"], rows["a"]["completed"], rows["a"]["successes"]) == (3, 3, 2)
    assert rows["a"]["success_rate"] == pytest.approx(2 / 3)
    assert rows["a"]["transfer_rate"] == pytest.approx(1 / 3)
    assert (rows["b"]["calls"], rows["b"]["completed"], rows["b"]["successes"]) == (2, 1, 0)
    until = datetime.fromisoformat(report["until"])
    assert until - datetime.fromisoformat(report["since"]) == timedelta(hours=24)


async def test_report_window_and_campaign_filter(api: Api) -> None:
    await _seed_report(api.pool)
    now = datetime.now(UTC)
    old = {
        "since": (now - timedelta(days=9)).isoformat(),
        "until": (now - timedelta(days=8)).isoformat(),
    }
    status, report, _ = await api.call("GET", "/v1/reports/effectiveness", params=old)
    assert (status, report["variants"]) == (200, [])
    status, report, _ = await api.call(
        "GET", "/v1/reports/effectiveness", params={"campaign": "spring"}
    )
    assert (status, report["campaign"], len(report["variants"])) == (200, "spring", 2)


@pytest.mark.parametrize(
    ("span", "length"), [("90m", timedelta(minutes=90)), ("7d", timedelta(days=7))]
)
async def test_since_takes_a_span_as_the_cli_does(api: Api, span: str, length: timedelta) -> None:
    status, report, _ = await api.call("GET", "/v1/reports/effectiveness", params={"since": span})
    assert status == 200
    since, until = (datetime.fromisoformat(report[k]) for k in ("since", "until"))
    assert until - since == length


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "0h"}, "since"),
        ({"since": "24 hours"}, "since"),
        ({"since": "2024-06-01T00:00:00"}, "since"),  # no offset: ambiguous
        ({"since": "2024-06-02T00:00:00Z", "until": "2024-06-01T00:00:00Z"}, "since"),
        ({"campaign": "ghost"}, "campaign"),
        ({"campaign": "bad name"}, "campaign"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_report_parameters(api: Api, params: dict[str, str], parameter: str) -> None:
    status, problem, _ = await api.call("GET", "/v1/reports/effectiveness", params=params)
    assert status == 422
    assert problem_pointers(problem) == [parameter]


async def test_repeated_query_parameter_is_refused(api: Api) -> None:
    status, problem, _ = await api.call(
        "GET", "/v1/reports/effectiveness?campaign=spring&campaign=spring"
    )
    assert status == 422
    assert problem_pointers(problem) == ["campaign"]
