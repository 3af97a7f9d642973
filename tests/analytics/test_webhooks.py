"""CRM outbox: enqueue in the disposition's transaction, signed delivery, retries, lead order."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from pydantic import SecretStr, ValidationError

from analytics.settings import WebhookSettings
from crm.webhooks import WebhookSender, backoff_s
from outdial.config import parse_config
from store.outbox import enqueue_outcome, pending_count
from tests.analytics import seeding

SECRET = "s3cret-for-tests"


@dataclass
class Receiver:
    """A CRM stand-in: fails the first `failures` requests with 500, then accepts."""

    failures: int
    requests: list[dict] = field(default_factory=list)  # every request, in arrival order
    accepted: list[dict] = field(default_factory=list)  # events answered 2xx, in order
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        event = json.loads(body)
        record = {
            "key": request.headers["Idempotency-Key"],
            "signature_ok": hmac.compare_digest(request.headers["X-Outdial-Signature"], expected),
            "content_type": request.headers["Content-Type"],
            "event": event,
        }
        self.requests.append(record)
        record["accepted"] = len(self.requests) > self.failures
        if not record["accepted"]:
            return web.Response(status=500, text="try later")
        self.accepted.append(record)
        return web.json_response({"ok": True})


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    """Two local receivers: one that fails 3 times then succeeds, one that always fails."""
    made = [Receiver(failures=3), Receiver(failures=10**9)]
    runners = []
    for receiver in made:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        runners.append(runner)
    yield made
    for runner in runners:
        await runner.cleanup()


def settings_for(*urls: str) -> WebhookSettings:
    return WebhookSettings(
        urls=list(urls),
        secret=SecretStr(SECRET),
        backoff_initial_s=0.001,
        backoff_max_s=0.004,
        poll_interval_s=0.005,
        timeout_s=5,
    )


async def seed_events(pool: asyncpg.Pool) -> dict[int, list[str]]:
    """Five outcome events: lead 1 has calls l1-c1..c3, lead 2 has l2-c1..c2, interleaved."""
    campaign_id = await seeding.campaign(pool, "spring", "order")
    lead1 = await seeding.lead(pool, campaign_id, "+15550000001", external_id="crm-1")
    lead2 = await seeding.lead(pool, campaign_id, "+15550000002", external_id="crm-2")
    order = [(lead1, "l1-c1"), (lead2, "l2-c1"), (lead1, "l1-c2"), (lead1, "l1-c3")]
    for lead_id, call_id in [*order, (lead2, "l2-c2")]:
        async with pool.acquire() as conn, conn.transaction():
            # In production this runs in the same transaction as the disposition update.
            await conn.execute(
                "UPDATE leads SET last_disposition = 'completed' WHERE id = $1", lead_id
            )
            assert await enqueue_outcome(
                conn, call_id=call_id, lead_id=lead_id, disposition="completed",
                outcome="confirmed", success=True, details={"script": "order"},
            ) is not None  # fmt: skip
    return {lead1: ["l1-c1", "l1-c2", "l1-c3"], lead2: ["l2-c1", "l2-c2"]}


def deliveries(reason: str) -> float:
    value = REGISTRY.get_sample_value("outdial_webhook_deliveries_total", {"reason": reason})
    return value or 0.0


async def wait_until_delivered(pool: asyncpg.Pool) -> None:
    for _ in range(3000):
        if not await pending_count(pool):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("outbox events are still pending")


async def test_flaky_receiver_gets_every_event_once_in_lead_order(
    db_pool: asyncpg.Pool, receivers: list[Receiver]
) -> None:
    flaky = receivers[0]
    per_lead = await seed_events(db_pool)
    delivered_before, failed_before = deliveries("delivered"), deliveries("http_5xx")

    sender = WebhookSender(db_pool, settings_for(flaky.url))
    await sender.start()
    try:
        await wait_until_delivered(db_pool)
    finally:
        await sender.stop()

    keys = [r["key"] for r in flaky.accepted]
    assert sorted(keys) == sorted(f"call.outcome:{c}" for calls in per_lead.values() for c in calls)
    assert len(keys) == len(set(keys))  # exactly once per idempotency key
    assert len(flaky.requests) == len(keys) + 3
    assert all(r["signature_ok"] for r in flaky.requests)
    assert all(r["content_type"] == "application/json" for r in flaky.requests)
    for lead_id, calls in per_lead.items():
        seen = [r["event"]["call_id"] for r in flaky.accepted if r["event"]["lead_id"] == lead_id]
        assert seen == calls
        # Not even a failed attempt of a later event came before the earlier one was accepted.
        ids = [r["event"]["call_id"] for r in flaky.requests]
        for earlier, later in itertools.pairwise(calls):
            accepted_at = next(
                i for i, r in enumerate(flaky.requests) if ids[i] == earlier and r["accepted"]
            )
            assert ids.index(later) > accepted_at
    [record] = [r for r in flaky.accepted if r["event"]["call_id"] == "l1-c1"]
    event = record["event"]
    assert event["idempotency_key"] == record["key"] == "call.outcome:l1-c1"
    assert (event["external_id"], event["campaign"], event["disposition"]) == (
        "crm-1", "spring", "completed",
    )  # fmt: skip
    assert "+1555" not in json.dumps([r["event"] for r in flaky.requests])
    rows = await db_pool.fetch("SELECT attempts, delivered_at, last_error FROM outbox")
    assert all(r["delivered_at"] is not None and r["last_error"] is None for r in rows)
    assert sum(r["attempts"] for r in rows) == len(keys) + 3
    assert deliveries("delivered") - delivered_before == 5
    assert deliveries("http_5xx") - failed_before == 3
    assert REGISTRY.get_sample_value("outdial_outbox_pending") == 0


async def test_a_url_that_accepted_is_not_sent_again_and_order_holds(
    db_pool: asyncpg.Pool, receivers: list[Receiver]
) -> None:
    good, down = receivers
    good.failures = 0
    per_lead = await seed_events(db_pool)
    sender = WebhookSender(db_pool, settings_for(good.url, down.url))
    try:
        while len(down.requests) < 6:
            await sender.run_once()
            await asyncio.sleep(0.005)
    finally:
        await sender.stop()
    # Only each lead's first event went out; the good URL took it once, however many retries.
    firsts = sorted(f"call.outcome:{calls[0]}" for calls in per_lead.values())
    assert sorted(r["key"] for r in good.requests) == firsts
    assert {r["key"] for r in down.requests} == set(firsts)
    assert await pending_count(db_pool) == 5
    errors = await db_pool.fetch("SELECT last_error FROM outbox WHERE last_error IS NOT NULL")
    assert errors and all("HTTP 500" in r["last_error"] for r in errors)


async def test_enqueue_is_idempotent_per_call(db_pool: asyncpg.Pool) -> None:
    campaign_id = await seeding.campaign(db_pool, "spring", "order")
    lead_id = await seeding.lead(db_pool, campaign_id, "+15550000009")
    async with db_pool.acquire() as conn:
        first = await enqueue_outcome(conn, call_id="x1", lead_id=lead_id, disposition="completed")
        again = await enqueue_outcome(conn, call_id="x1", lead_id=lead_id, disposition="completed")
        with pytest.raises(ValueError, match="call id"):
            await enqueue_outcome(conn, call_id="", lead_id=lead_id, disposition="completed")
    assert first is not None and again is None
    assert await pending_count(db_pool) == 1


async def test_enqueue_rolls_back_with_the_disposition(db_pool: asyncpg.Pool) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db_pool.acquire() as conn, conn.transaction():
            await enqueue_outcome(conn, call_id="x2", lead_id=None, disposition="failed")
            raise Boom
    assert await pending_count(db_pool) == 0


def test_backoff_grows_and_is_capped() -> None:
    settings = WebhookSettings(backoff_initial_s=2, backoff_factor=2, backoff_max_s=60)
    assert [backoff_s(settings, n) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff_s(settings, 10_000) == 60


def test_webhook_settings_refuse_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="signing secret"):
        WebhookSettings(urls=["https://crm.example/hook"])
    with pytest.raises(ValidationError, match="not an http"):
        WebhookSettings(urls=["ftp://crm.example/hook"], secret=SecretStr("x"))
    with pytest.raises(ValidationError, match="listed twice"):
        WebhookSettings(urls=["http://a/h", "http://a/h"], secret=SecretStr("x"))
    monkeypatch.setenv("OUTDIAL_WEBHOOK_SECRET", "from-env")
    config = parse_config("webhooks:\n  urls: [https://crm.example/hook]\n", "test.yaml")
    assert config.webhooks.secret is not None
    assert config.webhooks.secret.get_secret_value() == "from-env"
    with pytest.raises(ValueError, match="at least one URL"):
        WebhookSender(None, WebhookSettings())  # type: ignore[arg-type]
