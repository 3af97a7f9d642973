"""Background jobs that must not die quietly, and the readiness checks built on them.

A supervised job (the dialer) runs in its own task. When it ends without being asked to (an
exception, a return, a cancellation from elsewhere) the failure is logged at once with its
traceback and the job is started again after a backoff: 1 s, doubling up to 60 s, back to 1 s
once a run has lasted 5 minutes. The process stays up, so the calls in progress go on (a
process restart by systemd would drop them). While a job is down, its readiness check fails:
`/readyz` answers 503 and systemd's STATUS= names it.

Readiness is a small set of named checks (`Readiness.add`); other parts (the database, AMI)
add their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    """One readiness check's verdict."""

    name: str
    ok: bool
    detail: str


ReadinessCheck = Callable[[], Probe | Awaitable[Probe]]


class Readiness:
    """Named checks, all of which must pass for the daemon to be ready."""

    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def probe(self) -> list[Probe]:
        probes = []
        for name, check in self._checks.items():
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:  # a check that fails to run is a failing check
                result = Probe(name, False, f"check failed: {type(exc).__name__}: {exc}")
            probes.append(result)
        return probes


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 60.0
    # A run this long counts as healthy: the next failure waits `initial_s` again.
    healthy_after_s: float = 300.0

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** max(0, failures - 1))


@dataclass
class SupervisedJob:
    """One restartable job; `factory` makes a fresh coroutine for each run."""

    name: str
    factory: Callable[[], Coroutine[Any, Any, None]]
    backoff: Backoff
    on_change: Callable[[], None]
    failures: int = 0  # consecutive failed runs
    restarts: int = 0
    last_error: str | None = None
    retry_at: float | None = None  # loop time of the next start while down
    current: asyncio.Task[None] | None = None
    _stopping: bool = False
    _stop_requested: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _runner: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def up(self) -> bool:
        return self.current is not None and not self.current.done()

    def probe(self) -> Probe:
        if self.up:
            detail = f"running (restarted {self.restarts}x)" if self.restarts else "running"
            return Probe(self.name, True, detail)
        if self._stopping:
            return Probe(self.name, False, "stopping")
        wait = ""
        if self.retry_at is not None:
            wait = f"; restarting in {max(0.0, self.retry_at - time.monotonic()):.0f} s"
        return Probe(self.name, False, f"down after {self.last_error}{wait}")

    def start(self) -> None:
        self._runner = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    def request_stop(self) -> None:
        """No restart from now on; the caller stops the job itself (e.g. Dialer.stop)."""
        self._stopping = True
        self._stop_requested.set()

    async def wait(self) -> None:
        """Until the job's current run and the supervision have ended."""
        if self._runner is not None:
            await self._runner

    async def cancel(self) -> None:
        self.request_stop()
        if self._runner is not None:
            self._runner.cancel()
            if self.current is not None:
                self.current.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    async def _supervise(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            self.current = asyncio.create_task(self.factory(), name=self.name)
            self.on_change()
            try:
                await asyncio.wait({self.current})
            finally:
                if not self.current.done():  # the supervision itself was cancelled
                    self.current.cancel()
            if self._stopping and not self.current.cancelled():
                # Asked to stop: its own errors still surface (logged), no restart.
                self._log_stopped_with_error()
                break
            self._record_failure(time.monotonic() - started)
            await self._wait_to_restart()
        self.on_change()

    def _log_stopped_with_error(self) -> None:
        assert self.current is not None
        exc = self.current.exception()
        if exc is not None:
            log.error("%s failed while stopping", self.name, exc_info=exc)

    def _record_failure(self, ran_s: float) -> None:
        assert self.current is not None
        if ran_s >= self.backoff.healthy_after_s:
            self.failures = 0
        self.failures += 1
        if self.current.cancelled():
            self.last_error = "it was cancelled"
            log.error("background task %s was cancelled; it will be restarted", self.name)
        elif (exc := self.current.exception()) is not None:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("background task %s died: %s", self.name, self.last_error, exc_info=exc)
        else:
            self.last_error = "it returned"
            log.error("background task %s ended unexpectedly; it will be restarted", self.name)

    async def _wait_to_restart(self) -> None:
        delay = self.backoff.delay(self.failures)
        self.retry_at = time.monotonic() + delay
        self.on_change()
        log.warning(
            "restarting %s in %.0f s (failure %d in a row)", self.name, delay, self.failures
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), delay)
        self.retry_at = None
        if not self._stopping:
            self.restarts += 1


class Supervisor:
    """The daemon's supervised jobs; each one is also a readiness check."""

    def __init__(
        self,
        readiness: Readiness,
        on_change: Callable[[], None] = lambda: None,
        backoff: Backoff | None = None,
    ) -> None:
        self.readiness = readiness
        self._on_change = on_change
        self._backoff = backoff or Backoff()
        self.jobs: dict[str, SupervisedJob] = {}

    def supervise(
        self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]
    ) -> SupervisedJob:
        job = SupervisedJob(name, factory, self._backoff, self._on_change)
        self.jobs[name] = job
        self.readiness.add(name, job.probe)
        job.start()
        return job

    def down(self) -> list[Probe]:
        """The jobs that are not running now (for systemd's STATUS= line)."""
        return [p for p in (job.probe() for job in self.jobs.values()) if not p.ok]

    async def cancel_all(self) -> None:
        await asyncio.gather(*(job.cancel() for job in self.jobs.values()))
