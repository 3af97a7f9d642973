"""How a call the bot answered ended: its `calls` row's end, kept through a database outage
(and the call's opt-out, kept the same way: `KeptWrites`).

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
from store.dnc import OPT_OUT_TARGET
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


OPT_OUTS = RowKind(
    name="opt_outs",
    target=OPT_OUT_TARGET,
    to_json=lambda row: dict(zip(OPT_OUT_TARGET.columns, row, strict=True)),
    from_json=lambda data: tuple(data[c] for c in OPT_OUT_TARGET.columns),
)


@dataclass
class KeptWrites:
    """The batch writers that keep the call path's writes while the database is away: call
    ends, and opt-outs (a "stop calling me" must not be lost to an outage either). Rows are
    written when it is back; `cipher` encrypts the spool (numbers, summaries, captured
    fields are personal)."""

    ends: BatchWriter
    opt_outs: BatchWriter

    @classmethod
    def create(
        cls,
        db: asyncpg.Pool | str,
        spool_dir: Path,
        *,
        flush_interval: float = 0.2,
        cipher: MultiFernet | None = None,
    ) -> KeptWrites:
        def writer(kind: RowKind) -> BatchWriter:
            # A short backoff: the dialer writes the attempt's end (and its CRM event, which
            # carries the call's verdict) as soon as the database is back.
            return BatchWriter(
                db, spool_dir, kind, flush_interval=flush_interval, max_backoff=1.0, cipher=cipher
            )

        return cls(ends=writer(CALL_ENDS), opt_outs=writer(OPT_OUTS))

    async def start(self) -> None:
        await self.ends.start()
        await self.opt_outs.start()

    async def close(self) -> None:
        await self.ends.close()
        await self.opt_outs.close()

    async def __aenter__(self) -> KeptWrites:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
