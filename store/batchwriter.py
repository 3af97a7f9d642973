"""Batched, idempotent writes that survive a database outage by spooling to disk.

`BatchWriter.put()` never blocks and never drops: rows go to a bounded in-memory queue, and
past its bound to the spool. One background task writes batches (a COPY for most kinds) every
`flush_interval` or `batch_rows` rows; until then each queued row is also in the journal
(store/journal.py), so a killed process loses none of them. When PostgreSQL fails, batches go
to the spool until a replay, tried with exponential backoff, succeeds; segments replay oldest
first. Writes are idempotent (`ON CONFLICT DO NOTHING` on the table's key), so a replayed row
is never stored twice. Rows are identified by that key, not by insertion order: after an
outage, fresh rows may land before spooled ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import MultiFernet

from store.copyinsert import CopyTarget, copy_insert_ignore
from store.db import create_pool
from store.journal import Journal
from store.settings import DatabaseSettings
from store.spool import Row, Spool

log = logging.getLogger(__name__)

# At most this many batches' worth of queued rows per write (one transaction).
BACKLOG_BATCHES = 10


# Writes one batch in one transaction, idempotently: (connection, rows, timeout in seconds)
# -> how many rows were new.
BatchWrite = Callable[[asyncpg.Connection, Sequence[tuple[Any, ...]], float], Awaitable[int]]


def copy_into(target: CopyTarget) -> BatchWrite:
    """The usual batch write: COPY, then INSERT ... ON CONFLICT (store/copyinsert.py)."""

    async def write(
        conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]], timeout_s: float
    ) -> int:
        return await copy_insert_ignore(conn, target, rows, timeout_s=timeout_s)

    return write


@dataclass(frozen=True)
class RowKind:
    """How one kind of row is stored: its batch write and its spool (JSON object) form."""

    name: str
    write: BatchWrite
    to_json: Callable[[tuple[Any, ...]], Row]
    from_json: Callable[[Row], tuple[Any, ...]]

    @classmethod
    def of_columns(
        cls,
        name: str,
        write: BatchWrite,
        columns: Sequence[str],
        times: frozenset[str] = frozenset(),
    ) -> RowKind:
        """Rows that are tuples in `columns` order, spooled as an object by column name; the
        `times` columns (datetimes) as ISO text."""

        def to_json(row: tuple[Any, ...]) -> Row:
            data = dict(zip(columns, row, strict=True))
            for column in times:
                data[column] = data[column].isoformat()
            return data

        def from_json(data: Row) -> tuple[Any, ...]:
            return tuple(
                datetime.fromisoformat(data[c]) if c in times else data[c] for c in columns
            )

        return cls(name, write, to_json, from_json)


@dataclass(frozen=True)
class WriterStats:
    queued: int
    spool_depth: int
    rows_written: int
    rows_duplicate: int
    rows_spooled: int
    rows_replayed: int
    overflow_spills: int
    db_errors: int  # failed writes and replays since start
    db_up: bool


@dataclass
class _Backoff:
    initial: float
    maximum: float
    failures: int = 0
    next_try: float = 0.0  # time.monotonic() of the next replay attempt

    def failed(self) -> float:
        self.failures += 1
        delay = min(self.maximum, self.initial * 2 ** (self.failures - 1))
        self.next_try = time.monotonic() + delay
        return delay

    def reset(self) -> None:
        self.failures = 0
        self.next_try = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_try


class BatchWriter:
    """Queue -> batches -> PostgreSQL, with the spool as the fallback."""

    def __init__(
        self,
        db: asyncpg.Pool | str,
        spool_dir: Path,
        kind: RowKind,
        *,
        flush_interval: float = 0.2,
        batch_rows: int = 500,
        max_queue: int = 20_000,
        write_timeout: float = 10.0,
        max_backoff: float = 5.0,
        segment_rows: int = 10_000,
        cipher: MultiFernet | None = None,
        on_written: Callable[[int], None] | None = None,
        on_spool_depth: Callable[[int], None] | None = None,
    ) -> None:
        """`on_written(new_rows)` and `on_spool_depth(rows)` feed metrics (e.g. Prometheus)."""
        if batch_rows < 1 or max_queue < batch_rows or flush_interval <= 0:
            raise ValueError("need batch_rows >= 1, max_queue >= batch_rows, flush_interval > 0")
        self._pool = db if isinstance(db, asyncpg.Pool) else None
        self._url = db if isinstance(db, str) else None
        self._kind = kind
        self._spool = Spool(spool_dir, kind.name, segment_rows=segment_rows, cipher=cipher)
        self._journal = Journal(self._spool)
        self._flush_interval = flush_interval
        self._batch_rows = batch_rows
        self._max_queue = max_queue
        self._timeout = write_timeout
        self._backoff = _Backoff(initial=flush_interval, maximum=max_backoff)
        self._queue: deque[tuple[Any, ...]] = deque()
        # Rows that arrived while the queue was full; spooled in batches, not one fsync each.
        self._overflow: list[tuple[Any, ...]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._down = False
        self._spool_full = False  # the spool's disk refused rows; they wait in memory
        self._task: asyncio.Task[None] | None = None
        self._written = self._duplicate = self._spooled = self._replayed = 0
        self._overflow_spills = self._db_errors = 0
        self._on_written = on_written
        self._on_spool_depth = on_spool_depth

    # -- public ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (replaying what a crashed process left) and start flushing."""
        await asyncio.to_thread(self._spool.open)
        await asyncio.to_thread(self._recover_journal)
        self._depth_changed()
        self._task = asyncio.create_task(self._run(), name=f"{self._kind.name}-writer")

    async def __aenter__(self) -> BatchWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def put(self, row: tuple[Any, ...]) -> None:
        """Queue one row; never blocks, never drops."""
        if self._task is None or self._closing:
            raise RuntimeError(f"{self._kind.name} writer is not running")
        if self._task.done():
            # The flusher died (the spool's disk failed): refuse rather than queue forever.
            cause = None if self._task.cancelled() else self._task.exception()
            raise RuntimeError(f"{self._kind.name} writer stopped") from cause
        self._journal.append(self._kind.to_json(row))
        if len(self._queue) < self._max_queue:
            self._queue.append(row)
            if len(self._queue) >= self._batch_rows:
                self._wakeup.set()
            return
        self._overflow.append(row)
        if len(self._overflow) >= self._batch_rows:
            self._spill_overflow()

    async def close(self) -> None:
        """Drain every queued row to PostgreSQL or, if it is down, to the spool."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        try:
            await self._task
            self._journal.close()  # drained: every queued row is in the table or the spool
        finally:
            self._task = None
            if self._url is not None and self._pool is not None:
                await self._pool.close()
                self._pool = None
            await asyncio.to_thread(self._spool.close)

    @property
    def spool_depth(self) -> int:
        return self._spool.depth

    def stats(self) -> WriterStats:
        return WriterStats(
            queued=len(self._queue) + len(self._overflow),
            spool_depth=self._spool.depth,
            rows_written=self._written,
            rows_duplicate=self._duplicate,
            rows_spooled=self._spooled,
            rows_replayed=self._replayed,
            overflow_spills=self._overflow_spills,
            db_errors=self._db_errors,
            db_up=not self._down,
        )

    # -- the flusher ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._closing and len(self._queue) < self._batch_rows:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            batch = self._take_batch()
            # The journal file ends where the queue did: once this batch is safe, it can go.
            sealed = None if self._queue else self._journal.seal()
            if await self._flush(batch) and sealed is not None:
                await asyncio.to_thread(self._journal.drop_through, sealed)
            if self._closing and not self._queue and not self._overflow:
                if self._spool.depth and self._down:
                    await self._replay()  # one last try, backoff or not: the DB may be back
                return

    def _take_batch(self) -> list[tuple[Any, ...]]:
        # A backlog goes out in bigger transactions: fewer commits when writers outpace us.
        count = min(self._batch_rows * BACKLOG_BATCHES, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    async def _flush(self, batch: list[tuple[Any, ...]]) -> bool:
        """True when the batch and the overflow are in the table or the spool."""
        spool = batch and (self._down or not await self._try_write(batch))
        if spool and not await self._to_spool(batch):
            self._queue.extendleft(reversed(batch))  # kept, in order, for the next flush
            return False
        if self._overflow:
            overflow, self._overflow = self._overflow, []
            if not await self._to_spool(overflow):
                self._overflow = overflow + self._overflow
                return False
        # Replaying doubles as the probe while the database is down.
        if self._spool.depth and (not self._down or self._backoff.due()):
            await self._replay()
        return True

    def _recover_journal(self) -> None:
        rows = self._journal.recover()
        try:
            self._spool.append(rows)  # replayed like any spooled row, idempotently
        except OSError as exc:
            # The spool's disk is full: they wait in the queue, and in their journal files
            # until the flush that stores them.
            self._queue.extend(self._kind.from_json(r) for r in rows)
            self._spool_refused(exc, len(rows))
            return
        self._journal.discard_recovered()
        if rows:
            log.info(
                "%s: %d rows a stopped process had queued are in the spool to replay",
                self._kind.name,
                len(rows),
            )

    async def _try_write(self, rows: Sequence[tuple[Any, ...]]) -> bool:
        try:
            pool = await self._get_pool()
            async with pool.acquire(timeout=self._timeout) as conn:
                new = await self._kind.write(conn, rows, self._timeout)
        except Exception as exc:
            # Anything on the way to PostgreSQL: sockets, timeouts, a closed pool, server errors
            # (shutdown, disk full, no table before `outdial db migrate`), and asyncpg's own
            # protocol errors when the server vanishes mid-write. Rows are validated in put()'s
            # callers, so the batch itself is sound: it waits in the spool and is retried.
            self._mark_down(exc)
            return False
        self._written += new
        self._duplicate += len(rows) - new
        if self._on_written is not None:
            self._on_written(new)
        if self._down:
            self._down = False
            self._backoff.reset()
            log.info("%s: database reachable again", self._kind.name)
        return True

    async def _replay(self) -> None:
        await asyncio.to_thread(self._spool.seal)
        for segment in await asyncio.to_thread(self._spool.sealed_segments):
            rows = await asyncio.to_thread(self._spool.read, segment)
            if rows and not await self._try_write([self._kind.from_json(r) for r in rows]):
                return
            await asyncio.to_thread(self._spool.remove, segment)
            self._replayed += len(rows)
            self._depth_changed()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            assert self._url is not None
            # Created on first use so a writer can start (and spool) while the DB is down.
            self._pool = await create_pool(
                self._url, DatabaseSettings(pool_min=1, pool_max=2, connect_timeout_s=self._timeout)
            )
        return self._pool

    def _mark_down(self, exc: BaseException) -> None:
        self._db_errors += 1
        delay = self._backoff.failed()
        if not self._down:
            log.warning(
                "%s: database write failed (%s: %s); spooling to %s, retrying in %.2fs",
                self._kind.name,
                type(exc).__name__,
                exc,
                self._spool.directory,
                delay,
            )
        self._down = True

    async def _to_spool(self, rows: list[tuple[Any, ...]]) -> bool:
        """False when the spool's disk refuses them (full, a size limit): the caller keeps
        them in memory and the next flush tries again. The flusher dying there made every
        later write fail until the process restarted (bench/chaos.py, issue 17)."""
        encoded = [self._kind.to_json(r) for r in rows]
        try:
            await asyncio.to_thread(self._spool.append, encoded)
        except OSError as exc:
            self._spool_refused(exc, len(rows))
            return False
        self._spool_full = False
        self._spooled += len(rows)
        self._depth_changed()
        return True

    def _spool_refused(self, exc: OSError, rows: int) -> None:
        if not self._spool_full:
            log.warning(
                "%s: the spool in %s cannot take %d rows (%s); keeping them in memory and "
                "retrying: free space there",
                self._kind.name,
                self._spool.directory,
                rows,
                exc.strerror or exc,
            )
        self._spool_full = True

    def _spill_overflow(self) -> None:
        # Called from put(): one synchronous fsync per batch_rows rows keeps put() non-blocking
        # in the sense that matters (no await) while bounding memory under overload. A full
        # disk leaves the rows in memory: the flusher retries them.
        try:
            self._spool.append([self._kind.to_json(r) for r in self._overflow])
        except OSError as exc:
            self._spool_refused(exc, len(self._overflow))
            return
        self._spool_full = False
        self._spooled += len(self._overflow)
        self._overflow = []
        self._overflow_spills += 1
        self._depth_changed()

    def _depth_changed(self) -> None:
        if self._on_spool_depth is not None:
            self._on_spool_depth(self._spool.depth)
