"""The pool skips asyncpg's reset query on release; what it must still clean up, it does."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from store.db import create_pool
from store.embedded import start_embedded
from store.settings import DatabaseSettings


async def test_a_transaction_left_open_is_rolled_back_on_release(pg_url: str) -> None:
    pool = await create_pool(pg_url, DatabaseSettings(pool_min=1, pool_max=1))
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO scripts (name) VALUES ('left-open')")
        async with pool.acquire() as conn:  # the same connection: the pool has one
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM scripts") == 0
    finally:
        await pool.close()


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_embedded_postgres_logs_go_to_a_file_in_the_state_directory() -> None:
    # What the daemon's log handler (on the root logger) would receive.
    daemon_log = _Recorder()
    root = logging.getLogger()
    root.addHandler(daemon_log)
    level = root.level
    root.setLevel(logging.DEBUG)
    # Not under pytest's basetemp (see conftest.pg_server): the server's own user needs access.
    tmp_path = Path(tempfile.mkdtemp(prefix="outdial-embedded-log-"))
    server = start_embedded(tmp_path / "state")
    try:
        server.stop()
        written = (tmp_path / "state" / "embedded-postgres.log").read_text()
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
        root.removeHandler(daemon_log)
        root.setLevel(level)
    # Only our own one-line notice reaches the daemon's log; the package's dumps are in the file.
    assert not [r for r in daemon_log.records if r.name.startswith("embedded_postgres")]
    ours = [r.getMessage() for r in daemon_log.records if r.name == "store.embedded"]
    assert len(ours) == 1 and "\n" not in ours[0] and "embedded-postgres.log" in ours[0]
    assert "pg_ctl" in written


async def test_embedded_postgres_stops_every_time_across_restarts() -> None:
    """The library's stop ran only on the first call: after `start_again`, a second stop left
    PostgreSQL running (bench/chaos.py's later database faults were no faults at all)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="outdial-embedded-restart-"))
    server = start_embedded(tmp_path / "state")
    try:
        for _ in range(2):
            server.stop()
            with pytest.raises(OSError):
                await asyncpg.connect(server.url, timeout=5)
            server.start_again()
            conn = await asyncpg.connect(server.url, timeout=10)
            assert await conn.fetchval("SELECT 1") == 1
            await conn.close()
    finally:
        server.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert not (server.pgdata / "postmaster.pid").exists()
