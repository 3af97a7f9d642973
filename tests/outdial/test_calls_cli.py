"""`outdial calls list` and `outdial calls show`: calls read back from the database as
conversations (redacted), filtered, and refused clearly when the input is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from outdial.errors import UserError
from tests.analytics.cli import invoke

RAW = "call me on +44 161 496 0000, card 4111 1111 1111 1111"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


async def _seed(pool: asyncpg.Pool) -> None:
    """Campaign spring: call-answered-1 (a conversation with a barge-in, a compliance hit and
    a transfer) and call-busy-2 (never answered). Campaign autumn: call-old-3, two days ago."""
    await pool.execute(
        """INSERT INTO campaigns (name, script_name) VALUES ('spring', 's'), ('autumn', 's');
           INSERT INTO leads (campaign_id, phone_e164, timezone)
           SELECT id, '+441614960009', 'UTC' FROM campaigns"""
    )
    await pool.execute(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner, started_at,
                                      answered_at, ended_at, disposition, amd_status, amd_cause)
           SELECT v.id, l.id, l.campaign_id, 't1', 'o', v.s, v.a, v.e, v.d, v.amd, v.cause
           FROM (SELECT $1::timestamptz AS t0) AS t CROSS JOIN leads l
           JOIN campaigns c ON c.id = l.campaign_id
           JOIN LATERAL (VALUES
             ('call-answered-1', 'spring', t0, t0 + interval '3 s',
              t0 + interval '40 s', 'transferred', 'HUMAN', 'HUMAN-500-500'),
             ('call-busy-2', 'spring', t0 + interval '1 min', NULL, t0 + interval '61 s',
              'busy', NULL, NULL),
             ('call-old-3', 'autumn', t0 - interval '2 days', t0 - interval '2 days',
              t0 - interval '2 days' + interval '20 s', 'completed', 'HUMAN', NULL)
           ) AS v(id, camp, s, a, e, d, amd, cause) ON v.camp = c.name""",
        T0,
    )
    await pool.execute(
        """INSERT INTO calls (call_id, campaign_id, lead_id, script_name, script_version,
                              variant, started_at, ended_at, disposition, outcome, success,
                              transfer_target, transfer_reason, hangup_side,
                              greeting_latency_ms, amd_status)
           SELECT 'call-answered-1', campaign_id, id, 'collections', 3, 'b',
                  $1::timestamptz + interval '4 s', $1::timestamptz + interval '40 s',
                  'transferred', 'dispute', false,
                  'billing_queue', 'customer disputes the amount', 'bot', 412, 'HUMAN'
           FROM leads WHERE campaign_id = (SELECT id FROM campaigns WHERE name = 'spring')""",
        T0,
    )
    media = T0 + timedelta(seconds=4)
    turns = [
        (1, "bot", "greet", "Hello, this is Acme about your bill.", None, None, None, False,
         {"first_audio_out": 0.41}, media + timedelta(seconds=0.41)),
        (2, "customer", "greet", RAW, "dispute", 0.87, 0.31, True,
         {"speech_start": 2.1, "speech_end": 5.0}, media + timedelta(seconds=5.4)),
        (3, "bot", "handoff", "I will put you through to billing.", None, None, None, False,
         {"first_audio_out": 5.9, "reply_ms": 900.0, "processing_ms": 420.0},
         media + timedelta(seconds=5.9)),
        (4, "customer", "handoff", "this is a damn scam", "abuse", 0.66, 0.74, False,
         {"speech_start": 8.0, "speech_end": 9.5}, media + timedelta(seconds=9.7)),
    ]  # fmt: skip
    await pool.executemany(
        """INSERT INTO turns (call_id, seq, speaker, node, text, intent, intent_confidence,
                              agitation, barge_in, timings, created_at)
           VALUES ('call-answered-1', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        turns,
    )
    await pool.execute(
        """INSERT INTO compliance_events (call_id, direction, category, action, detail,
                                          created_at)
           VALUES ('call-answered-1', 'customer', 'abuse', 'escalate',
                   '{"node": "handoff", "term": "damn"}', $1)""",
        media + timedelta(seconds=9.8),
    )


async def _run(tmp_path: Path, pg_url: str, *args: str, columns: int = 80) -> str:
    result = await invoke("calls", *args, pg_url=pg_url, tmp_path=tmp_path, columns=columns)
    assert result.exit_code == 0, result.output
    return result.output


async def test_show_prints_the_conversation_as_stored(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path
) -> None:
    await _seed(db_pool)
    document = json.loads(await _run(tmp_path, pg_url, "show", "call-answered-1", "--json"))
    stored = await db_pool.fetch(
        "SELECT seq, speaker, node, intent FROM turns WHERE call_id = 'call-answered-1' "
        "ORDER BY seq"
    )
    assert [(t["seq"], t["speaker"], t["node"], t["intent"]) for t in document["turns"]] == [
        tuple(r) for r in stored
    ]
    said = document["turns"][1]
    assert "[PHONE]" in said["text"] and "[CARD]" in said["text"] and "4111" not in said["text"]
    assert (said["offset_s"], said["end_offset_s"], said["barge_in"]) == (2.1, 5.0, True)
    reply = document["turns"][2]
    assert (reply["offset_s"], reply["reply_ms"], reply["processing_ms"]) == (5.9, 900.0, 420.0)
    assert document["transfer_target"] == "billing_queue"
    assert document["amd_cause"] == "HUMAN-500-500"
    assert document["agitation_peak"] == pytest.approx(0.74)
    [event] = document["compliance_events"]
    assert (event["category"], event["term"], event["offset_s"]) == ("abuse", "damn", 9.8)

    text = await _run(tmp_path, pg_url, "show", "call-ans")  # a prefix names it too
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    for wanted in (
        "call call-answered-1",
        "collections v3, variant b",
        "HUMAN (HUMAN-500-500)",
        "transferred, outcome dispute",
        "billing_queue: customer disputes the amount",
        "greeting after 412 ms",
        "not recorded",
        "▃▆ peak 0.74",
        "intent dispute 0.87",
        "barge-in",
        "reply 900 ms (processing 420 ms)",
        "! abuse (customer): escalate 'damn' [handoff]",
    ):
        assert wanted in text, wanted
    # The conversation in time order, the compliance hit after the words that caused it.
    order = [text.index(s) for s in ("Hello, this is", "[PHONE]", "put you through", "scam")]
    assert order == sorted(order) and text.index("! abuse") > order[-1]
    assert "496 0000" not in text


async def test_show_reads_are_audited(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> None:
    await _seed(db_pool)
    await _run(tmp_path, pg_url, "show", "call-answered-1", "--json")
    audit = await db_pool.fetchrow("SELECT action, target, subject FROM api_audit")
    assert (audit["action"], audit["target"]) == ("call.read", "call/call-answered-1")
    assert audit["subject"] is not None and b"4960009" not in audit["subject"]


async def test_list_filters(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> None:
    await _seed(db_pool)

    async def ids(*args: str) -> list[str]:
        listed = json.loads(await _run(tmp_path, pg_url, "list", "--json", *args))
        return [c["call_id"] for c in listed]

    assert await ids() == ["call-busy-2", "call-answered-1"]
    assert await ids("--since", "7d") == ["call-busy-2", "call-answered-1", "call-old-3"]
    assert await ids("--since", "7d", "--campaign", "autumn") == ["call-old-3"]
    assert await ids("--disposition", "busy") == ["call-busy-2"]
    assert await ids("--outcome", "dispute") == ["call-answered-1"]
    assert await ids("--transferred", "yes") == ["call-answered-1"]
    assert await ids("--transferred", "no") == ["call-busy-2"]
    until = (T0 + timedelta(seconds=30)).isoformat()
    assert await ids("--since", "7d", "--until", until) == ["call-answered-1", "call-old-3"]
    assert await ids("--limit", "1") == ["call-busy-2"]
    [answered] = json.loads(await _run(tmp_path, pg_url, "list", "--json", "--outcome", "dispute"))
    assert (answered["turns"], answered["duration_s"], answered["transfer_target"]) == (
        4,
        36.0,
        "billing_queue",
    )
    table = await _run(tmp_path, pg_url, "list", "--since", "7d")
    assert all(len(line) <= 80 for line in table.splitlines())
    assert "call-answe" in table and "transferred" in table and "autumn" in table
    header = table.splitlines()[0].split()
    assert header[:3] == ["call", "dialled", "UTC"] and header[-2:] == ["secs", "rec"]
    assert f"{T0:%m-%d %H:%M:%S}" in table  # times whole


async def test_plot_draws_the_timeline(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> None:
    await _seed(db_pool)
    picture = tmp_path / "call.png"
    await _run(tmp_path, pg_url, "show", "call-answered-1", "--plot", str(picture))
    from PIL import Image  # matplotlib's own dependency

    with Image.open(picture) as image:
        assert image.format == "PNG" and image.size == (1000, 400)
        # Something was drawn: more than the white page and the axes' black.
        assert len(image.convert("RGB").getcolors(1 << 16) or []) > 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nope-nope"), "no call with id 'nope-nope'"),
        (("show", "call-"), "is the start of several call ids"),
        (("show", "x/../y"), "is not a call id"),
        (("show", "cal"), "no call with id 'cal' (a prefix needs 4 characters)"),
        (("list", "--since", "yesterday"), "neither a span"),
        (("list", "--grade", "Z"), "is not one of"),
        (("show", "call-busy-2", "--plot", "x.png"), "has no turns placed in time"),
        (("show", "call-answered-1", "--plot", "/nonexistent/dir/x.png"), "--plot"),
    ],
)
async def test_bad_input_is_one_clear_line(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    await _seed(db_pool)
    result = await invoke("calls", *args, pg_url=pg_url, tmp_path=tmp_path)
    # UserError is the one-line exit 1 of `outdial`; usage errors exit 2 with the option named.
    said = str(result.exception) if isinstance(result.exception, UserError) else result.output
    assert result.exit_code in (1, 2)
    assert message in said
