"""Erasure on request: after `outdial leads forget`, nothing of the person is left anywhere in
the database (every column of every table is searched), their opt-out is still honoured, and
everyone else's data is untouched."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from outdial.cli import app
from outdial.errors import UserError
from outdial.retention import purge
from store.db import create_pool
from store.leads import _DNC_FLAGS
from store.outbox import enqueue_outcome
from store.settings import DatabaseSettings, PrivacySettings
from store.tokens import record_access

NUMBER, NATIONAL = "+12025550123", "2025550123"
NAME, AMOUNT, SAID = "Ingrid Vasquez-Thorne", "4,321.09", "I moved to Lisbon"
OTHER = "+12025550188"
# Everything that would tell who the person is, as it could be written anywhere.
TRACES = [NUMBER, NATIONAL, "555-0123", "Vasquez", "Ingrid", AMOUNT, "Lisbon", "crm-777",
          "crm-778", "***0123"]  # fmt: skip


async def _seed(conn: asyncpg.Connection) -> dict[str, int]:
    ids = {}
    for campaign in ("spring", "autumn"):
        ids[campaign] = await conn.fetchval(
            "INSERT INTO campaigns (name, script_name) VALUES ($1, 's') RETURNING id", campaign
        )
    people = {NUMBER: (NAME, AMOUNT, SAID, "Lisbon"), OTHER: ("Bob Quill", "10.00", "hi", "Oslo")}
    for n, (campaign, ext, phone) in enumerate(
        [("spring", "crm-777", NUMBER), ("autumn", "crm-778", NUMBER), ("spring", "crm-9", OTHER)]
    ):
        name, amount, said, city = people[phone]
        fields = {"customer_name": name, "amount": amount}
        lead = await conn.fetchval(
            """INSERT INTO leads (campaign_id, external_id, phone_e164, timezone, fields, status)
               VALUES ($1, $2, $3, 'Europe/Paris', $4::jsonb, 'done') RETURNING id""",
            ids[campaign],
            ext,
            phone,
            fields,
        )
        ids[ext] = lead
        call = f"call-{n}"
        await conn.execute(
            """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner, channel)
               VALUES ($1, $2, $3, 'pbx', 'd1', $4)""",
            call,
            lead,
            ids[campaign],
            f"Local/{phone.lstrip('+')}@customers-0001;1",
        )
        await conn.execute(
            """INSERT INTO calls (call_id, campaign_id, lead_id, summary, disposition)
               VALUES ($1, $2, $3, $4, 'completed')""",
            call,
            ids[campaign],
            lead,
            f"{name} owes {amount}; said: {said}",
        )
        await conn.execute(
            """INSERT INTO turns (call_id, seq, speaker, text) VALUES
               ($1, 1, 'bot', $2), ($1, 2, 'customer', $3)""",
            call,
            f"Hi {name}, about {amount}.",
            said,
        )
        await conn.execute(
            """INSERT INTO turns (call_id, seq, speaker, dtmf, entities, emotion, agitation)
               VALUES ($1, 3, 'customer', '0123', $2::jsonb, '{"pitch": 2.1}', 0.7)""",
            call,
            {"items": [{"label": "city", "text": city}]},
        )
        await conn.execute(
            """INSERT INTO compliance_events (call_id, lead_id, campaign_id, direction,
                                              category, action, detail)
               VALUES ($1, $2, $3, 'customer', 'opt_out', 'dnc', $4::jsonb)""",
            call,
            lead,
            ids[campaign],
            {"term": city},
        )
        event = await enqueue_outcome(conn, call_id=call, lead_id=lead, disposition="completed")
        await conn.execute(
            "INSERT INTO outbox_deliveries (outbox_id, target) VALUES ($1, 'https://crm')", event
        )
        target = f"campaign/{campaign}/lead/{ext}"
        await record_access(conn, "crm", "lead.read", target, phone)
    await conn.execute(
        "INSERT INTO dnc (phone_e164, source, reason) VALUES ($1, 'api', $2)",
        NUMBER,
        f"{NAME} asked on the phone",
    )
    # An audit row from before migration 090: the masked number in its target, no subject.
    await conn.execute(
        "INSERT INTO api_audit (token_name, action, target) VALUES ('crm', 'lead.update', $1)",
        "campaign/spring/lead/crm-777",
    )
    return ids


async def _everything(conn: asyncpg.Connection) -> dict[str, str]:
    """Every row of every table of the schema, as text, by table (the walk finds new tables)."""
    tables = await conn.fetch(
        """SELECT table_name FROM information_schema.tables
           WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"""
    )
    dump = {}
    for t in tables:
        rows = await conn.fetch(f'SELECT t::text AS row FROM "{t["table_name"]}" t')
        dump[t["table_name"]] = "\n".join(r["row"] for r in rows)
    return dump


def _traces(dump: dict[str, str]) -> list[str]:
    return [f"{trace!r} in {table}" for table, text in dump.items() for trace in TRACES
            if trace in text]  # fmt: skip


def _forget(url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\ndefault_region: US\n")
    result = CliRunner().invoke(
        app, ["--config", str(config), "leads", *args], env={"OUTDIAL_DATABASE_URL": url}
    )
    # The CLI's main() prints a UserError as one line and exits 1; the runner keeps it raised.
    if isinstance(result.exception, UserError):
        return 1, str(result.exception)
    return result.exit_code, result.stdout + (result.stderr or "")


def test_forget_leaves_nothing_of_the_person_but_honours_the_opt_out(
    pg_url: str, tmp_path: Path
) -> None:
    async def seed() -> tuple[dict[str, int], dict[str, str]]:
        pool = await create_pool(pg_url, DatabaseSettings())
        try:
            async with pool.acquire() as conn:
                return await _seed(conn), await _everything(conn)
        finally:
            await pool.close()

    ids, before = asyncio.run(seed())
    assert len(_traces(before)) > 20  # the search finds the person where they are

    code, out = _forget(pg_url, tmp_path, "forget", "(202) 555-0123", "--yes")
    assert code == 0, out
    assert "leads" in out and "turns" in out

    async def check() -> None:
        pool = await create_pool(pg_url, DatabaseSettings())
        try:
            # A turn of the person's call replayed from a spool after the erasure is scrubbed
            # by the next purge pass.
            await pool.execute(
                """INSERT INTO turns (call_id, seq, speaker, text)
                   VALUES ('call-0', 9, 'customer', $1)""",
                SAID,
            )
            await purge(pool, PrivacySettings(), webhooks=False)
            async with pool.acquire() as conn:
                dump = await _everything(conn)
                assert _traces(dump) == [], _traces(dump)
                # The other person is untouched.
                other = await conn.fetchrow("SELECT * FROM leads WHERE id = $1", ids["crm-9"])
                assert (
                    other["phone_e164"] == OTHER and other["fields"]["customer_name"] == "Bob Quill"
                )
                assert (
                    await conn.fetchval(
                        "SELECT count(*) FROM turns WHERE call_id = 'call-2' AND text <> ''"
                    )
                    == 2
                )
                # Statistics keep counting the calls; the leads remain as erased rows.
                assert await conn.fetchval("SELECT count(*) FROM calls") == 3
                erased = await conn.fetch(
                    "SELECT block_reason, erased_at FROM leads WHERE id = ANY($1::bigint[])",
                    [ids["crm-777"], ids["crm-778"]],
                )
                assert all(r["erased_at"] and r["block_reason"] == "erased" for r in erased)
                # The opt-out holds: the CRM adds the person again, the dialer still blocks them.
                again = await conn.fetchval(
                    """INSERT INTO leads (campaign_id, phone_e164, timezone)
                       VALUES ($1, $2, 'UTC') RETURNING id""",
                    ids["spring"],
                    NUMBER,
                )
                flags = await conn.fetchrow(
                    f"SELECT {_DNC_FLAGS} FROM leads l WHERE l.id = $1", again
                )
                assert flags["dnc_global"] is True
                dnc = await conn.fetchrow("SELECT phone_e164, reason, source FROM dnc")
                assert tuple(dnc) == (None, None, "api")
                # The erasure is audited: who, what, when, and the person only as a hash.
                audit = await conn.fetchrow(
                    """SELECT token_name, detail, subject = subject_hash($1) AS about
                       FROM api_audit WHERE action = 'personal_data.erase'""",
                    NUMBER,
                )
                assert audit["token_name"] == f"cli:{getpass.getuser()}" and audit["about"]
                assert audit["detail"]["leads"] == 2 and audit["detail"]["turns"] == 6
                # The CRM hears of it, by outdial's lead id alone.
                told = await conn.fetch(
                    "SELECT payload FROM outbox WHERE event_type = 'lead.erased' ORDER BY lead_id"
                )
                assert [r["payload"]["lead_id"] for r in told] == [
                    ids["crm-777"],
                    ids["crm-778"],
                ]
        finally:
            await pool.close()

    asyncio.run(check())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forget", "+12025550199", "--yes"], "nothing is held about this number"),
        (["forget", "not a number", "--yes"], "PHONE: not a phone number"),
        (["forget", "--lead", "999999", "--yes"], "no lead with id 999999"),
        (["export", "--lead", "999999"], "no lead with id 999999"),
    ],
)
def test_forget_refuses_what_it_cannot_find(
    pg_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    code, out = _forget(pg_url, tmp_path, *args)
    assert code == 1 and message in out


def test_forget_needs_exactly_one_way_to_name_the_person(pg_url: str, tmp_path: Path) -> None:
    code, out = _forget(pg_url, tmp_path, "forget", "--yes")
    assert code == 2 and "PHONE or --lead" in out
    code, out = _forget(pg_url, tmp_path, "forget", NUMBER, "--lead", "1", "--yes")
    assert code == 2


def test_export_shows_everything_held_and_is_audited(pg_url: str, tmp_path: Path) -> None:
    async def seed() -> dict[str, int]:
        pool = await create_pool(pg_url, DatabaseSettings())
        try:
            async with pool.acquire() as conn:
                return await _seed(conn)
        finally:
            await pool.close()

    ids = asyncio.run(seed())
    code, out = _forget(pg_url, tmp_path, "export", "--lead", str(ids["crm-778"]))
    assert code == 0, out
    data = json.loads(out)
    assert data["phone"] == NUMBER
    assert {lead["external_id"] for lead in data["leads"]} == {"crm-777", "crm-778"}
    assert len(data["turns"]) == 6 and data["dnc"][0]["source"] == "api"

    async def audited() -> asyncpg.Record:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetchrow(
                """SELECT token_name, target, detail::text, subject = subject_hash($1) AS about
                   FROM api_audit WHERE action = 'personal_data.export'""",
                NUMBER,
            )
        finally:
            await conn.close()

    row = asyncio.run(audited())
    assert row["about"] and json.loads(row["detail"])["turns"] == 6
    assert NUMBER not in str(dict(row))
