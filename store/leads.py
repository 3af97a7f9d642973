"""Lead import: a CSV file into the `leads` table of one campaign.

Every data row ends up in exactly one place: imported, counted as a duplicate (same campaign
and number, in the file or already in the database), or written with its line number and the
reason to `<file>.rejects.csv`. Rows are normalised in a process pool for large files
(phonenumbers is pure Python and dominates the cost) and committed in chunks through
COPY + `INSERT ... ON CONFLICT DO NOTHING`, so re-running an import only adds what is new.
"""

from __future__ import annotations

import asyncio
import csv
import multiprocessing
import os
import time
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import phonenumbers

from store.copyinsert import CopyTarget, copy_insert_ignore
from store.leadrows import (
    PHONE_COLUMNS,
    ChunkResult,
    LeadRow,
    RawRecord,
    Reject,
    RowSpec,
    process_chunk,
    row_spec,
)

LEADS = CopyTarget(
    table="leads",
    columns=("phone_e164", "external_id", "timezone", "fields", "priority", "consent"),
    json_columns=frozenset({"fields"}),
    constants=("campaign_id",),
)
# Files this large are normalised in worker processes; below it, spawning them costs more.
PARALLEL_MIN_BYTES = 1 << 20

ProgressCallback = Callable[[int, int], None]  # (bytes read, file size)


class LeadImportError(Exception):
    """The file cannot be imported: missing, no header or phone column, unknown region, ..."""


class CampaignNotFoundError(LeadImportError):
    pass


@dataclass
class ImportSummary:
    file: str
    campaign: str
    rows: int = 0  # data rows in the file (blank lines are not rows)
    imported: int = 0
    duplicates_in_file: int = 0
    duplicates_in_db: int = 0
    rejected: int = 0
    rejects_file: str | None = None
    reject_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# -- campaigns --------------------------------------------------------------------------------


async def find_campaign(conn: asyncpg.Connection, name: str) -> int:
    campaign_id = await conn.fetchval("SELECT id FROM campaigns WHERE name = $1", name)
    if campaign_id is None:
        raise CampaignNotFoundError(f"no campaign named {name!r}")
    return campaign_id


async def ensure_campaign(conn: asyncpg.Connection, name: str, script_name: str) -> int:
    """The campaign's id, creating it (active, with `script_name`) when it does not exist."""
    campaign_id = await conn.fetchval(
        """INSERT INTO campaigns (name, script_name) VALUES ($1, $2)
           ON CONFLICT (name) DO NOTHING RETURNING id""",
        name,
        script_name,
    )
    return campaign_id if campaign_id is not None else await find_campaign(conn, name)


# -- reading the file -------------------------------------------------------------------------


class _LeadFile:
    """CSV records with their starting line numbers and a flag for non-UTF-8 bytes."""

    def __init__(self, raw: IO[bytes], path: Path) -> None:
        self._raw = raw
        self._path = path
        self.bytes_read = 0
        self._bad_lines: set[int] = set()
        self._line = 0
        self._reader = csv.reader(self._decoded_lines())
        self._last_line = 0

    def _decoded_lines(self) -> Iterator[str]:
        for raw in self._raw:
            self._line += 1
            self.bytes_read += len(raw)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                # Keep the row readable (and writable back byte for byte) but mark it.
                self._bad_lines.add(self._line)
                yield raw.decode("utf-8", "surrogateescape")

    def records(self, limit: int) -> list[RawRecord]:
        """Up to `limit` non-blank records; an empty list at the end of the file."""
        out: list[RawRecord] = []
        for fields in self._guarded():
            first, self._last_line = self._last_line + 1, self._reader.line_num
            if not fields:
                continue
            bad = bool(self._bad_lines) and any(
                n in self._bad_lines for n in range(first, self._last_line + 1)
            )
            out.append((first, fields, bad))
            if len(out) >= limit:
                break
        self._bad_lines = {n for n in self._bad_lines if n > self._last_line}
        return out

    def _guarded(self) -> Iterator[list[str]]:
        try:
            yield from self._reader
        except csv.Error as exc:
            # Only a field over csv.field_size_limit() gets here: not a leads file.
            raise LeadImportError(f"{self._path}:{self._last_line + 1}: {exc}") from exc


