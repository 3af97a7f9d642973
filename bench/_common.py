"""What the database benchmarks share: a scratch database and CPU accounting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from store.embedded import start_embedded_async
from store.migrate import migrate
from store.simulation import scratch_database as database_beside


@dataclass(frozen=True)
class Scratch:
    url: str
    postmaster_pid: int | None  # the embedded server's, whose CPU time we can account for


@asynccontextmanager
async def scratch_database(name: str) -> AsyncIterator[Scratch]:
    """A migrated, empty database `name` on the server of OUTDIAL_DATABASE_URL (dropped
    afterwards), or on a throwaway embedded PostgreSQL when it is not set."""
    external = os.environ.get("OUTDIAL_DATABASE_URL")
    if external:
        async with database_beside(external, name) as url:
            yield Scratch(url, None)
        return
    state = Path(tempfile.mkdtemp(prefix="outdial-bench-"))
    server = await start_embedded_async(state)
    try:
        pid = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        yield Scratch(await _migrated(server.url), pid)
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(state, ignore_errors=True)


async def _migrated(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants, live or already reaped."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total
