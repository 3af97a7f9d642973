"""The call path's writes kept through a database outage: a call's end, a customer's opt-out,
the call's compliance events and a lead paused by the call. The call path writes them at
once; when the database is away (store.db.database_unreachable) it hands the row to one of
these batch writers (queued, journaled, spooled, replayed: store/batchwriter.py), which write
it when the database is back. Every write is idempotent (store.calls.CALL_ENDS,
store.dnc.OPT_OUTS, store.compliance_events.CALL_EVENTS keyed per call and event,
store.pauses.LEAD_PAUSES keyed by its outbox event), so a replay stores nothing twice.
bench/chaos.py lost 24 call outcomes with a traceback each before (issue 17).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import asyncpg
from cryptography.fernet import MultiFernet

from store.batchwriter import BatchWriter, RowKind
from store.calls import CALL_ENDS
from store.compliance_events import CALL_EVENTS
from store.dnc import OPT_OUTS
from store.pauses import LEAD_PAUSES


@dataclass
class KeptWrites:
    """The batch writers that keep the call path's writes while the database is away: call
    ends, opt-outs (a "stop calling me" must not be lost to an outage either), compliance
    events (the proof of what the checks found) and paused leads (a disputed debt must not be
    called again). Rows are written when it is back; `cipher` encrypts the spool (numbers,
    summaries, captured fields are personal)."""

    ends: BatchWriter
    opt_outs: BatchWriter
    compliance: BatchWriter
    pauses: BatchWriter

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

        return cls(
            ends=writer(CALL_ENDS),
            opt_outs=writer(OPT_OUTS),
            compliance=writer(CALL_EVENTS),
            pauses=writer(LEAD_PAUSES),
        )

    def _writers(self) -> list[BatchWriter]:
        return [getattr(self, f.name) for f in fields(self)]

    async def start(self) -> None:
        for writer in self._writers():
            await writer.start()

    async def close(self) -> None:
        for writer in self._writers():
            await writer.close()

    async def __aenter__(self) -> KeptWrites:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