def _read_header(lead_file: _LeadFile, path: Path) -> list[str]:
    records = lead_file.records(1)
    if not records:
        raise LeadImportError(f"{path}: the file is empty (expected a header line)")
    line, header, bad = records[0]
    if bad:
        raise LeadImportError(f"{path}:{line}: the header is not UTF-8")
    header[0] = header[0].removeprefix("\ufeff")  # a byte-order mark from spreadsheet exports
    names = [h.strip().lower() for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise LeadImportError(f"{path}:{line}: repeated column names: {', '.join(repeated)}")
    return header


# -- the import -------------------------------------------------------------------------------


class _Rejects:
    """`FILE.rejects.csv`: line, reason, then the row as it was (bytes preserved)."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self._header = header
        self._file: IO[str] | None = None
        self.count = 0
        self.reasons: Counter[str] = Counter()

    def add(self, reject: Reject) -> None:
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8", errors="surrogateescape", newline="")
            csv.writer(self._file).writerow(["line", "reason", *self._header])
        csv.writer(self._file).writerow([reject.line, reject.reason, *reject.fields])
        self.count += 1
        self.reasons[reject.category] += 1

    def finish(self) -> str | None:
        if self._file is None:
            # No rejects this time: a file left by an earlier run of this input is stale.
            self.path.unlink(missing_ok=True)
            return None
        self._file.close()
        return str(self.path)


@dataclass
class _Sink:
    """Deduplicates the normalised rows and commits them in chunks."""

    conn: asyncpg.Connection
    campaign_id: int
    rejects: _Rejects
    summary: ImportSummary
    copy_rows: int
    _phones: set[str] = field(default_factory=set)
    _external_ids: dict[str, int] = field(default_factory=dict)
    _pending: list[tuple[str, str | None, str, str, int, bool]] = field(default_factory=list)

    async def take(self, records: list[RawRecord], result: ChunkResult) -> None:
        # Rejects from the worker and duplicates found here are merged back in line order.
        worker_rejects = deque(result.rejects)
        lines = [r[0] for r in records]
        for lead in result.leads:
            while worker_rejects and worker_rejects[0].line < lead[0]:
                self.rejects.add(worker_rejects.popleft())
            self._accept(lead, records[bisect_left(lines, lead[0])][1])
        for reject in worker_rejects:
            self.rejects.add(reject)
        if len(self._pending) >= self.copy_rows:
            await self.commit()

    def _accept(self, lead: LeadRow, fields: list[str]) -> None:
        line, phone, ext = lead[0], lead[1], lead[2]
        if phone in self._phones:
            self.summary.duplicates_in_file += 1
            return
        if ext is not None:
            first = self._external_ids.setdefault(ext, line)
            if first != line:
                reason = f"external_id {ext!r} is already used on line {first}"
                self.rejects.add(Reject(line, "duplicate_external_id", reason, fields))
                return
        self._phones.add(phone)
        self._pending.append(lead[1:])

    async def commit(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        new = await copy_insert_ignore(self.conn, LEADS, rows, (self.campaign_id,))
        self.summary.imported += new
        self.summary.duplicates_in_db += len(rows) - new


def rejects_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejects.csv")


@contextmanager
def _executor(workers: int) -> Iterator[Executor | None]:
    if workers <= 1:
        yield None  # the event loop's default thread pool
        return
    # Not fork: this process runs an event loop, threads and asyncpg. A fork server starts
    # once with the row code imported, and workers fork from it in milliseconds.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "store.leadrows"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise LeadImportError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise LeadImportError(f"{path}: is a directory, not a CSV file") from exc
    except OSError as exc:
        raise LeadImportError(f"{path}: cannot read ({exc.strerror})") from exc


async def import_leads(
    conn: asyncpg.Connection,
    path: Path,
    *,
    campaign: str,
    region: str,
    workers: int | None = None,
    chunk_rows: int = 4_000,
    copy_rows: int = 20_000,
    progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import `path` into `campaign` (which must exist); numbers without +CC read in `region`.

    `workers`: processes normalising rows; None picks by file size and CPU count.
    """
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise LeadImportError(f"unknown region {region!r} (expected a code like US, GB, CN)")
    started = time.perf_counter()
    with _open(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        lead_file = _LeadFile(raw, path)
        header = await asyncio.to_thread(_read_header, lead_file, path)
        spec = row_spec(header, region.upper())
        if spec is None:
            raise LeadImportError(
                f"{path}: no phone column (expected one of: {', '.join(PHONE_COLUMNS)})"
            )
        campaign_id = await find_campaign(conn, campaign)
        if workers is None:
            workers = (os.cpu_count() or 1) if size >= PARALLEL_MIN_BYTES else 1
        summary = ImportSummary(file=str(path), campaign=campaign)
        rejects = _Rejects(rejects_path(path), header)
        sink = _Sink(conn, campaign_id, rejects, summary, copy_rows)
        try:
            with _executor(workers) as executor:
                await _pipeline(
                    lead_file, spec, executor, workers, chunk_rows, sink, progress, size
                )
            await sink.commit()
        finally:
            summary.rejects_file = rejects.finish()
    summary.rejected = rejects.count
    summary.reject_reasons = dict(rejects.reasons)
    summary.seconds = time.perf_counter() - started
    return summary


async def _pipeline(
    lead_file: _LeadFile,
    spec: RowSpec,
    executor: Executor | None,
    workers: int,
    chunk_rows: int,
    sink: _Sink,
    progress: ProgressCallback | None,
    size: int,
) -> None:
    """Read chunks, normalise up to `workers + 1` of them at once, take results in order."""
    loop = asyncio.get_running_loop()
    in_flight: deque[tuple[list[RawRecord], asyncio.Future[ChunkResult]]] = deque()
    try:
        while True:
            records = await asyncio.to_thread(lead_file.records, chunk_rows)
            sink.summary.rows += len(records)
            if progress is not None:
                progress(lead_file.bytes_read, size)
            if records:
                job = loop.run_in_executor(executor, process_chunk, spec, records)
                in_flight.append((records, job))
            while in_flight and (len(in_flight) > workers or not records):
                done_records, job = in_flight.popleft()
                await sink.take(done_records, await job)
            if not records:
                return
    finally:
        # After a failure, chunks still in flight are abandoned, not left unobserved.
        for _, job in in_flight:
            job.cancel()
