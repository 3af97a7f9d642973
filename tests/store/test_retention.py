"""Retention: rows past their time go (or lose what is personal), the others stay."""

from __future__ import annotations

import asyncpg
import pytest
from prometheus_client import REGISTRY

from outdial.config import ConfigError, parse_config
from outdial.retention import purge
from store.settings import PrivacySettings, RetentionSettings

OLD, NEW = "400 days", "1 day"


async def _seed(conn: asyncpg.Connection) -> None:
    """Two of everything: one older than every default age (except 2 years), one recent."""
    campaign = await conn.fetchval(
        "INSERT INTO campaigns (name, script_name) VALUES ('c', 's') RETURNING id"
    )
    for n, (age, status) in enumerate([("800 days", "done"), (NEW, "done"), (OLD, "pending")]):
        lead = await conn.fetchval(
            """INSERT INTO leads (campaign_id, phone_e164, timezone, fields, status, updated_at)
               VALUES ($1, $2, 'UTC', '{"customer_name": "Ann"}', $3, now() - $4::text::interval)
               RETURNING id""",
            campaign,
            f"+1202555010{n}",
            status,
            age,
        )
        call = f"call-{n}"
        await conn.execute(
            """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner, started_at)
               VALUES ($1, $2, $3, 't', 'o', now() - $4::text::interval)""",
            call,
            lead,
            campaign,
            age,
        )
        await conn.execute(
            """INSERT INTO calls (call_id, campaign_id, lead_id, started_at)
               VALUES ($1, $2, $3, now() - $4::text::interval)""",
            call,
            campaign,
            lead,
            age,
        )
        for seq in (1, 2, 3):
            await conn.execute(
                """INSERT INTO turns (call_id, seq, speaker, text, dtmf, emotion, agitation,
                                      intent, created_at)
                   VALUES ($1, $2, 'customer', 'my name is Ann', '4', '{"pitch": 1.5}', 0.4,
                           'affirm', now() - $3::text::interval)""",
                call,
                seq,
                age,
            )
        await conn.execute(
            """INSERT INTO compliance_events (call_id, direction, category, action, created_at)
               VALUES ($1, 'customer', 'opt_out', 'dnc', now() - $2::text::interval)""",
            call,
            age,
        )
    for age in (OLD, NEW):
        await conn.execute(
            "INSERT INTO api_audit (token_name, action, target, at) "
            "VALUES ('cli', 'x', 'y', now() - $1::text::interval)",
            age,
        )
        for delivered in (True, False):
            await conn.execute(
                """INSERT INTO outbox (idempotency_key, event_type, payload, created_at,
                                       delivered_at)
                   VALUES ($1, 'call.outcome', '{}', now() - $2::text::interval,
                           CASE WHEN $3 THEN now() - $2::text::interval END)""",
                f"{age}-{delivered}",
                age,
                delivered,
            )
    await conn.execute("INSERT INTO dnc (phone_e164, created_at) VALUES ('+12025550199', now())")


def _purged(rule: str, table: str) -> float:
    labels = {"rule": rule, "table": table}
    return REGISTRY.get_sample_value("outdial_privacy_rows_purged_total", labels) or 0.0


async def test_rows_past_their_time_go_and_the_others_stay(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await _seed(conn)
    # Two-row batches: a rule with more rows than a batch runs until nothing is left.
    settings = PrivacySettings(purge_batch_rows=2, purge_pause_s=0)
    before = _purged("turn_text_days", "turns")

    dry = {(r.kind, r.table): r.rows for r in await purge(db_pool, settings, webhooks=False,
                                                          dry_run=True)}  # fmt: skip
    assert dry[("turn_text_days", "turns")] == 6  # the 400- and 800-day-old calls' turns
    assert dry[("calls_days", "calls")] == 1 and dry[("calls_days", "call_attempts")] == 1
    assert dry[("audit_days", "api_audit")] == 1
    assert dry[("outbox_delivered_days", "outbox")] == 1
    assert dry[("outbox_unsent_days", "outbox")] == 1
    assert dry[("finished_leads_days", "leads")] == 1
    assert ("dnc_days", "dnc") not in dry  # kept until deleted by hand, by default
    assert await db_pool.fetchval("SELECT count(*) FROM turns WHERE text <> ''") == 9

    done = {(r.kind, r.table): r.rows for r in await purge(db_pool, settings, webhooks=False)}
    assert done == dry
    assert _purged("turn_text_days", "turns") - before == 6

    turns = await db_pool.fetch("SELECT call_id, text, dtmf, emotion, intent FROM turns")
    # The 800-day-old call went with its turns; the 400-day-old one lost what was said.
    assert sorted({t["call_id"] for t in turns}) == ["call-1", "call-2"]
    for t in turns:
        kept = t["call_id"] == "call-1"
        assert (t["text"] == "my name is Ann") is kept and (t["dtmf"] == "4") is kept
        assert (t["emotion"] == {}) is not kept and t["intent"] == "affirm"
    attempts = await db_pool.fetch("SELECT call_id FROM call_attempts ORDER BY 1")
    assert [r["call_id"] for r in attempts] == ["call-1", "call-2"]
    assert await db_pool.fetchval("SELECT count(*) FROM compliance_events") == 2
    assert await db_pool.fetchval("SELECT count(*) FROM api_audit") == 1
    outbox = await db_pool.fetch("SELECT idempotency_key FROM outbox ORDER BY 1")
    assert [r["idempotency_key"] for r in outbox] == ["1 day-False", "1 day-True"]
    leads = await db_pool.fetch("SELECT phone_e164, fields, erased_at FROM leads ORDER BY id")
    assert leads[0]["phone_e164"] is None and leads[0]["fields"] == {}
    assert leads[0]["erased_at"] is not None
    assert all(r["phone_e164"] and r["erased_at"] is None for r in leads[1:])
    assert await db_pool.fetchval("SELECT count(*) FROM dnc") == 1

    again = await purge(db_pool, settings, webhooks=False)
    assert sum(r.rows for r in again) == 0


async def test_unsent_events_wait_for_a_configured_webhook(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await _seed(conn)
    off = RetentionSettings(**dict.fromkeys(RetentionSettings.model_fields))
    settings = PrivacySettings(retention=off.model_copy(update={"outbox_unsent_days": 7}))
    assert sum(r.rows for r in await purge(db_pool, settings, webhooks=True)) == 0
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 4
    assert sum(r.rows for r in await purge(db_pool, settings, webhooks=False)) == 1
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == 1


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "privacy:\n  retention:\n    calls_days: 7\n",
            "x.yaml:3:5: privacy.retention.calls_days: Input should be greater than or equal to 30",
        ),
        (
            "privacy:\n  retention:\n    turns_days: 7\n",
            "x.yaml:3:5: privacy.retention.turns_days: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_retention_settings_are_refused_with_their_place(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(yaml, "x.yaml")
    assert str(error.value) == message
