"""docs/privacy.md maps every column of the live schema: a new column without a decision about
its personal data (or a mapped column that is gone) fails here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from store.settings import RetentionSettings

MAP = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"
_ROW = re.compile(r"^\| `([a-z_0-9]+)\.([a-z_0-9]+)` \| (\w+) \| (.+?) \| (.+?) \| (.+?) \|$")


@dataclass(frozen=True)
class Entry:
    personal: str
    what: str
    kept: str
    on_erasure: str


def data_map(text: str) -> dict[tuple[str, str], Entry]:
    """The map's column rows; ValueError naming the line of a row that repeats a column."""
    entries: dict[tuple[str, str], Entry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _ROW.match(line)
        if match is None:
            continue
        key = (match[1], match[2])
        if key in entries:
            raise ValueError(f"docs/privacy.md:{number}: {key[0]}.{key[1]} is mapped twice")
        entries[key] = Entry(*(match[i].strip() for i in range(3, 7)))
    return entries


async def _live_columns(url: str) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT c.table_name, c.column_name FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
               WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"""
        )
    finally:
        await conn.close()
    return {(r["table_name"], r["column_name"]) for r in rows}


async def test_every_column_of_the_schema_is_in_the_map(pg_url: str) -> None:
    mapped = data_map(MAP.read_text(encoding="utf-8"))
    live = await _live_columns(pg_url)
    assert len(live) > 100
    missing = sorted(f"{t}.{c}" for t, c in live - set(mapped))
    assert not missing, f"add these columns to docs/privacy.md: {missing}"
    stale = sorted(f"{t}.{c}" for t, c in set(mapped) - live)
    assert not stale, f"these columns are gone; remove them from docs/privacy.md: {stale}"


def test_every_entry_says_whether_it_is_personal_and_how_long_it_stays() -> None:
    retention = {f"`{name}`" for name in RetentionSettings.model_fields}
    for (table, column), entry in data_map(MAP.read_text(encoding="utf-8")).items():
        where = f"{table}.{column}"
        assert entry.personal in ("yes", "no"), where
        assert entry.what and entry.on_erasure, where
        # Personal data always has a retention rule; the `-` is for tables that hold none.
        assert entry.kept in retention or (entry.kept == "-" and entry.personal == "no"), where


def test_the_map_parser_sees_rows_and_refuses_a_column_twice() -> None:
    row = "| `leads.fields` | yes | name, amount | `finished_leads_days` | emptied |"
    assert data_map(row) == {
        ("leads", "fields"): Entry("yes", "name, amount", "`finished_leads_days`", "emptied")
    }
    with pytest.raises(ValueError, match=r"privacy.md:2: leads.fields is mapped twice"):
        data_map(f"{row}\n{row}")
