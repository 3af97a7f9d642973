"""How a call the bot answered ended: its `calls` row's end, kept through a database outage.

The call path writes it at once, before the channel is handed back, so the dialer finds the
session's verdict when the call hangs up. While PostgreSQL is away the same row goes to a
batch writer instead (queued, journaled, spooled, replayed: store/batchwriter.py) and reaches
the table when the database is back; bench/chaos.py lost 24 outcomes so, with a traceback
each (issue 17). The write is an upsert that ends the row only while it is open, so a
replayed row changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import MultiFernet

from store.batchwriter import BatchWriter, RowKind
from store.calls import CallEnd, CallStart
from store.copyinsert import CopyTarget, copy_insert_ignore
from store.spool import Row

# The row as open_call would have inserted it, for a session that never started it...
_OPEN_COLUMNS = ("call_id", "campaign_id", "lead_id", "amd_status", "recording_path", "started_at")
# ...and its end, the columns an open row takes.
_END_COLUMNS = ("ended_at", *(f.name for f in fields(CallEnd)))
COLUMNS = (*_OPEN_COLUMNS, *_END_COLUMNS)
_TIMES = frozenset({"started_at", "ended_at"})

CALL_ENDS_TARGET = CopyTarget(
    table="calls",
    columns=COLUMNS,
    json_columns=frozenset({"captured"}),
    upsert_key="call_id",
    upsert_columns=_END_COLUMNS,
    upsert_where="calls.ended_at IS NULL",
)


@dataclass(frozen=True)
class CallEndRecord:
    """One call's end; `call` makes the row when the session ended before opening it."""

    call: CallStart
    end: CallEnd
    ended_at: datetime

    def to_row(self) -> tuple[Any, ...]:
        """The COPY tuple in `COLUMNS` order; `captured` as JSON text."""
        call, end = self.call, self.end
        ends = [
            json.dumps(end.captured, ensure_ascii=False) if f.name == "captured"
            else getattr(end, f.name)
            for f in fields(CallEnd)
        ]  # fmt: skip
        return (
            call.call_id, call.campaign_id, call.lead_id, call.amd_status, call.recording_path,
            self.ended_at, self.ended_at, *ends,
        )  # fmt: skip


def _row_to_json(row: tuple[Any, ...]) -> Row:
    data = dict(zip(COLUMNS, row, strict=True))
    for name in _TIMES:
        data[name] = data[name].isoformat()
    return data


def _row_from_json(data: Row) -> tuple[Any, ...]:
    return tuple(datetime.fromisoformat(data[c]) if c in _TIMES else data[c] for c in COLUMNS)


CALL_ENDS = RowKind(
    name="call_ends", target=CALL_ENDS_TARGET, to_json=_row_to_json, from_json=_row_from_json
)


async def end_call(conn: asyncpg.Connection, record: CallEndRecord) -> None:
    """End the call's row now (making it if the session never did)."""
    await copy_insert_ignore(conn, CALL_ENDS_TARGET, [record.to_row()])


def call_end_writer(
    db: asyncpg.Pool | str,
    spool_dir: Path,
    *,
    flush_interval: float = 0.2,
    cipher: MultiFernet | None = None,
) -> BatchWriter:
    """The writer of the ends the call path could not write: `put(record.to_row())` queues,
    its flusher retries them. `cipher` encrypts the spool: summaries and captured fields are
    personal."""
    return BatchWriter(
        db,
        spool_dir,
        CALL_ENDS,
        flush_interval=flush_interval,
        # Shorter than the turn writer's: the dialer writes the attempt's end (and its CRM
        # event, which carries this verdict) as soon as the database is back.
        max_backoff=1.0,
        cipher=cipher,
    )
