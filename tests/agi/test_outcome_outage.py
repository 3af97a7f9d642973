"""A call's outcome, opt-out, compliance events and paused lead when the database goes away
under the call (issue 17, chaos finding 1).

bench/chaos.py logged 24 ERROR tracebacks "call ...: could not record its outcome" during the
database faults, and those outcomes were lost: the `calls` rows stayed open, without
disposition, outcome, grade or summary. Here a real PostgreSQL stops while two calls are
live; both outcomes, and one customer's "stop calling me", must reach their tables once it
is back, with one WARNING for the outage and no traceback. So must a call's compliance events
and a lead the call paused (a dispute), which were lost with a traceback each
("call-side database write failed"); each of them is stored once however often it is
replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from agi.call.outcome import CallContext, CallOutcome, Transfer
from agi.callstore import CallStore
from agi.handover import Declined
from agi.runtime import CallServices, CallSettings
from agi.service import CallService, ScriptSource
from agi.settings import AgiSettings, AudioSocketSettings, SessionSettings
from compliance.settings import ComplianceSettings
from compliance.words import default_word_filter
from dialog import ComplianceHit
from emotion.settings import EmotionSettings
from nlu.settings import NluSettings
from store.calls import CallEnd, CallEndRecord, CallStart
from store.compliance_events import CallComplianceEvent, DialerBlock, record_dialer_blocks
from store.db import create_pool
from store.embedded import EmbeddedPostgres
from store.kept import KeptWrites
from store.pauses import LeadPause
from store.settings import DatabaseSettings
from store.turns import TurnWriter
from tests.dialer.helpers import add_leads, make_campaign, until
from voice.packs import PackLoader
from voice.settings import AsrSettings, TtsSettings


def _no_packs() -> CallServices:
    """Call services holding no voice pack: these calls are settled, never talked to."""

    def no_pack(request: object) -> None:
        raise AssertionError("no call here needs a voice pack")

    packs = PackLoader(no_pack, AsrSettings(), TtsSettings(), lambda _: 1)  # type: ignore[arg-type]
    settings = CallSettings(
        session=SessionSettings(),
        emotion=EmotionSettings(),
        compliance=ComplianceSettings(),
        nlu=NluSettings(),
    )
    return CallServices(packs=packs, word_filter=default_word_filter(), settings=settings)


async def _base_variant(runtime: object) -> None:
    return None


def _service(store: CallStore, spool: Path) -> CallService:
    """The call service as the daemon builds it, without its listeners."""
    return CallService(
        AgiSettings(port=0),
        AudioSocketSettings(port=0),
        _no_packs(),
        ScriptSource(lambda name: None),
        store,
        TurnWriter(store.pool, spool),
        _base_variant,
    )


def _our_problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The daemon's own ERRORs and tracebacks (asyncpg's pool retries go to DEBUG in the
    daemon: outdial.logging.PoolRetryFilter; the test server's stop and start are ours)."""
    ours = [r for r in caplog.records if r.name.split(".")[0] in {"agi", "store"}]
    return [r for r in ours if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture
async def pool(own_server: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(own_server.url, DatabaseSettings(pool_min=1, pool_max=2))
    yield pool
    await pool.close()


async def _calls(pool: asyncpg.Pool, count: int) -> list[CallContext]:
    """Leads of one campaign, each with the attempt the dialer writes before Originate."""
    campaign = await make_campaign(pool, "outage")
    await add_leads(pool, campaign.id, [f"+1555000{n:04d}" for n in range(count)])
    # Leads come back in insertion order: the n-th has the n-th number.
    contexts = []
    for n, lead_id in enumerate(await pool.fetchval("SELECT array_agg(id ORDER BY id) FROM leads")):
        call_id = f"outage-call-{n}"
        await pool.execute(
            """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
               VALUES ($1, $2, $3, 'sim', 'test')""",
            call_id,
            lead_id,
            campaign.id,
        )
        phone = f"+1555000{n:04d}"
        contexts.append(
            CallContext(call_id, "outage", campaign.id, "s", lead_id, phone, "UTC", {}, "HUMAN")
        )
    return contexts


async def _ended(pool: asyncpg.Pool) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch(
        """SELECT call_id, disposition, outcome, success, summary, grade, captured, amd_status,
                  transfer_target, script_name
           FROM calls WHERE ended_at IS NOT NULL"""
    )
    return {r["call_id"]: r for r in rows}


async def test_outcomes_of_calls_ending_while_the_database_is_down_arrive_when_it_is_back(
    own_server: EmbeddedPostgres,
    pool: asyncpg.Pool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    talked, declined = await _calls(pool, 2)
    kept = KeptWrites.create(pool, tmp_path / "spool", flush_interval=0.02)
    await kept.start()
    store = CallStore(pool, kept)
    service = _service(store, tmp_path)
    try:
        # One call is talked to (its session opened the row); the other never got that far.
        await store.start(talked, "order_confirmation_en", 3, None, "en")
        await asyncio.to_thread(own_server.stop)  # a fast shutdown: the sessions are cut
        caplog.set_level(logging.INFO)
        await store.add_dnc(talked)  # the customer asked not to be called again
        transfer = Transfer(target="queue:sales", reason="asked", summary="wants a blue kettle")
        await service.conclude(
            talked,
            CallOutcome(
                disposition="transferred",
                outcome="interested",
                success=True,
                transfer=transfer,
                grade="A",
                captured={"date": "Friday"},
            ),
        )
        await service.admit(declined, "HANGUP")  # AMD saw the customer go: settled at once
        waiting = [w.stats().queued + w.spool_depth for w in (kept.ends, kept.opt_outs)]
        assert waiting == [2, 1]
        await asyncio.to_thread(own_server.start_again)

        async def stored() -> bool:
            opt_outs = await pool.fetchval("SELECT count(*) FROM dnc")
            return len(await _ended(pool)) == 2 and opt_outs == 1

        async with asyncio.timeout(60):
            await until(stored)
    finally:
        await kept.close()
    dnc = await pool.fetch("SELECT phone_e164, campaign_id, source FROM dnc")
    assert [tuple(r) for r in dnc] == [(talked.phone_e164, None, "opt_out")]
    rows = await _ended(pool)
    assert set(rows) == {talked.call_id, declined.call_id}
    row = rows[talked.call_id]
    assert (row["disposition"], row["outcome"], row["success"], row["grade"]) == (
        "transferred",
        "interested",
        True,
        "A",
    )
    assert (row["summary"], row["transfer_target"], row["captured"]) == (
        "wants a blue kettle",
        "queue:sales",
        {"date": "Friday"},
    )
    assert row["script_name"] == "order_confirmation_en"  # the session's row, ended
    assert rows[declined.call_id]["disposition"] == "early-hangup"
    assert rows[declined.call_id]["amd_status"] == "HANGUP"
    assert not _our_problems(caplog)
    warned = [
        r for r in caplog.records if r.name == "agi.callstore" and r.levelno == logging.WARNING
    ]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert talked.phone_e164 not in caplog.text


def _end(context: CallContext, disposition: str) -> CallEndRecord:
    call = CallStart(context.call_id, context.campaign_id, context.lead_id)
    end = CallEnd(disposition, None, False, None, None, "bot", None, None, None, None, {})
    return CallEndRecord(call, end, datetime.now(UTC))


async def test_a_replayed_end_is_stored_once_and_leaves_an_ended_call_alone(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    [context] = await _calls(pool, 1)
    async with KeptWrites.create(pool, tmp_path / "spool", flush_interval=0.02) as kept:
        ends = kept.ends
        first = _end(context, "completed")
        # One batch holding the row twice: a spooled segment and the journal a kill left.
        ends.put(first.to_row())
        ends.put(first.to_row())
        async with asyncio.timeout(60):
            await until(lambda: ends.stats().rows_written + ends.stats().rows_duplicate > 0)
        assert ends.stats().db_errors == 0
        ends.put(_end(context, "error").to_row())
    rows = await _ended(pool)
    assert rows[context.call_id]["disposition"] == "completed"


async def test_a_call_answered_while_the_database_is_down_is_refused_without_a_traceback(
    own_server: EmbeddedPostgres,
    pool: asyncpg.Pool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its FastAGI handler raised out of the server (asyncio's "Unhandled exception in
    client_connected_cb" with a traceback, 16 in the 20-call chaos run); now the call is
    refused, so the dialplan hangs up."""
    [context] = await _calls(pool, 1)
    service = _service(CallStore(pool, KeptWrites.create(pool, tmp_path / "spool")), tmp_path)
    await asyncio.to_thread(own_server.stop)
    caplog.set_level(logging.INFO)
    declined = await service.identify(context.call_id)
    assert isinstance(declined, Declined)
    assert declined.refusal is not None and declined.refusal.startswith("database unreachable")
    assert not _our_problems(caplog)
    await asyncio.to_thread(own_server.start_again)
    back = await service.identify(context.call_id)  # and once it is back, the call is known
    assert isinstance(back, CallContext)
    assert (back.call_id, back.lead_id) == (context.call_id, context.lead_id)


# A dispute in a collections script: the bot's own words, and what the customer said.
DISPUTE = ComplianceHit("customer", "confirm_debt", "dispute", "not my debt", "pause")
INSULT = {"direction": "customer", "category": "insults", "action": "flag"}


async def _events(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT event_key, call_id, lead_id, direction, category, action, detail, created_at
           FROM compliance_events ORDER BY event_key"""
    )


async def _paused(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT o.call_id, o.payload, l.status, l.block_reason
           FROM outbox o JOIN leads l ON l.id = o.lead_id
           WHERE o.event_type = 'lead.paused'"""
    )


async def test_compliance_events_and_a_paused_lead_while_the_database_is_down_arrive_later(
    own_server: EmbeddedPostgres,
    pool: asyncpg.Pool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    disputed, _ = await _calls(pool, 2)
    kept = KeptWrites.create(pool, tmp_path / "spool", flush_interval=0.02)
    await kept.start()
    store = CallStore(pool, kept)
    try:
        await asyncio.to_thread(own_server.stop)
        caplog.set_level(logging.INFO)
        await store.compliance_event(disputed, 1, INSULT)
        await store.compliance_event(disputed, 2, DISPUTE)
        await store.pause_lead(disputed, "dispute")
        waiting = [w.stats().queued + w.spool_depth for w in (kept.compliance, kept.pauses)]
        assert waiting == [2, 1]
        down_until = datetime.now(UTC)
        await asyncio.to_thread(own_server.start_again)

        async def stored() -> bool:
            return len(await _events(pool)) == 2 and len(await _paused(pool)) == 1

        async with asyncio.timeout(60):
            await until(stored)
    finally:
        await kept.close()
    insult, dispute = await _events(pool)
    assert (insult["event_key"], insult["category"], insult["detail"]) == (
        f"{disputed.call_id}:1",
        "insults",
        {},
    )
    assert (dispute["event_key"], dispute["call_id"], dispute["lead_id"]) == (
        f"{disputed.call_id}:2",
        disputed.call_id,
        disputed.lead_id,
    )
    assert dispute["detail"] == {"node": "confirm_debt", "term": "not my debt", "blocked": False}
    # When the call found them, not when the database took them.
    assert insult["created_at"] <= dispute["created_at"] < down_until
    [paused] = await _paused(pool)
    assert (paused["status"], paused["block_reason"]) == ("blocked", "dispute")
    assert paused["call_id"] == disputed.call_id
    assert paused["payload"]["campaign"] == "outage"
    assert datetime.fromisoformat(paused["payload"]["occurred_at"]) < down_until
    others = await pool.fetchval("SELECT count(*) FROM leads WHERE status = 'blocked'")
    assert others == 1  # the other lead of the campaign is untouched
    assert not _our_problems(caplog)
    warned = [
        r for r in caplog.records if r.name == "agi.callstore" and r.levelno == logging.WARNING
    ]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert disputed.phone_e164 not in caplog.text


async def test_replayed_compliance_events_and_pauses_are_stored_once(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Written at once, then replayed (a spooled segment and the journal a kill left): one row
    each; a pause replayed after people unblocked the lead leaves it unblocked."""
    [context] = await _calls(pool, 1)
    now = datetime.now(UTC)
    event = CallComplianceEvent(
        context.call_id, 1, context.lead_id, context.campaign_id, "customer", "insults", "flag", now
    )
    pause = LeadPause(context.call_id, context.lead_id, "dispute", now)
    async with KeptWrites.create(pool, tmp_path / "spool", flush_interval=0.02) as kept:
        store = CallStore(pool, kept)
        await store.compliance_event(context, 1, INSULT)
        await store.pause_lead(context, "dispute")
        await pool.execute("UPDATE leads SET status = 'pending', block_reason = NULL")
        for writer, row in ((kept.compliance, event.to_row()), (kept.pauses, pause.to_row())):
            writer.put(row)
            writer.put(row)
        async with asyncio.timeout(60):
            await until(
                lambda: all(
                    w.stats().rows_duplicate == 2 and w.stats().queued == 0
                    for w in (kept.compliance, kept.pauses)
                )
            )
        assert [w.stats().rows_written for w in (kept.compliance, kept.pauses)] == [0, 0]
    assert [r["event_key"] for r in await _events(pool)] == [f"{context.call_id}:1"]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
    lead = await pool.fetchrow("SELECT status, block_reason FROM leads")
    assert (lead["status"], lead["block_reason"]) == ("pending", None)


async def test_the_dialers_own_compliance_events_need_no_key(pool: asyncpg.Pool) -> None:
    """Two alike blocks of one lead at one time are two rows: NULL keys never conflict."""
    [context] = await _calls(pool, 1)
    assert context.lead_id is not None and context.campaign_id is not None
    block = DialerBlock(context.lead_id, context.campaign_id, "dnc", "blocked", {})
    async with pool.acquire() as conn:
        await record_dialer_blocks(conn, [block, block], datetime.now(UTC))
    keys = await pool.fetch("SELECT event_key FROM compliance_events")
    assert [r["event_key"] for r in keys] == [None, None]
