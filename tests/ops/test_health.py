"""Health that tells the truth (issue 17): the database and each trunk's AMI login each have a
gauge and a readiness check, and one WARNING when lost and one when back, not one per probe."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from dialer.engine import Dialer
from outdial.daemon import Daemon
from outdial.health import HealthMonitor
from outdial.supervision import Readiness
from outdial.systemd import Notifier
from pbxsim import PbxSim
from pbxsim.scenario import OutcomeWeights, Scenario
from store.outage import OutageLog
from tests.dialer.helpers import dialer_settings, sim_config, trunk_for, until
from tests.ops.daemons import daemon_config

ANSWER_ALL_SCENARIO = Scenario(seed=1, ring_seconds=0.2, outcomes=OutcomeWeights(answer=1))


def warnings_from(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and text in r.getMessage()
    ]


async def set_connections_allowed(admin: asyncpg.Connection, name: str, allowed: bool) -> None:
    await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
    if not allowed:  # and cut the sessions the pool holds
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )


async def test_a_database_outage_is_one_warning_each_way_a_gauge_and_a_failing_check(
    pg_url: str, pg_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="outdial.health")
    name = urlsplit(pg_url).path.lstrip("/")
    pool = await asyncpg.create_pool(pg_url, min_size=2, max_size=2)
    admin = await asyncpg.connect(pg_admin_url)
    readiness = Readiness()
    changes: list[bool] = []
    monitor = HealthMonitor(
        readiness, lambda: pool.fetchval("SELECT 1"), on_change=lambda: changes.append(True)
    )
    try:
        assert await monitor.check()
        assert REGISTRY.get_sample_value("outdial_db_up") == 1
        assert {p.name: p.ok for p in await readiness.probe()}["database"]
        await set_connections_allowed(admin, name, False)
        for _ in range(3):  # three probes during one outage
            await monitor.check()
        assert REGISTRY.get_sample_value("outdial_db_up") == 0
        [database] = [p for p in await readiness.probe() if p.name == "database"]
        assert not database.ok and database.detail.startswith("down for")
        assert [p.name for p in monitor.degraded()] == ["database"]
        await set_connections_allowed(admin, name, True)
        for _ in range(3):
            await monitor.check()
        assert REGISTRY.get_sample_value("outdial_db_up") == 1
        assert monitor.degraded() == []
    finally:
        await set_connections_allowed(admin, name, True)
        await admin.close()
        await pool.close()
    assert len(warnings_from(caplog, "database lost")) == 1
    assert len(warnings_from(caplog, "database back after")) == 1
    assert len(changes) == 3  # first verdict, lost, back: STATUS= refreshed on each


async def test_a_pbx_restart_is_one_warning_each_way_and_a_per_trunk_gauge(
    db_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    readiness = Readiness()
    first = PbxSim(sim_config(ANSWER_ALL_SCENARIO))
    await first.start()
    dialer = Dialer(db_pool, dialer_settings("health"), [trunk_for(first, name="main")])
    monitor = HealthMonitor(readiness, lambda: db_pool.fetchval("SELECT 1"), dialer.trunk_states)
    task = asyncio.create_task(dialer.run())
    second: PbxSim | None = None
    try:
        async with asyncio.timeout(30):
            await dialer.wait_connected()
        await monitor.check()
        assert REGISTRY.get_sample_value("outdial_ami_up", {"trunk": "main"}) == 1
        assert {p.name: p.ok for p in await readiness.probe()}["ami"]
        port = first.ami_port
        await first.stop()  # the PBX goes away: its AMI sessions close
        async with asyncio.timeout(30):
            while not monitor.degraded():
                await monitor.check()
                await asyncio.sleep(0.05)
        for _ in range(3):
            await monitor.check()
        assert REGISTRY.get_sample_value("outdial_ami_up", {"trunk": "main"}) == 0
        [ami] = [p for p in await readiness.probe() if p.name == "ami"]
        assert not ami.ok and ami.detail.startswith("ami main down for")
        config = sim_config(ANSWER_ALL_SCENARIO)
        config.ami_port = port
        second = PbxSim(config)
        await second.start()  # and comes back on the same port
        async with asyncio.timeout(30):
            await until(lambda: dialer.trunk_states() == [("main", True)])
        await monitor.check()
        assert REGISTRY.get_sample_value("outdial_ami_up", {"trunk": "main"}) == 1
    finally:
        dialer.stop()
        await asyncio.wait_for(task, 30)
        if second is not None:
            await second.stop()
    assert len(warnings_from(caplog, "ami main lost")) == 1
    assert len(warnings_from(caplog, "ami main back after")) == 1
    # The connection's retries during the outage are not WARNINGs after the first.
    assert len(warnings_from(caplog, "cannot connect")) <= 1


def received(systemd: socket.socket) -> list[str]:
    fields = []
    while True:
        try:
            fields += systemd.recv(4096).decode().split("\n")
        except BlockingIOError:
            return fields


async def until_status(systemd: socket.socket, wanted: Callable[[str], bool]) -> None:
    """Until the last STATUS= systemd got is what is wanted."""
    async with asyncio.timeout(30):
        while True:
            statuses = [f for f in received(systemd) if f.startswith("STATUS=")]
            if statuses and wanted(statuses[-1]):
                return
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_the_daemon_keeps_feeding_the_watchdog_and_says_what_is_degraded(
    pg_url: str,
    pg_admin_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database stops under `outdial run`: /metrics, /readyz and STATUS= say so within a
    probe or two, and the watchdog is still fed (the daemon is doing the right thing)."""
    # The dialer polls often: ten housekeeping rounds fail during the outage.
    config = daemon_config(pg_url, tmp_path, dialer={"poll_interval_s": 0.1})
    socket_name = f"outdial-health-{uuid.uuid4().hex}"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind("\0" + socket_name)
    systemd.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    daemon = Daemon(config, notifier=Notifier("@" + socket_name), health_interval_s=0.2)
    name = urlsplit(pg_url).path.lstrip("/")
    admin = await asyncpg.connect(pg_admin_url)
    caplog.set_level(logging.INFO)
    await daemon.start()
    try:
        received(systemd)
        readyz = f"http://127.0.0.1:{daemon.metrics_port}/readyz"
        await set_connections_allowed(admin, name, False)
        await until_status(systemd, lambda s: s.startswith("STATUS=degraded: database down"))
        await asyncio.sleep(1.0)  # ten housekeeping rounds of the dialer
        assert "WATCHDOG=1" in received(systemd)  # still fed during the outage
        async with aiohttp.ClientSession() as http, http.get(readyz) as reply:
            assert reply.status == 503
            assert "FAIL database: down for" in await reply.text()
        assert REGISTRY.get_sample_value("outdial_db_up") == 0
        assert (REGISTRY.get_sample_value("outdial_asyncio_tasks") or 0) > 0
        await set_connections_allowed(admin, name, True)
        await until_status(systemd, lambda s: "database" not in s)
        async with aiohttp.ClientSession() as http, http.get(readyz) as reply:
            # Still 503: no PBX listens on the trunk's port, and /readyz names it.
            assert "ok database: up\nFAIL ami: ami main down for" in await reply.text()
    finally:
        await set_connections_allowed(admin, name, True)
        await admin.close()
        await daemon.stop()
        systemd.close()
    assert len(warnings_from(caplog, "database lost")) == 1
    assert len(warnings_from(caplog, "database back after")) == 1
    assert len(warnings_from(caplog, "dialer housekeeping failed")) == 1  # not one per poll


def test_a_step_retried_every_poll_warns_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    """The dialer's leasing logged a WARNING on every poll while PostgreSQL was down (489 in
    two minutes of bench/chaos.py's disk_full run)."""
    caplog.set_level(logging.DEBUG, logger="dialer.engine")
    leasing = OutageLog(logging.getLogger("dialer.engine"))
    for _ in range(5):
        leasing.failed("leasing failed (will retry): %s", "connection refused")
    leasing.succeeded()
    leasing.failed("leasing failed (will retry): %s", "connection refused")
    levels = [r.levelno for r in caplog.records if r.getMessage().startswith("leasing failed")]
    assert levels == [logging.WARNING, *[logging.DEBUG] * 4, logging.WARNING]
