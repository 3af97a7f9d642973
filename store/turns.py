"""The turn log: one row per bot prompt or customer utterance, written in the background.

The call path calls `TurnWriter.write(record)`, which validates and queues without awaiting;
batches reach the `turns` table by COPY, or the on-disk spool while PostgreSQL is away.
(call_id, seq) is the key, so a turn replayed after an outage is stored once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Integral
from pathlib import Path
from typing import Any, Literal, get_args

import asyncpg
from cryptography.fernet import MultiFernet

from store.batchwriter import BatchWriter, RowKind, copy_into
from store.copyinsert import CopyTarget
from store.db import execute_count
from store.metrics import SPOOL_DEPTH_ROWS, TURNS_WRITTEN

Speaker = Literal["bot", "customer", "system"]
SPEAKERS = frozenset(get_args(Speaker))
_INT4_MAX = 2**31 - 1

COLUMNS = (
    "call_id", "seq", "speaker", "node", "text", "asr_confidence", "intent",
    "intent_confidence", "entities", "emotion", "agitation", "barge_in", "dtmf", "timings",
    "created_at",
)  # fmt: skip
JSON_COLUMNS = frozenset({"entities", "emotion", "timings"})


# One encoder for every turn: json.dumps() with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _check_text(name: str, value: str) -> None:
    # What PostgreSQL would refuse must fail in write(), not later in the background flusher.
    if not isinstance(value, str):
        raise ValueError(f"turn {name} must be text, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"turn {name} contains a NUL character (PostgreSQL refuses it)")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"turn {name} is not valid Unicode ({exc.reason})") from exc


def _json(name: str, value: dict[str, Any]) -> str:
    if not value:
        return "{}"
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"turn {name} is not JSON-serialisable: {exc}") from exc
    if "\\u0000" in text:
        raise ValueError(f"turn {name} contains a NUL character (jsonb refuses it)")
    _check_text(name, text)
    return text


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One row of the `turns` table."""

    call_id: str
    seq: int
    speaker: Speaker
    node: str | None = None
    text: str = ""
    asr_confidence: float | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    entities: dict[str, Any] = field(default_factory=dict)
    emotion: dict[str, float] = field(default_factory=dict)
    agitation: float | None = None
    barge_in: bool = False
    dtmf: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Set when the turn happens, not when it reaches the table (which may be after an outage).
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not self.call_id:
            raise ValueError("turn call_id is empty")
        if not isinstance(self.seq, Integral) or not 0 <= self.seq <= _INT4_MAX:
            raise ValueError(f"turn seq {self.seq!r} is outside 0..{_INT4_MAX}")
        if self.speaker not in SPEAKERS:
            raise ValueError(f"turn speaker {self.speaker!r} is not one of {sorted(SPEAKERS)}")
        if self.created_at.tzinfo is None:
            raise ValueError("turn created_at must be timezone-aware")
        for name in ("call_id", "node", "text", "intent", "dtmf"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)

    def to_row(self) -> tuple[Any, ...]:
        """The COPY tuple in `COLUMNS` order: plain Python types, json columns as text.

        Raises ValueError for anything the table would refuse: a batch that PostgreSQL
        rejects would otherwise wait in the spool for ever.
        """
        return (
            self.call_id, int(self.seq), self.speaker, self.node, self.text,
            _real("asr_confidence", self.asr_confidence), self.intent,
            _real("intent_confidence", self.intent_confidence),
            _json("entities", self.entities), _json("emotion", self.emotion),
            _real("agitation", self.agitation), bool(self.barge_in), self.dtmf,
            _json("timings", self.timings), self.created_at,
        )  # fmt: skip


def _real(name: str, value: float | None) -> float | None:
    # float() also takes numpy scalars, which asyncpg's binary COPY would not.
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"turn {name} is not a number: {value!r}") from exc


TURNS = RowKind.of_columns(
    "turns",
    copy_into(CopyTarget(table="turns", columns=COLUMNS, json_columns=JSON_COLUMNS)),
    COLUMNS,
    times=frozenset({"created_at"}),
)


class TurnWriter(BatchWriter):
    """`await start()`, then `write()` from the call path; `await close()` drains."""

    def __init__(
        self,
        db: asyncpg.Pool | str,
        spool_dir: Path,
        *,
        flush_interval: float = 0.2,
        batch_rows: int = 500,
        max_queue: int = 20_000,
        write_timeout: float = 10.0,
        max_backoff: float = 5.0,
        cipher: MultiFernet | None = None,
    ) -> None:
        """`cipher` (store.spool.spool_cipher) encrypts the rows the spool holds on disk."""
        super().__init__(
            db,
            spool_dir,
            TURNS,
            flush_interval=flush_interval,
            batch_rows=batch_rows,
            max_queue=max_queue,
            write_timeout=write_timeout,
            max_backoff=max_backoff,
            cipher=cipher,
            on_written=TURNS_WRITTEN.inc,
            on_spool_depth=SPOOL_DEPTH_ROWS.set,
        )

    def write(self, record: TurnRecord) -> None:
        """Queue a turn; raises ValueError at once for a turn the table would refuse."""
        self.put(record.to_row())


# Turn columns holding what the person said or how they sounded; the rest (speaker, node,
# intent, timings) keeps counting in the script statistics.
TURN_CONTENT_SCRUB = """text = '', dtmf = NULL, entities = '{}'::jsonb, emotion = '{}'::jsonb,
    agitation = NULL"""

# Retention's cascade when calls are deleted (turns have no foreign key: the spool writes them
# first), run in the same statement as the calls' DELETE that yields `gone`.
DELETE_TURNS_OF_GONE_CALLS = "DELETE FROM turns t USING gone WHERE t.call_id = gone.call_id"


async def scrub_turns_of_calls(conn: asyncpg.Connection, call_ids: list[str]) -> int:
    """Erasure: the calls' turns keep their statistics, not what the person said."""
    return await execute_count(
        conn,
        f"UPDATE turns SET {TURN_CONTENT_SCRUB} WHERE call_id = ANY($1::text[])",
        call_ids,
    )


async def insert_past_turns(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """The history simulator's turns: (call_id, seq, speaker, node, intent, agitation, timings,
    entities, created_at) each."""
    await conn.executemany(
        """INSERT INTO turns (call_id, seq, speaker, node, intent, agitation, timings, entities,
                              created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        rows,
    )
