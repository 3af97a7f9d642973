"""Bulk insert that skips rows already present: COPY into a staging table, then INSERT ... SELECT.

COPY is the fastest way into PostgreSQL but cannot skip conflicting rows; routing it through a
per-connection temporary table lets `ON CONFLICT DO NOTHING` make every write idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass(frozen=True)
class CopyTarget:
    """A table and the columns written to it; json(b) columns travel as text and are cast."""

    table: str
    columns: tuple[str, ...]
    json_columns: frozenset[str] = field(default_factory=frozenset)
    # Constant values filled in by the INSERT (e.g. campaign_id), bound as $1, $2, ...
    constants: tuple[str, ...] = ()
    # A column the INSERT returns for each new row, to tell which rows already existed.
    key: str | None = None
    # An upsert instead of DO NOTHING: on a conflict on `upsert_key`, these columns take the
    # new values where `upsert_where` holds. Rows repeated in one batch count once (an upsert
    # may not touch a row twice in one statement).
    upsert_key: str | None = None
    upsert_columns: tuple[str, ...] = ()
    upsert_where: str | None = None

    @property
    def staging(self) -> str:
        return f"_stage_{self.table}"

    def create_staging_sql(self) -> str:
        # asyncpg's binary COPY has no jsonb encoder, so json columns are staged as text.
        select = ", ".join(
            f"{c}::text AS {c}" if c in self.json_columns else c for c in self.columns
        )
        # ON COMMIT DELETE ROWS: the table lives with the connection and is empty per transaction.
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.staging} ON COMMIT DELETE ROWS AS "
            f"SELECT {select} FROM {self.table} WITH NO DATA"
        )

    def insert_sql(self) -> str:
        targets = ", ".join((*self.constants, *self.columns))
        params = [f"${i}" for i in range(1, len(self.constants) + 1)]
        values = [f"{c}::jsonb" if c in self.json_columns else c for c in self.columns]
        returning = f" RETURNING {self.key}" if self.key else ""
        return (
            f"INSERT INTO {self.table} ({targets}) SELECT {self._distinct()}"
            f"{', '.join((*params, *values))} FROM {self.staging} "
            f"ON CONFLICT {self._on_conflict()}{returning}"
        )

    def _distinct(self) -> str:
        return f"DISTINCT ON ({self.upsert_key}) " if self.upsert_key else ""

    def _on_conflict(self) -> str:
        if self.upsert_key is None:
            return "DO NOTHING"
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.upsert_columns)
        where = f" WHERE {self.upsert_where}" if self.upsert_where else ""
        return f"({self.upsert_key}) DO UPDATE SET {updates}{where}"


def _inserted(status: str) -> int:
    # Command tag "INSERT 0 <rows>".
    return int(status.rsplit(" ", 1)[1])


async def copy_insert_ignore(
    conn: asyncpg.Connection,
    target: CopyTarget,
    records: Iterable[Sequence[Any]],
    constants: Sequence[Any] = (),
    *,
    timeout_s: float | None = None,
) -> int:
    """Write `records` (tuples in `target.columns` order) in one transaction.

    Returns how many rows were new; the others already existed (or repeated within the batch).
    """

    async def copy() -> None:
        await conn.copy_records_to_table(
            target.staging, records=records, columns=target.columns, timeout=timeout_s
        )

    return await _staged(conn, target, copy, constants, timeout_s)


async def copy_text_insert_ignore(
    conn: asyncpg.Connection,
    target: CopyTarget,
    text: memoryview,
    constants: Sequence[Any] = (),
) -> list[Any]:
    """As `copy_insert_ignore`, for rows already in COPY's text format (tab-separated lines
    in `target.columns` order), e.g. made by worker processes. Returns the `target.key` of
    each new row, so the caller can name the rows that already existed."""
    assert target.key is not None

    async def copy() -> None:
        await conn.copy_to_table(target.staging, source=text, columns=target.columns)

    async with conn.transaction():
        await conn.execute(target.create_staging_sql())
        await copy()
        return [row[0] for row in await conn.fetch(target.insert_sql(), *constants)]


async def _staged(
    conn: asyncpg.Connection,
    target: CopyTarget,
    copy: Callable[[], Awaitable[None]],
    constants: Sequence[Any],
    timeout_s: float | None,
) -> int:
    async with conn.transaction():
        await conn.execute(target.create_staging_sql(), timeout=timeout_s)
        await copy()
        status = await conn.execute(target.insert_sql(), *constants, timeout=timeout_s)
    return _inserted(status)
