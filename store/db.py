"""The database handle: an asyncpg pool on a configured URL or on the embedded server."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from store.embedded import EmbeddedPostgres, start_embedded_async
from store.migrate import migrate
from store.settings import DatabaseSettings

log = logging.getLogger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns in and out as Python objects everywhere.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): a round trip and four statements on every release, for session state this
    code base never leaves behind. asyncpg still rolls back an open transaction and drops
    listener callbacks before calling this. Code that sets session state (SET, LISTEN,
    session advisory locks, WITH HOLD cursors) must undo it before releasing the connection.
    """


# What a database that is away raises, as opposed to a query that failed: refused, reset or
# timed out (TimeoutError is an OSError), the session cut, the server shutting down or starting.
_UNREACHABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
)

# What a database step raises when the database goes away, for loops that retry the step: a
# refused or reset socket, a server error, and asyncpg's own errors on a session the server cut:
# an InterfaceError from a transaction's exit on the closed connection, and an
# InternalClientError when the cut leaves the protocol mid-operation ("another operation (2) is
# in progress", tests/dialer/test_database_cuts.py).
DATABASE_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from or while handling) says the database is away.

    A transaction on a cut session ends in asyncpg's InterfaceError ("the underlying connection
    is closed"), raised while handling the error that cut it: the chain says why."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _UNREACHABLE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def ping(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    """Ask the server the cheapest question there is: it raises when the database is away."""
    await conn.fetchval("SELECT 1")


async def server_clock(conn: asyncpg.Connection) -> datetime:
    """The server's clock at the moment it answers."""
    return await conn.fetchval("SELECT clock_timestamp()")


async def create_pool(url: str, settings: DatabaseSettings) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        timeout=settings.connect_timeout_s,
        init=_init_connection,
        reset=_keep_session,
    )


@dataclass
class Database:
    """Owns the pool and, in embedded mode, the server process."""

    url: str
    pool: asyncpg.Pool
    embedded: EmbeddedPostgres | None = None
    applied: list[str] = field(default_factory=list)

    @classmethod
    async def open(
        cls, settings: DatabaseSettings, state_dir: Path, *, run_migrations: bool = True
    ) -> Database:
        embedded = None
        if settings.url is not None:
            url = settings.url.get_secret_value()
        else:
            embedded = await start_embedded_async(state_dir)
            url = embedded.url
        pool = await create_pool(url, settings)
        applied: list[str] = []
        if run_migrations:
            async with pool.acquire() as conn:
                applied = [f"{m.version:03d}_{m.name}" for m in await migrate(conn)]
        return cls(url=url, pool=pool, embedded=embedded, applied=applied)

    async def close(self) -> None:
        await self.pool.close()
        if self.embedded is not None:
            self.embedded.stop()


async def execute_count(conn: asyncpg.Connection, sql: str, *args: Any) -> int:
    """Run one statement; the rows it changed (from the command tag, "UPDATE 3")."""
    status = await conn.execute(sql, *args)
    return int(status.rsplit(" ", 1)[-1])
