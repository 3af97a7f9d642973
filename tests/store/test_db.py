"""The pool skips asyncpg's reset query on release; what it must still clean up, it does."""

from __future__ import annotations

from store.db import create_pool
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
