"""The call path's writes kept through a database outage: a call's end and a customer's
opt-out. The call path writes them at once; when the database is away (store.db
.database_unreachable) it hands the row to one of these batch writers (queued, journaled,
spooled, replayed: store/batchwriter.py), which write it when the database is back. Both
writes are idempotent (store.calls.CALL_ENDS, store.dnc.OPT_OUTS), so a replay stores nothing
twice. bench/chaos.py lost 24 call outcomes with a traceback each before (issue 17).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg
from cryptography.fernet import MultiFernet

from store.batchwriter import BatchWriter, RowKind
from store.calls import CALL_ENDS
from store.dnc import OPT_OUTS


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
