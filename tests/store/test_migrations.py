"""Migrations are ordered, applied once, and refuse an edited history."""

from __future__ import annotations

import asyncpg
import pytest

from store.migrate import MigrationError, available_migrations, migrate, pending


async def test_migrate_is_idempotent(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        # The template is already migrated: nothing pending, a second run applies nothing.
        assert await pending(conn) == []
        assert await migrate(conn) == []
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == [m.version for m in available_migrations()]
    finally:
        await conn.close()


async def test_fresh_database_gets_every_table(pg_admin_url: str) -> None:
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute("DROP DATABASE IF EXISTS outdial_fresh_mig WITH (FORCE)")
    await admin.execute("CREATE DATABASE outdial_fresh_mig")
    await admin.close()
    from tests.conftest import with_database

    conn = await asyncpg.connect(with_database(pg_admin_url, "outdial_fresh_mig"))
    try:
        applied = await migrate(conn)
        assert [m.version for m in applied] == [m.version for m in available_migrations()]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        for table in (
            "campaigns",
            "leads",
            "call_attempts",
            "calls",
            "turns",
            "scripts",
            "script_versions",
            "script_variants",
            "dnc",
            "compliance_events",
            "outbox",
        ):
            assert table in tables
    finally:
        await conn.close()


async def test_edited_migration_is_refused(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
        with pytest.raises(MigrationError, match="was changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()
