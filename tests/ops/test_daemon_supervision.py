"""The daemon's dialer dies: the log says so at once with the traceback, /readyz answers 503
and systemd's STATUS= names what is degraded; the process and its listeners stay up."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from pathlib import Path

import aiohttp
import pytest

from outdial.daemon import Daemon
from outdial.supervision import Backoff
from outdial.systemd import Notifier
from tests.dialer.helpers import until
from tests.ops.daemons import daemon_config

pytestmark = pytest.mark.slow


async def test_killing_the_dialer_task_is_logged_and_turns_readyz_503(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = daemon_config(pg_url, tmp_path)
    name = f"outdial-supervision-{uuid.uuid4().hex}"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind("\0" + name)
    systemd.setblocking(False)
    # A long backoff, so the dialer is still down when /readyz is asked.
    daemon = Daemon(config, notifier=Notifier("@" + name), backoff=Backoff(initial_s=600))
    caplog.set_level(logging.INFO)
    await daemon.start()
    try:
        readyz = f"http://127.0.0.1:{daemon.metrics_port}/readyz"
        async with aiohttp.ClientSession() as http:
            async with http.get(readyz) as reply:
                assert reply.status == 200, await reply.text()
            assert daemon.supervisor is not None
            dialer = daemon.supervisor.jobs["dialer"]
            assert dialer.current is not None
            dialer.current.cancel()  # the task dies under the daemon
            async with asyncio.timeout(60):
                await until(lambda: dialer.retry_at is not None)
            assert any(
                r.levelno == logging.ERROR and r.getMessage().startswith("background task dialer")
                for r in caplog.records
            )
            async with http.get(readyz) as reply:
                assert reply.status == 503
                # One line per check: the database, models and AMI lines come first.
                assert "\nFAIL dialer: down after it was cancelled" in await reply.text()
            async with http.get(readyz.replace("readyz", "healthz")) as reply:
                assert reply.status == 200
        statuses = []
        while True:
            try:
                statuses += [
                    f for f in systemd.recv(4096).decode().split("\n") if f.startswith("STATUS=")
                ]
            except BlockingIOError:
                break
        assert statuses[-1].startswith("STATUS=degraded: dialer down after it was cancelled")
    finally:
        await daemon.stop()
        systemd.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "outdial.daemon"]
    assert "stopping: no new calls; draining 0 calls (up to 30 s)" in messages
    assert messages[-1] == "stopped"
