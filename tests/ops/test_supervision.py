"""Supervised background jobs: a death is logged at once with its traceback, readiness fails
while the job is down, and it comes back after a backoff."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from outdial.config import MetricsSettings
from outdial.metrics import MetricsServer
from outdial.supervision import Backoff, Probe, Readiness, Supervisor
from tests.dialer.helpers import until

QUICK = Backoff(initial_s=0.05, max_s=0.2, healthy_after_s=60)


class Flaky:
    """A job that fails its first `failures` runs, then keeps running."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"boom {self.runs}")
        await asyncio.Event().wait()


async def test_a_dying_job_is_logged_with_its_traceback_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    changes: list[int] = []
    supervisor = Supervisor(Readiness(), on_change=lambda: changes.append(1), backoff=QUICK)
    flaky = Flaky(failures=2)
    caplog.set_level(logging.INFO, logger="outdial.supervision")
    job = supervisor.supervise("flaky", flaky.run)
    try:
        async with asyncio.timeout(10):
            await until(lambda: flaky.runs == 3 and job.up)
        died = [r for r in caplog.records if "background task flaky died" in r.getMessage()]
        assert [r.getMessage() for r in died] == [
            "background task flaky died: RuntimeError: boom 1",
            "background task flaky died: RuntimeError: boom 2",
        ]
        assert all(r.levelno == logging.ERROR and r.exc_info for r in died)
        assert job.restarts == 2 and job.probe() == Probe("flaky", True, "running (restarted 2x)")
        assert changes  # systemd's STATUS= was refreshed on each change
    finally:
        await supervisor.cancel_all()


async def test_a_job_that_returns_or_is_cancelled_counts_as_dead() -> None:
    returned = asyncio.Event()

    async def returns() -> None:
        returned.set()

    supervisor = Supervisor(Readiness(), backoff=Backoff(initial_s=30))
    job = supervisor.supervise("quitter", returns)
    try:
        async with asyncio.timeout(10):
            await returned.wait()
            await until(lambda: job.retry_at is not None)
        probe = job.probe()
        assert not probe.ok and probe.detail.startswith("down after it returned; restarting in")
        assert supervisor.down() == [probe]
    finally:
        await supervisor.cancel_all()


async def test_stopping_ends_the_backoff_and_does_not_restart() -> None:
    flaky = Flaky(failures=1)
    supervisor = Supervisor(Readiness(), backoff=Backoff(initial_s=600))
    job = supervisor.supervise("once", flaky.run)
    async with asyncio.timeout(10):
        await until(lambda: job.retry_at is not None)
        job.request_stop()
        await job.wait()
    assert flaky.runs == 1


async def test_readyz_is_503_while_a_job_is_down_and_healthz_stays_200() -> None:
    readiness = Readiness()
    supervisor = Supervisor(readiness, backoff=Backoff(initial_s=600))
    gate = asyncio.Event()

    async def waits_then_fails() -> None:
        await gate.wait()
        raise RuntimeError("AMI exploded")

    supervisor.supervise("dialer", waits_then_fails)
    readiness.add("database", lambda: Probe("database", True, "answers"))
    server = MetricsServer(MetricsSettings(port=0), readiness)
    port = await server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/readyz") as reply:
                assert reply.status == 200
                assert await reply.text() == "ok dialer: running\nok database: answers\n"
            gate.set()
            job = supervisor.jobs["dialer"]
            async with asyncio.timeout(10):
                await until(lambda: job.retry_at is not None)
            async with http.get(f"{base}/readyz") as reply:
                assert reply.status == 503
                text = await reply.text()
                assert text.startswith("FAIL dialer: down after RuntimeError: AMI exploded;")
            async with http.get(f"{base}/healthz") as reply:
                assert reply.status == 200
    finally:
        await server.stop()
        await supervisor.cancel_all()


async def test_a_check_that_raises_is_a_failing_check() -> None:
    readiness = Readiness()

    def broken() -> Probe:
        raise OSError("no route")

    readiness.add("ami", broken)
    assert await readiness.probe() == [Probe("ami", False, "check failed: OSError: no route")]
