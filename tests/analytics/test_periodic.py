"""The hourly jobs and the webhook sender through database trouble (issue 17, chaos): asyncpg's
errors on a session the server cut are retried like an outage, not the end of the loop, and
the sender warns once per outage, not on every poll."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from pydantic import SecretStr

from analytics.periodic import PeriodicJob
from analytics.settings import WebhookSettings
from crm.webhooks import WebhookSender
from tests.dbcuts import end_backend_now
from tests.dialer.helpers import until


async def one_connection_cut_while_idle(pg_url: str) -> asyncpg.Pool:
    """A pool whose only connection the server ended while it sat idle: the loop has read the
    server's FATAL but not yet its EOF, so the next use finds asyncpg mid-operation."""
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
    end_backend_now(pid)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return pool


def warnings_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING
    ]


async def test_a_job_pass_on_a_cut_session_is_retried(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await one_connection_cut_while_idle(pg_url)
    passes: list[int] = []

    async def run_once() -> None:
        passes.append(await pool.fetchval("SELECT 1"))

    job = PeriodicJob("cut-job", 0.05, run_once)
    try:
        job.start()
        async with asyncio.timeout(30):
            await until(lambda: bool(passes))
    finally:
        await job.stop()
        await pool.close()
    assert passes[0] == 1
    [warning] = warnings_of(caplog, "analytics.periodic")
    assert "cut-job pass failed" in warning


async def test_the_webhook_sender_keeps_polling_after_a_cut_session(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await one_connection_cut_while_idle(pg_url)
    # The outbox is empty: the URL is never called.
    settings = WebhookSettings(
        urls=["http://127.0.0.1:9/"], secret=SecretStr("s" * 32), poll_interval_s=0.05
    )
    sender = WebhookSender(pool, settings)
    try:
        await sender.start()
        async with asyncio.timeout(30):
            await until(lambda: bool(warnings_of(caplog, "crm.webhooks")))
            assert await sender.run_once() == 0  # on a fresh connection
    finally:
        await sender.stop()
        await pool.close()
    assert len(warnings_of(caplog, "crm.webhooks")) == 1


async def set_outbox_gone(pool: asyncpg.Pool, gone: bool) -> None:
    names = ("outbox", "outbox_away") if gone else ("outbox_away", "outbox")
    await pool.execute(f"ALTER TABLE {names[0]} RENAME TO {names[1]}")


async def test_the_webhook_sender_warns_once_per_outage_not_per_poll(
    db_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crm.webhooks")
    settings = WebhookSettings(
        urls=["http://127.0.0.1:9/"], secret=SecretStr("s" * 32), poll_interval_s=0.01
    )
    sender = WebhookSender(db_pool, settings)
    failures = "webhook sender: "
    try:
        await sender.start()
        async with asyncio.timeout(60):
            for outage in (1, 2):
                await set_outbox_gone(db_pool, True)
                await until(
                    lambda n=outage: (
                        sum(failures in r.getMessage() for r in caplog.records) >= 5 * n
                    )
                )
                assert sender.database_failing
                await set_outbox_gone(db_pool, False)
                await until(lambda: not sender.database_failing)
    finally:
        await sender.stop()
    assert len(warnings_of(caplog, "crm.webhooks")) == 2  # one per outage
