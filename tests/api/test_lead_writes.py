"""Group commit of single-lead PUTs: concurrent leads share one statement, and each request
still gets the answer it would have had alone."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from api.audit import lead_target
from api.leadwrites import MAX_BATCH, LeadWrite, LeadWrites
from api.tokens import Token
from store.db import create_pool
from store.settings import DatabaseSettings
from tests.api.conftest import Api, problem_pointers

ZONE = "America/New_York"


def _phone(i: int) -> str:
    return f"+1212201{i:04d}"


def _write(
    ext: str, phone: str, token: Token, *, campaign: str = "spring", name: str = ""
) -> LeadWrite:
    fields = json.dumps({"name": name or ext})
    return LeadWrite(
        campaign, (phone, ext, ZONE, fields, 0, True), token, lead_target(campaign, ext)
    )


@pytest.fixture
async def writes(db_pool: asyncpg.Pool) -> tuple[LeadWrites, Token]:
    async with db_pool.acquire() as conn:
        await conn.execute("INSERT INTO scripts (name) VALUES ('s')")
        await conn.execute("INSERT INTO campaigns (name, script_name) VALUES ('spring', 's')")
        token_id = await conn.fetchval(
            """INSERT INTO api_tokens (name, token_hash, scopes)
               VALUES ('crm', 'x', '{leads:write}') RETURNING id"""
        )
    return LeadWrites(db_pool), Token(token_id, "crm", frozenset({"leads:write"}))


async def _audit(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    rows = await pool.fetch("SELECT token_name, action, target FROM api_audit ORDER BY id")
    return [(r["token_name"], r["action"], r["target"]) for r in rows]


async def _outcomes(lead_writes: LeadWrites, batch: list[LeadWrite]) -> list[object]:
    # Gathered: every lead is queued before the writer first runs, so they form one batch.
    return await asyncio.gather(*(lead_writes.upsert(w) for w in batch), return_exceptions=True)


async def test_concurrent_leads_are_written_by_one_statement(
    db_pool: asyncpg.Pool, writes: tuple[LeadWrites, Token]
) -> None:
    lead_writes, token = writes
    batch = [_write(f"crm-{i}", _phone(i), token) for i in range(20)]
    rows = await _outcomes(lead_writes, batch)
    for i, row in enumerate(rows):
        assert isinstance(row, asyncpg.Record)
        assert (row["external_id"], row["phone_e164"], row["fields"]) == (
            f"crm-{i}",
            _phone(i),
            {"name": f"crm-{i}"},
        )
        assert row["inserted"] is True
    transactions = await db_pool.fetchval("SELECT count(DISTINCT xmin::text) FROM leads")
    assert transactions == 1
    assert sorted(await _audit(db_pool)) == sorted(
        ("crm", "lead.create", f"campaign/spring/lead/crm-{i}") for i in range(20)
    )


async def test_more_leads_than_a_batch_holds_are_all_written(
    db_pool: asyncpg.Pool, writes: tuple[LeadWrites, Token]
) -> None:
    lead_writes, token = writes
    count = MAX_BATCH + 5
    batch = [_write(f"crm-{i}", _phone(i), token) for i in range(count)]
    rows = await _outcomes(lead_writes, batch)
    assert all(isinstance(r, asyncpg.Record) for r in rows)
    assert [r["external_id"] for r in rows] == [w.values[1] for w in batch]
    assert await db_pool.fetchval("SELECT count(DISTINCT xmin::text) FROM leads") == 2
    assert await db_pool.fetchval("SELECT count(*) FROM api_audit") == count


async def test_a_refused_lead_does_not_sink_its_batch(
    db_pool: asyncpg.Pool, writes: tuple[LeadWrites, Token]
) -> None:
    lead_writes, token = writes
    assert (await lead_writes.upsert(_write("old", _phone(0), token)))["inserted"]
    batch = [
        _write("new", _phone(1), token),
        _write("thief", _phone(0), token),  # the number of lead "old"
        _write("old", _phone(2), token, name="moved"),
    ]
    new, thief, old = await _outcomes(lead_writes, batch)
    assert isinstance(new, asyncpg.Record) and new["inserted"]
    assert isinstance(thief, asyncpg.UniqueViolationError)
    assert isinstance(old, asyncpg.Record) and not old["inserted"]
    stored = await db_pool.fetch("SELECT external_id, phone_e164, fields FROM leads")
    assert sorted(tuple(r) for r in stored) == [
        ("new", _phone(1), {"name": "new"}),
        ("old", _phone(2), {"name": "moved"}),
    ]
    assert await _audit(db_pool) == [
        ("crm", "lead.create", "campaign/spring/lead/old"),
        ("crm", "lead.create", "campaign/spring/lead/new"),
        ("crm", "lead.update", "campaign/spring/lead/old"),
    ]


async def test_the_same_lead_twice_is_written_in_arrival_order(
    db_pool: asyncpg.Pool, writes: tuple[LeadWrites, Token]
) -> None:
    lead_writes, token = writes
    batch = [
        _write("a", _phone(1), token, name="first"),
        _write("b", _phone(2), token),
        _write("a", _phone(3), token, name="second"),
        _write("c", _phone(2), token),  # b's number, given after b
    ]
    first, b, second, c = await _outcomes(lead_writes, batch)
    assert isinstance(first, asyncpg.Record) and isinstance(second, asyncpg.Record)
    assert (first["inserted"], second["inserted"]) == (True, False)
    assert first["id"] == second["id"]
    assert isinstance(b, asyncpg.Record) and b["inserted"]
    assert isinstance(c, asyncpg.UniqueViolationError)
    stored = await db_pool.fetch("SELECT external_id, phone_e164, fields FROM leads")
    assert sorted(tuple(r) for r in stored) == [
        ("a", _phone(3), {"name": "second"}),
        ("b", _phone(2), {"name": "b"}),
    ]
    assert [a for _, a, t in await _audit(db_pool) if t.endswith("/a")] == [
        "lead.create",
        "lead.update",
    ]


async def test_a_lead_of_an_unknown_campaign_is_none(
    db_pool: asyncpg.Pool, writes: tuple[LeadWrites, Token]
) -> None:
    lead_writes, token = writes
    batch = [_write("a", _phone(1), token), _write("a", _phone(1), token, campaign="nope")]
    known, unknown = await _outcomes(lead_writes, batch)
    assert isinstance(known, asyncpg.Record) and known["inserted"]
    assert unknown is None
    assert await _audit(db_pool) == [("crm", "lead.create", "campaign/spring/lead/a")]


async def test_a_cancelled_request_writes_nothing(
    db_pool: asyncpg.Pool, writes: tuple[LeadWrites, Token]
) -> None:
    lead_writes, token = writes
    tasks = [
        asyncio.create_task(lead_writes.upsert(_write(e, _phone(i), token)))
        for i, e in enumerate("abc")
    ]
    await asyncio.sleep(0)  # all three queued; the writer has not run yet
    tasks[1].cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert all(isinstance(outcomes[i], asyncpg.Record) for i in (0, 2))
    stored = await db_pool.fetch("SELECT external_id FROM leads")
    assert sorted(r["external_id"] for r in stored) == ["a", "c"]


async def test_each_request_of_a_failed_batch_gets_the_error(
    pg_url: str, writes: tuple[LeadWrites, Token]
) -> None:
    _, token = writes
    pool = await create_pool(pg_url, DatabaseSettings(pool_min=1, pool_max=1))
    await pool.close()
    outcomes = await _outcomes(
        LeadWrites(pool), [_write(e, _phone(i), token) for i, e in enumerate("ab")]
    )
    assert all(isinstance(o, asyncpg.InterfaceError) for o in outcomes)


async def test_concurrent_puts_over_http_each_get_their_own_answer(api: Api) -> None:
    taken = "+1 212 201 9999"
    assert (await api.call("PUT", "/v1/campaigns/spring/leads/owner", {"phone": taken}))[0] == 201
    bodies = {f"crm-{i}": {"phone": _phone(i), "fields": {"n": str(i)}} for i in range(30)}
    bodies["thief"] = {"phone": taken}
    calls = [api.call("PUT", f"/v1/campaigns/spring/leads/{e}", b) for e, b in bodies.items()]
    calls.append(api.call("PUT", "/v1/campaigns/nope/leads/x", {"phone": _phone(99)}))
    *answers, (missing, _, _) = await asyncio.gather(*calls)
    for (ext, sent), (status, body, _) in zip(bodies.items(), answers, strict=True):
        if ext == "thief":
            assert status == 409
            assert problem_pointers(body) == ["#/phone"]
        else:
            assert status == 201
            assert (body["external_id"], body["phone"], body["fields"]) == (
                ext,
                sent["phone"],
                sent["fields"],
            )
    assert missing == 404
    assert await api.pool.fetchval("SELECT count(*) FROM leads") == 31
    creates = await api.pool.fetchval("SELECT count(*) FROM api_audit WHERE action = 'lead.create'")
    assert creates == 31
