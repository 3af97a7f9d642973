"""CRM webhook sender: delivers outbox events to the configured URLs.

Each event is POSTed as JSON with `X-Outdial-Signature: sha256=<hex HMAC-SHA256 of the body>`
and `Idempotency-Key` headers. A failed POST is retried with exponential backoff, for as long as it
takes: events are never dropped, and a lead's later event waits until its earlier one has been
accepted by every URL. A URL that accepted an event never gets it again from us; receivers should
still deduplicate by Idempotency-Key, since a crash between their 2xx and our commit resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging

import aiohttp
import asyncpg

from analytics.metrics import OUTBOX_PENDING, WEBHOOK_DELIVERIES
from analytics.settings import WebhookSettings
from store import outbox
from store.db import DATABASE_ERRORS
from store.outage import OutageLog
from store.outbox import OutboxEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Outdial-Signature"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def encode(event: OutboxEvent) -> bytes:
    # Compact and key-sorted: the signature covers exactly these bytes.
    return json.dumps(event.payload, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(settings: WebhookSettings, failures_before: int) -> float:
    """Delay after a failed attempt: initial * factor**n, capped."""
    exponent = min(failures_before, 64)  # keeps factor**n finite
    delay = settings.backoff_initial_s * settings.backoff_factor**exponent
    return min(settings.backoff_max_s, delay)


class DeliveryFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # bounded metric label: http_Nxx, timeout, connection_error


class WebhookSender:
    """Drains the outbox to the webhook URLs until stopped (the daemon owns one)."""

    def __init__(self, pool: asyncpg.Pool, settings: WebhookSettings) -> None:
        if not settings.urls or settings.secret is None:
            raise ValueError("the webhook sender needs at least one URL and a signing secret")
        self._pool = pool
        self._settings = settings
        self._secret = settings.secret.get_secret_value().encode()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._outage = OutageLog(log)  # one WARNING per outage, not one per poll

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def start(self) -> None:
        await self._open()
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="webhook-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def database_failing(self) -> bool:
        """The last poll failed on the database (the events wait in the outbox)."""
        return self._outage.failures > 0

    async def run_once(self) -> int:
        """Attempt every event that is due now; returns how many were attempted."""
        await self._open()
        lease_s = float(self._settings.timeout_s * len(self._settings.urls) + 30)
        async with self._pool.acquire() as conn:
            events = await outbox.claim_due(conn, self._settings.batch_size, lease_s)
            for event in events:
                await self._deliver(conn, event)
            OUTBOX_PENDING.set(await outbox.pending_count(conn))
        return len(events)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                attempted = await self.run_once()
            except DATABASE_ERRORS as exc:
                # The database may be restarting; events wait safely in the outbox.
                self._outage.failed("webhook sender: %s", exc)
                attempted = 0
            else:
                self._outage.succeeded()
            if attempted < self._settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._settings.poll_interval_s)

    async def _deliver(self, conn: asyncpg.Connection, event: OutboxEvent) -> None:
        body = encode(event)
        done = await outbox.delivered_targets(conn, event.id)
        errors: list[str] = []
        for url in self._settings.urls:
            if url in done:
                continue
            try:
                await self._post(url, event, body)
            except DeliveryFailed as exc:
                WEBHOOK_DELIVERIES.labels(reason=exc.reason).inc()
                errors.append(f"{url}: {exc}")
                continue
            WEBHOOK_DELIVERIES.labels(reason="delivered").inc()
            await outbox.record_target_delivered(conn, event.id, url)
        if errors:
            delay = backoff_s(self._settings, event.attempts)
            await outbox.mark_failed(conn, event.id, "; ".join(errors), delay)
            log.info("outbox event %d failed, retry in %.1f s: %s", event.id, delay, errors[0])
        else:
            await outbox.mark_delivered(conn, event.id)

    async def _post(self, url: str, event: OutboxEvent, body: bytes) -> None:
        session = await self._open()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "Idempotency-Key": event.idempotency_key,
            "X-Outdial-Event": event.event_type,
        }
        try:
            # A redirect is a failure too: re-sending a signed body elsewhere is not our call.
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return
                raise DeliveryFailed(f"http_{response.status // 100}xx", f"HTTP {response.status}")
        except TimeoutError as exc:
            raise DeliveryFailed("timeout", "timed out") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryFailed("connection_error", str(exc) or type(exc).__name__) from exc
