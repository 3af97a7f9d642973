"""A CRM for the chaos run: two webhook URLs on one local server, and the outbox reconciliation.

The daemon sends the outbox to both URLs; one of them refuses every `refuse_every`-th request
(HTTP 503), so retries and backoff run all along. Every request is recorded with its
Idempotency-Key header, the key in its body, and whether its signature checks out.

The reconciliation, after the daemon has stopped and the harness has sent what it left (with
the daemon's own `WebhookSender`, as its next start would):

- lost: ended attempts with no `call.outcome` event in the outbox; events some URL never
  accepted;
- duplicated: a call with two outcome events; an accepted request whose keys disagree (with
  each other or with the outbox row) or whose signature is wrong: the CRM could not
  deduplicate it.

A URL may accept an event more than once: the sender commits a URL's delivery after the URL's
2xx, so a crash or a database outage in between sends it again with the same key, and the CRM
deduplicates by it (crm/webhooks.py). Those are counted apart (`redelivered`), not as lost or
duplicated.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import SecretStr

from analytics.settings import WebhookSettings
from crm.webhooks import SIGNATURE_HEADER, WebhookSender
from store.outbox import OUTCOME_EVENT, pending_count

WEBHOOK_SECRET = "chaos-crm-secret"
PATHS = ("/crm-a", "/crm-b")  # /crm-b refuses some requests


@dataclass(frozen=True)
class Request:
    url: str
    header_key: str
    body_key: str | None
    signature_ok: bool
    accepted: bool


@dataclass
class CrmReceiver:
    refuse_every: int = 5
    requests: list[Request] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    base: str = ""

    @property
    def urls(self) -> list[str]:
        return [self.base + path for path in PATHS]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        refused = request.path == PATHS[1] and (len(self.requests) + 1) % self.refuse_every == 0
        self.requests.append(
            Request(
                url=self.base + request.path,
                header_key=request.headers.get("Idempotency-Key", ""),
                body_key=json.loads(body).get("idempotency_key"),
                signature_ok=hmac.compare_digest(
                    request.headers.get(SIGNATURE_HEADER, ""), expected
                ),
                accepted=not refused,
            )
        )
        return web.Response(status=503) if refused else web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        for path in PATHS:
            app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def settings(self) -> WebhookSettings:
        """What the daemon is configured with: quick polls and short backoff, for a short run."""
        return WebhookSettings(
            urls=self.urls,
            secret=SecretStr(WEBHOOK_SECRET),
            backoff_initial_s=0.2,
            backoff_max_s=2.0,
            poll_interval_s=0.2,
            timeout_s=5.0,
        )

    def config(self) -> dict[str, object]:
        return self.settings().model_dump(mode="json", exclude={"secret"})


async def send_the_rest(pool: asyncpg.Pool, receiver: CrmReceiver, limit_s: float = 120.0) -> int:
    """Deliver what the stopped daemon left in the outbox; returns the events still pending."""
    sender = WebhookSender(pool, receiver.settings())
    deadline = time.monotonic() + limit_s
    try:
        while (left := await pending_count(pool)) and time.monotonic() < deadline:
            if not await sender.run_once():
                await asyncio.sleep(0.2)  # what is left waits out its backoff
    finally:
        await sender.stop()
    return left


async def reconcile_outbox(pool: asyncpg.Pool, receiver: CrmReceiver) -> dict[str, Any]:
    ended = {
        r["call_id"]
        for r in await pool.fetch("SELECT call_id FROM call_attempts WHERE ended_at IS NOT NULL")
    }
    events = await pool.fetch("SELECT idempotency_key, call_id, event_type FROM outbox")
    outcomes_per_call = Counter(e["call_id"] for e in events if e["event_type"] == OUTCOME_EVENT)
    keys = {e["idempotency_key"] for e in events}
    accepted = [r for r in receiver.requests if r.accepted]
    sound = [
        r
        for r in accepted
        if r.signature_ok and r.header_key == r.body_key and r.header_key in keys
    ]
    per_url = Counter((r.url, r.header_key) for r in sound)
    missing = sorted(c for c in ended if not outcomes_per_call[c])
    undelivered = [(url, key) for url in receiver.urls for key in keys if not per_url[url, key]]
    lost = {
        "outbox_events_missing": len(missing),
        "outbox_events_undelivered": len(undelivered),
    }
    duplicated = {
        "outbox_events_twice": sum(1 for n in outcomes_per_call.values() if n > 1),
        "outbox_deliveries_unmatched": len(accepted) - len(sound),
    }
    return {
        "outbox": {
            "events": len(events),
            "attempts_ended": len(ended),
            "requests": len(receiver.requests),
            "refused": sum(1 for r in receiver.requests if not r.accepted),
            "redelivered": sum(n - 1 for n in per_url.values() if n > 1),
            "examples": {"missing": missing[:5], "undelivered": undelivered[:5]},
        },
        "lost_detail": lost,
        "duplicated_detail": duplicated,
    }
