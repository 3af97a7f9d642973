"""A CRM stand-in for the outbox tests: a local aiohttp webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from analytics.settings import WebhookSettings

SECRET = "crm-test-secret"


@dataclass
class CrmRequest:
    key: str
    signature_ok: bool
    event: dict[str, Any]
    accepted: bool


@dataclass
class Crm:
    """Answers 500 to its first `failures` requests, then 200; checks every signature itself."""

    failures: int
    url: str = ""
    requests: list[CrmRequest] = field(default_factory=list)

    @property
    def accepted(self) -> list[CrmRequest]:
        return [r for r in self.requests if r.accepted]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        signature = request.headers.get("X-Outdial-Signature", "")
        accepted = len(self.requests) >= self.failures
        self.requests.append(
            CrmRequest(
                key=request.headers.get("Idempotency-Key", ""),
                signature_ok=hmac.compare_digest(signature, expected),
                event=json.loads(body),
                accepted=accepted,
            )
        )
        return web.json_response({"ok": True}) if accepted else web.Response(status=500)

    def settings(self) -> WebhookSettings:
        return WebhookSettings(
            urls=[self.url],
            secret=SecretStr(SECRET),
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            poll_interval_s=0.02,
            timeout_s=5,
        )


@asynccontextmanager
async def crm_server(failures: int) -> AsyncIterator[Crm]:
    crm = Crm(failures)
    app = web.Application()
    app.router.add_post("/outcomes", crm.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        crm.url = f"http://127.0.0.1:{runner.addresses[0][1]}/outcomes"
        yield crm
    finally:
        await runner.cleanup()
