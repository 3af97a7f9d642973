"""What the daemon depends on, watched from inside: the database and the PBX trunks.

Every `interval_s` the monitor pings PostgreSQL (bounded by `timeout_s`), reads each trunk's
AMI login, and counts the event loop's tasks. Each dependency has a gauge
(`outdial_db_up`, `outdial_ami_up{trunk}`), a readiness check, and a WARNING when it is lost and
one when it is back: once per change, never per call or per probe. A change also refreshes
systemd's STATUS= (through `on_change`), so `systemctl status` says what is degraded. The
watchdog is not touched: during a database outage the daemon is doing the right thing (the turn
log spools to disk), so systemd must not restart it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import Gauge

from outdial.supervision import Probe, Readiness

log = logging.getLogger(__name__)

DB_UP = Gauge("outdial_db_up", "1 while PostgreSQL answers the daemon's health probe")
EVENT_LOOP_TASKS = Gauge("outdial_asyncio_tasks", "asyncio tasks alive in the daemon's event loop")

# What losing each kind of dependency means for calls, for the WARNING line.
CONSEQUENCE = {
    "database": "turns go to the on-disk spool, no new leads are leased",
    "ami": "no calls can be placed on it",
}


@dataclass
class Dependency:
    """One watched dependency: its state, and the lost/back log lines on each change."""

    name: str  # "database", "ami main"
    kind: str  # a key of CONSEQUENCE
    up: bool | None = None  # None until the first probe
    detail: str = "not probed yet"
    since: float = field(default_factory=time.monotonic)
    lost: bool = False  # went down after being up, and not back yet

    def update(self, up: bool, detail: str) -> bool:
        """Record a probe's verdict; True when the state changed.

        Losing a dependency that was up is one WARNING, and its return another. One that was
        never up (an AMI login still under way at start) changes state quietly: the
        connection's own first failure is already logged."""
        self.detail = detail
        if up == self.up:
            return False
        now = time.monotonic()
        if not up and self.up:
            log.warning("%s lost: %s; %s", self.name, detail, CONSEQUENCE[self.kind])
            self.lost = True
        elif up and self.lost:
            log.warning("%s back after %.0f s", self.name, now - self.since)
            self.lost = False
        self.up, self.since = up, now
        return True

    def probe(self) -> Probe:
        if self.up:
            return Probe(self.name, True, "up")
        if self.up is None:
            return Probe(self.name, False, self.detail)
        return Probe(
            self.name, False, f"down for {time.monotonic() - self.since:.0f} s: {self.detail}"
        )


DatabaseProbe = Callable[[], Awaitable[object]]
# Each trunk's name and whether its AMI connection is logged in now.
TrunkStates = Callable[[], Iterable[tuple[str, bool]]]


class HealthMonitor:
    """Probes the dependencies on a timer; see the module's docstring."""

    def __init__(
        self,
        readiness: Readiness,
        database: DatabaseProbe,
        trunks: TrunkStates = lambda: (),
        *,
        on_change: Callable[[], None] = lambda: None,
        interval_s: float = 2.0,
        timeout_s: float = 2.0,
    ) -> None:
        self._database_probe = database
        self._trunk_states = trunks
        self._on_change = on_change
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.database = Dependency("database", "database")
        self.trunks: dict[str, Dependency] = {}
        readiness.add("database", self.database.probe)
        readiness.add("ami", self._ami_probe)
        self._task: asyncio.Task[None] | None = None

    def degraded(self) -> list[Probe]:
        """The dependencies that are down now (for STATUS=)."""
        return [d.probe() for d in (self.database, *self.trunks.values()) if d.up is False]

    def _ami_probe(self) -> Probe:
        if not self.trunks:
            return Probe("ami", True, "no trunk dialled yet")
        down = [t for t in self.trunks.values() if not t.up]
        if not down:
            return Probe("ami", True, f"{len(self.trunks)} trunk(s) logged in")
        return Probe("ami", False, "; ".join(f"{t.name} {t.probe().detail}" for t in down))

    async def check(self) -> bool:
        """One round of probes; True when anything changed."""
        EVENT_LOOP_TASKS.set(len(asyncio.all_tasks()))
        changed = self.database.update(*await self._check_database())
        DB_UP.set(1 if self.database.up else 0)
        for trunk, logged_in in self._trunk_states():
            dependency = self.trunks.setdefault(trunk, Dependency(f"ami {trunk}", "ami"))
            detail = "logged in" if logged_in else "not logged in"
            changed = dependency.update(logged_in, detail) or changed
        if changed:
            self._on_change()
        return changed

    async def _check_database(self) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._database_probe()
        except TimeoutError:
            return False, f"no answer within {self._timeout_s:.0f} s"
        except Exception as exc:  # noqa: BLE001 - any failure to answer is an outage
            return False, f"{type(exc).__name__}: {exc}"
        return True, "answering"

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception:  # a monitor that dies quietly would report a stale state
                log.exception("health check failed")

    async def start(self) -> None:
        """A first round at once (so /readyz is right from the start), then on the timer."""
        await self.check()
        self._task = asyncio.create_task(self._run(), name="health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
