"""Lead import: a CSV file into the `leads` table of one campaign.

Every data row ends up in exactly one place: imported, or written with its line number and the
reason to `<file>.rejects.csv` (a duplicate, in the file or already in the campaign, is written
there too, with reason `duplicate_in_file` or `duplicate_in_campaign`, and counted apart).
Chunks of the file's bytes are decoded, parsed and normalised in a process pool for large
files (phonenumbers is pure Python and dominates the cost) and committed in batches: a first
import COPYs straight into `leads`; once the campaign has leads, through COPY + `INSERT ... ON
CONFLICT DO NOTHING RETURNING`, so re-running an import only adds what is new and names the rest.
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import dataclasses
import io
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg

from store.copyinsert import CopyTarget, copy_text_insert_ignore
from store.db import execute_count
from store.leadrows import (
    COPY_COLUMNS,
    PHONE_COLUMNS,
    ChunkResult,
    LeadRow,
    RawRecord,
    RecordError,
    Reject,
    RowSpec,
    column_key,
    known_region,
    process_chunk,
    read_records,
    row_spec,
    sniff_delimiter,
)

# The staging table and INSERT for batches that may meet leads already stored.
LEADS = CopyTarget(
    table="leads",
    columns=COPY_COLUMNS,
    json_columns=frozenset({"fields"}),
    constants=("campaign_id",),
    key="phone_e164",
)
# Files this large are normalised in worker processes; below it, spawning them costs more.
PARALLEL_MIN_BYTES = 1 << 20
# The start of the file the delimiter is told from.
SNIFF_BYTES = 64 * 1024

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
    warnings: list[str] = field(default_factory=list)  # about the file as a whole

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# -- campaigns --------------------------------------------------------------------------------


async def find_campaign(conn: asyncpg.Connection, name: str) -> int:
    campaign_id = await conn.fetchval("SELECT id FROM campaigns WHERE name = $1", name)
    if campaign_id is None:
        raise CampaignNotFoundError(f"no campaign named {name!r}")
    return campaign_id


# -- reading the file -------------------------------------------------------------------------


class _Chunker:
    """The file's bytes, cut only between CSV records, with line numbers and bytes read.

    The workers decode and parse the CSV themselves; here a line is only looked into when it
    holds a quote, which may open a field running over the next lines.
    """

    def __init__(self, raw: IO[bytes], delimiter: str) -> None:
        self._lines = iter(raw)  # split on b"\n" only, which csv.reader expects
        self.delimiter = delimiter
        self.lines_read = 0
        self.bytes_read = 0

    def chunk(self, max_lines: int) -> tuple[int, bytes]:
        """The first line number and `max_lines` lines or more of whole records (b"" at the end).

        With `max_lines` 1, exactly one record.
        """
        first = self.lines_read + 1
        lines: list[bytes] = []
        for line in self._lines:
            self._took(line)
            lines.append(line)
            if b'"' in line:
                lines.extend(self._rest_of_record(first + len(lines) - 1, line))
            if len(lines) >= max_lines:
                break
        return first, b"".join(lines)

    def _took(self, line: bytes) -> None:
        self.lines_read += 1
        self.bytes_read += len(line)

    def _rest_of_record(self, line_no: int, line: bytes) -> list[bytes]:
        # csv.reader pulls lines only until the record is complete: what it pulled is the rest.
        rest: list[bytes] = []

        def feed() -> Iterator[str]:
            yield line.decode("utf-8", "surrogateescape")
            for more in self._lines:
                self._took(more)
                rest.append(more)
                yield more.decode("utf-8", "surrogateescape")

        try:
            next(csv.reader(feed(), delimiter=self.delimiter), None)
        except csv.Error as exc:
            raise RecordError(line_no, str(exc)) from exc
        return rest


def _read_header(chunker: _Chunker, path: Path) -> list[str]:
    records: list[RawRecord] = []
    while not records:  # blank lines before the header are no records
        first, data = chunker.chunk(1)
        if not data:
            raise LeadImportError(f"{path}: the file is empty (expected a header line)")
        records = list(read_records(io.BytesIO(data), first, chunker.delimiter))
    line, header, bad = records[0]
    if bad:
        raise LeadImportError(f"{path}:{line}: the header is not UTF-8")
    header[0] = header[0].removeprefix("\ufeff")  # a byte-order mark from spreadsheet exports
    names = [column_key(h) for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise LeadImportError(f"{path}:{line}: repeated column names: {', '.join(repeated)}")
    return header


def _sniff(raw: IO[bytes]) -> str:
    """The file's delimiter, from its first whole lines (the file is left at its start)."""
    sample = raw.read(SNIFF_BYTES)
    raw.seek(0)
    text = sample.decode("utf-8", "replace").removeprefix("\ufeff")
    whole_lines = text[: text.rfind("\n") + 1] or text
    return sniff_delimiter(whole_lines)


def _fields_at(first_line: int, data: bytes, line: int, delimiter: str) -> list[str]:
    """The fields of the record starting at `line` of a chunk (to write it to the rejects)."""
    lines = list(io.BytesIO(data))[line - first_line :]
    return next(read_records(lines, line, delimiter))[1]


# -- the import -------------------------------------------------------------------------------


class _Rejects:
    """`FILE.rejects.csv`: line, reason (`category: sentence`), then the row as it was (bytes
    preserved)."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self._header = header
        self._file: IO[str] | None = None
        self.count = 0
        self.reasons: Counter[str] = Counter()

    def add(self, reject: Reject) -> None:
        """A refused row: written and counted as rejected."""
        self.write(reject)
        self.count += 1
        self.reasons[reject.category] += 1

    def write(self, reject: Reject) -> None:
        """A row written to the file only (a duplicate: counted apart, not as rejected)."""
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8", errors="surrogateescape", newline="")
            csv.writer(self._file).writerow(["line", "reason", *self._header])
        reason = f"{reject.category}: {reject.reason}"
        csv.writer(self._file).writerow([reject.line, reason, *reject.fields])

    def finish(self) -> str | None:
        if self._file is None:
            # No rejects this time: a file left by an earlier run of this input is stale.
            self.path.unlink(missing_ok=True)
            return None
        self._file.close()
        return str(self.path)


@dataclass
class _Sink:
    """Deduplicates the normalised rows and writes them in batches.

    One batch at a time is written in the background, so normalising goes on meanwhile.
    """

    conn: asyncpg.Connection
    campaign_id: int
    rejects: _Rejects
    summary: ImportSummary
    copy_rows: int
    # COPY straight into `leads` while no batch has met a lead already stored: true when the
    # campaign had no leads at the start (a first import), the common and costly case.
    direct: bool
    delimiter: str  # of the file, to read a row back for the rejects file
    _phones: dict[str, int] = field(default_factory=dict)  # number -> line it was first on
    _external_ids: dict[str, int] = field(default_factory=dict)
    _pending: list[str] = field(default_factory=list)  # COPY text lines
    _pending_lines: list[tuple[int, str]] = field(default_factory=list)  # (line, number)
    _chunks: _ChunkIndex = field(init=False)
    _writing: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._chunks = _ChunkIndex(self.delimiter)

    async def take(self, first_line: int, data: bytes, result: ChunkResult) -> None:
        # Rejects from the worker and duplicates found here are merged back in line order.
        self._chunks.add(first_line, data)
        worker_rejects = deque(result.rejects)
        for lead in result.leads:
            while worker_rejects and worker_rejects[0].line < lead[0]:
                self.rejects.add(worker_rejects.popleft())
            self._accept(lead, first_line, data)
        for reject in worker_rejects:
            self.rejects.add(reject)
        if len(self._pending) >= self.copy_rows:
            await self.settle()
            batch = self._take_batch()
            self._writing = asyncio.create_task(self._write(*batch))

    def _take_batch(self) -> tuple[list[str], list[tuple[int, str]], _ChunkIndex]:
        batch = (self._pending, self._pending_lines, self._chunks)
        self._pending, self._pending_lines, self._chunks = [], [], _ChunkIndex(self.delimiter)
        return batch

    def _accept(self, lead: LeadRow, first_line: int, data: bytes) -> None:
        line, phone, ext, text = lead
        first = self._phones.get(phone)
        if first is not None:
            self.summary.duplicates_in_file += 1
            reason = f"the number is already on line {first}"
            fields = _fields_at(first_line, data, line, self.delimiter)
            self.rejects.write(Reject(line, "duplicate_in_file", reason, fields))
            return
        if ext is not None:
            first = self._external_ids.setdefault(ext, line)
            if first != line:
                reason = f"external_id {ext!r} is already used on line {first}"
                fields = _fields_at(first_line, data, line, self.delimiter)
                self.rejects.add(Reject(line, "duplicate_external_id", reason, fields))
                return
        self._phones[phone] = line
        self._pending.append(text)
        self._pending_lines.append((line, phone))

    async def settle(self) -> None:
        """Wait for the batch being written, if any."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def finish(self) -> None:
        await self.settle()
        if self._pending:
            await self._write(*self._take_batch())

    async def _write(
        self, lines: list[str], numbered: list[tuple[int, str]], chunks: _ChunkIndex
    ) -> None:
        if self.direct:
            try:
                self.summary.imported += await _copy_new(self.conn, self.campaign_id, lines)
                return
            except asyncpg.UniqueViolationError:
                # Leads were stored meanwhile (another import, the API): skip what exists.
                self.direct = False
        data = _copy_data(lines)
        new = await copy_text_insert_ignore(self.conn, LEADS, data, (self.campaign_id,))
        self.summary.imported += len(new)
        self.summary.duplicates_in_db += len(lines) - len(new)
        if len(new) < len(lines):
            inserted = set(new)
            for line, phone in numbered:
                if phone not in inserted:
                    reason = "the number is already in this campaign"
                    reject = Reject(line, "duplicate_in_campaign", reason, chunks.fields_at(line))
                    self.rejects.write(reject)


class _ChunkIndex:
    """The chunks of one batch, to read back the fields of a row by its line number."""

    def __init__(self, delimiter: str) -> None:
        self._delimiter = delimiter
        self._firsts: list[int] = []
        self._data: list[bytes] = []

    def add(self, first_line: int, data: bytes) -> None:
        self._firsts.append(first_line)
        self._data.append(data)

    def fields_at(self, line: int) -> list[str]:
        i = bisect.bisect_right(self._firsts, line) - 1
        return _fields_at(self._firsts[i], self._data[i], line, self._delimiter)


def _copy_data(lines: list[str]) -> memoryview:
    # A buffer, not bytes: asyncpg would take bytes for a file name.
    return memoryview("".join(lines).encode())


async def _file_warnings(
    conn: asyncpg.Connection, campaign_id: int, campaign: str, spec: RowSpec
) -> list[str]:
    """What is wrong with the file as a whole for this campaign (the rows may still be fine)."""
    requires_consent = await conn.fetchval(
        "SELECT coalesce((settings->>'require_consent')::boolean, false) FROM campaigns "
        "WHERE id = $1",
        campaign_id,
    )
    if requires_consent and spec.consent is None:
        return [
            f"campaign {campaign!r} dials only leads with consent, and the file has no consent "
            "column: its leads are stored without consent and will not be dialled"
        ]
    return []


async def _has_leads(conn: asyncpg.Connection, campaign_id: int) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM leads WHERE campaign_id = $1)", campaign_id
    )


async def _copy_new(conn: asyncpg.Connection, campaign_id: int, lines: list[str]) -> int:
    """COPY rows into `leads` itself; UniqueViolationError (and nothing written) on any conflict.

    About a third cheaper for PostgreSQL than staging them for INSERT ... ON CONFLICT.
    """
    prefix = f"{campaign_id}\t"
    data = _copy_data([prefix + line for line in lines])
    async with conn.transaction():  # a savepoint if the caller has a transaction open
        await conn.copy_to_table("leads", source=data, columns=("campaign_id", *COPY_COLUMNS))
    return len(lines)


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
    copy_rows: int = 10_000,
    progress: ProgressCallback | None = None,
    required_fields: tuple[str, ...] = (),
) -> ImportSummary:
    """Import `path` into `campaign` (which must exist); numbers without +CC read in `region`.

    `workers`: processes normalising rows; None picks by file size and CPU count.
    `chunk_rows`: lines handed to a worker at a time; `copy_rows`: rows per COPY.
    `required_fields`: fields the campaign's script needs; a row lacking one is rejected
    (`missing_field:NAME`).
    """
    try:
        region = known_region(region)
    except ValueError as exc:
        raise LeadImportError(str(exc)) from exc
    started = time.perf_counter()
    try:
        summary = await _import(
            conn,
            path,
            campaign,
            region,
            workers,
            chunk_rows,
            copy_rows,
            progress,
            required_fields,
        )
    except RecordError as exc:
        raise LeadImportError(f"{path}:{exc.line}: {exc}") from exc
    summary.seconds = time.perf_counter() - started
    return summary


async def _import(
    conn: asyncpg.Connection,
    path: Path,
    campaign: str,
    region: str,
    workers: int | None,
    chunk_rows: int,
    copy_rows: int,
    progress: ProgressCallback | None,
    required_fields: tuple[str, ...],
) -> ImportSummary:
    with _open(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        chunker = _Chunker(raw, await asyncio.to_thread(_sniff, raw))
        header = await asyncio.to_thread(_read_header, chunker, path)
        spec = row_spec(header, region, chunker.delimiter)
        if spec is None:
            raise LeadImportError(
                f"{path}: no phone column (expected one of: {', '.join(PHONE_COLUMNS)})"
            )
        spec = dataclasses.replace(spec, required=required_fields)
        campaign_id = await find_campaign(conn, campaign)
        warnings = await _file_warnings(conn, campaign_id, campaign, spec)
        direct = not await _has_leads(conn, campaign_id)
        if workers is None:
            workers = (os.cpu_count() or 1) if size >= PARALLEL_MIN_BYTES else 1
        summary = ImportSummary(file=str(path), campaign=campaign, warnings=warnings)
        rejects = _Rejects(rejects_path(path), header)
        sink = _Sink(conn, campaign_id, rejects, summary, copy_rows, direct, spec.delimiter)
        try:
            try:
                with _executor(workers) as executor:
                    await _pipeline(
                        chunker, spec, executor, workers, chunk_rows, sink, progress, size
                    )
            finally:
                await sink.settle()  # a batch already being written completes either way
            await sink.finish()
        finally:
            summary.rejects_file = rejects.finish()
    summary.rejected = rejects.count
    summary.reject_reasons = dict(rejects.reasons)
    return summary


async def _pipeline(
    chunker: _Chunker,
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
    in_flight: deque[tuple[int, bytes, asyncio.Future[ChunkResult]]] = deque()
    try:
        while True:
            first_line, data = await asyncio.to_thread(chunker.chunk, chunk_rows)
            if progress is not None:
                progress(chunker.bytes_read, size)
            if data:
                job = loop.run_in_executor(executor, process_chunk, spec, first_line, data)
                in_flight.append((first_line, data, job))
            while in_flight and (len(in_flight) > workers or not data):
                done_first, done_data, job = in_flight.popleft()
                result = await job
                sink.summary.rows += len(result.leads) + len(result.rejects)
                await sink.take(done_first, done_data, result)
            if not data:
                return
    finally:
        # After a failure, chunks still in flight are abandoned, not left unobserved.
        for *_, job in in_flight:
            job.cancel()


# --- API and demo writes, lead reads

# (phone_e164, external_id, timezone, fields JSON, priority, consent): `normalise_lead`'s result.
LeadValues = tuple[str, str | None, str, str, int, bool]

_UPSERT_MANY = """
INSERT INTO leads (campaign_id, external_id, phone_e164, timezone, fields, priority, consent)
SELECT $1, t.ext, t.phone, t.tz, t.fields::jsonb, t.priority, t.consent
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bool[])
     AS t(ext, phone, tz, fields, priority, consent)
ON CONFLICT (campaign_id, external_id) WHERE external_id IS NOT NULL DO UPDATE
SET phone_e164 = EXCLUDED.phone_e164, timezone = EXCLUDED.timezone,
    fields = EXCLUDED.fields, priority = EXCLUDED.priority, consent = EXCLUDED.consent,
    updated_at = now()
RETURNING id, external_id, (xmax = 0) AS inserted
"""

# `n` numbers the batch's leads; a lead of a campaign that does not exist has no row.
_UPSERT_AUDITED = """
WITH input AS (
    SELECT t.*, c.id AS campaign_id
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                $7::bool[], $8::bigint[], $9::text[], $10::text[]) WITH ORDINALITY
         AS t(campaign, external_id, phone, tz, fields, priority, consent, token_id,
              token_name, target, n)
    JOIN campaigns c ON c.name = t.campaign
), up AS (
    INSERT INTO leads (campaign_id, external_id, phone_e164, timezone, fields, priority, consent)
    SELECT campaign_id, external_id, phone, tz, fields::jsonb, priority, consent
    FROM input ORDER BY n
    ON CONFLICT (campaign_id, external_id) WHERE external_id IS NOT NULL DO UPDATE
    SET phone_e164 = EXCLUDED.phone_e164, timezone = EXCLUDED.timezone,
        fields = EXCLUDED.fields, priority = EXCLUDED.priority, consent = EXCLUDED.consent,
        updated_at = now()
    RETURNING *, (xmax = 0) AS inserted
), logged AS (
    INSERT INTO api_audit (token_id, token_name, action, target)
    SELECT i.token_id, i.token_name,
           CASE WHEN up.inserted THEN 'lead.create' ELSE 'lead.update' END, i.target
    FROM up JOIN input i USING (campaign_id, external_id)
)
SELECT i.n, up.* FROM up JOIN input i USING (campaign_id, external_id)
"""


@dataclass(frozen=True)
class WrittenLead:
    id: int
    external_id: str | None
    inserted: bool


@dataclass(frozen=True)
class AuditedLead:
    """One lead to create or update in a campaign (by name), with its audit row's who and
    target."""

    campaign: str
    values: LeadValues
    token_id: int
    token_name: str
    target: str


async def upsert_leads(
    conn: asyncpg.Connection, campaign_id: int, leads: Sequence[LeadValues]
) -> list[WrittenLead]:
    """Create the leads, or update those whose external id the campaign has (their values, not
    their dialling state). UniqueViolationError when a number belongs to another lead."""
    if not leads:
        return []
    phone, ext, tz, fields, priority, consent = zip(*leads, strict=True)
    columns = [ext, phone, tz, fields, priority, consent]
    rows = await conn.fetch(_UPSERT_MANY, campaign_id, *(list(c) for c in columns))
    return [WrittenLead(r["id"], r["external_id"], r["inserted"]) for r in rows]


async def upsert_audited_leads(
    conn: asyncpg.Connection | asyncpg.Pool, leads: Sequence[AuditedLead]
) -> dict[int, asyncpg.Record]:
    """Upsert and audit the leads in one statement: each lead's row as written plus
    `inserted`, by its position in `leads` (from 1); a lead of an unknown campaign has none.
    A PostgresError (a number taken by another lead, a deadlock) means nothing was written."""
    values = list(zip(*(lead.values for lead in leads), strict=True))
    rows = await conn.fetch(
        _UPSERT_AUDITED,
        [lead.campaign for lead in leads],
        list(values[1]),  # external_id
        list(values[0]),  # phone
        *(list(column) for column in values[2:]),
        [lead.token_id for lead in leads],
        [lead.token_name for lead in leads],
        [lead.target for lead in leads],
    )
    return {row["n"]: row for row in rows}


async def numbers_taken(
    conn: asyncpg.Connection, campaign_id: int, phones: Sequence[str]
) -> dict[str, str | None]:
    """The external id of the campaign's lead with each of these numbers, by number."""
    rows = await conn.fetch(
        """SELECT phone_e164, external_id FROM leads
           WHERE campaign_id = $1 AND phone_e164 = ANY($2::text[])""",
        campaign_id,
        list(phones),
    )
    return {r["phone_e164"]: r["external_id"] for r in rows}


async def lead_by_external_id(
    conn: asyncpg.Connection | asyncpg.Pool, campaign: str, external_id: str
) -> asyncpg.Record | None:
    """The lead's row (every column of `leads`), by campaign name and external id."""
    return await conn.fetchrow(
        """SELECT l.* FROM leads l JOIN campaigns c ON c.id = l.campaign_id
           WHERE c.name = $1 AND l.external_id = $2""",
        campaign,
        external_id,
    )


@dataclass(frozen=True)
class LeadPerson:
    """Who a lead is (the number) and whether it was erased."""

    phone_e164: str | None
    erased_at: datetime | None


async def lead_person(conn: asyncpg.Connection | asyncpg.Pool, lead_id: int) -> LeadPerson | None:
    row = await conn.fetchrow("SELECT phone_e164, erased_at FROM leads WHERE id = $1", lead_id)
    return None if row is None else LeadPerson(row["phone_e164"], row["erased_at"])


async def block_lead(conn: asyncpg.Connection, lead_id: int | None, reason: str) -> None:
    """Stop calling the lead (blocked, with `reason`), releasing any lease it holds (no lead:
    nothing to do)."""
    await conn.execute(
        """UPDATE leads SET status = 'blocked', block_reason = $2,
                  lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE id = $1""",
        lead_id,
        reason,
    )


@dataclass(frozen=True)
class NewLead:
    phone_e164: str
    timezone: str
    fields: dict[str, str]
    due_at: datetime  # next_attempt_at: when the dialer may take it


async def add_due_leads(
    conn: asyncpg.Connection, campaign_id: int, leads: Sequence[NewLead]
) -> dict[str, int]:
    """Leads with consent to calls, each due at its own time: id by number."""
    rows = await conn.fetch(
        """INSERT INTO leads (campaign_id, phone_e164, timezone, fields, consent, next_attempt_at)
           SELECT $1, t.phone, t.tz, t.fields, true, t.due
           FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::timestamptz[])
                AS t(phone, tz, fields, due)
           RETURNING id, phone_e164""",
        campaign_id,
        [lead.phone_e164 for lead in leads],
        [lead.timezone for lead in leads],
        [lead.fields for lead in leads],
        [lead.due_at for lead in leads],
    )
    return {r["phone_e164"]: r["id"] for r in rows}


# --- campaign stats


@dataclass(frozen=True)
class HeldCount:
    status: str  # `blocked` (for good) or `pending` (postponed)
    block_reason: str
    leads: int


async def leads_by_status(conn: asyncpg.Connection, campaign_id: int) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM leads WHERE campaign_id = $1 GROUP BY status",
        campaign_id,
    )
    return {r["status"]: r["n"] for r in rows}


async def held_leads(conn: asyncpg.Connection, campaign_id: int) -> list[HeldCount]:
    """Leads the dialer's gates held back, by status and reason."""
    rows = await conn.fetch(
        """SELECT status, block_reason, count(*) AS n FROM leads
            WHERE campaign_id = $1 AND block_reason IS NOT NULL
              AND status IN ('blocked', 'pending')
            GROUP BY 1, 2""",
        campaign_id,
    )
    return [HeldCount(r["status"], r["block_reason"], r["n"]) for r in rows]


# --- leasing
# A lease is `status = 'leased'` with an owner and an expiry; dialer/leasing.py says when.
# Every time is passed in (never `now()`), so the clock is the caller's.

# By the number's hash: an erased person's opt-out is kept as the hash alone (docs/privacy.md).
# Call entries only: an SMS or push opt-out does not stop calls (migration 101).
_DNC_FLAGS = """
    EXISTS (SELECT 1 FROM dnc d WHERE d.phone_hash = subject_hash(l.phone_e164)
                                  AND d.campaign_id IS NULL AND d.channel = 'call') AS dnc_global,
    EXISTS (SELECT 1 FROM dnc d WHERE d.phone_hash = subject_hash(l.phone_e164)
                                  AND d.campaign_id = l.campaign_id
                                  AND d.channel = 'call') AS dnc_campaign"""

_LEAD_COLUMNS = """l.id, l.campaign_id, l.phone_e164, l.timezone, l.consent, l.attempts,
    l.attempts_day, l.attempts_today"""
# The fields the lead lacks of those its campaign's current script requires (migration 060).
_MISSING_FIELDS = """
    lead_missing_fields(l.fields, (SELECT r.required_fields FROM campaign_required_fields r
                                   WHERE r.campaign_id = l.campaign_id)) AS missing_fields"""


@dataclass(frozen=True)
class LeaseRow:
    """A leased lead with what the dialer's gates judge it by."""

    id: int
    campaign_id: int
    phone_e164: str
    timezone: str
    consent: bool
    attempts: int
    attempts_day: date | None
    attempts_today: int
    dnc_global: bool
    dnc_campaign: bool
    missing_fields: tuple[str, ...]


def _lease_row(r: asyncpg.Record) -> LeaseRow:
    return LeaseRow(**{**dict(r), "missing_fields": tuple(r["missing_fields"] or ())})


async def expire_leases(conn: asyncpg.Connection, now: datetime) -> list[int]:
    """Return expired leases to `pending`; the ids of their leads."""
    ids = await conn.fetch(
        """WITH expired AS (
               SELECT id FROM leads WHERE status = 'leased' AND lease_expires_at < $1
               FOR UPDATE SKIP LOCKED)
           UPDATE leads l SET status = 'pending', lease_owner = NULL,
                              lease_expires_at = NULL, updated_at = $1
           FROM expired WHERE l.id = expired.id RETURNING l.id""",
        now,
    )
    return [r["id"] for r in ids]


async def lease_pending(
    conn: asyncpg.Connection,
    campaign_id: int,
    owner: str,
    limit: int,
    now: datetime,
    lease_s: float,
) -> list[LeaseRow]:
    """Lease up to `limit` due pending leads of a campaign (highest priority, oldest first)."""
    rows = await conn.fetch(
        f"""WITH picked AS (
                SELECT id FROM leads
                WHERE campaign_id = $1 AND status = 'pending' AND next_attempt_at <= $4
                ORDER BY priority DESC, next_attempt_at, id
                LIMIT $2
                FOR UPDATE SKIP LOCKED)
            UPDATE leads l SET status = 'leased', lease_owner = $3,
                               lease_expires_at = $4::timestamptz
                                                  + make_interval(secs => $5::float8),
                               updated_at = $4
            FROM picked WHERE l.id = picked.id
            RETURNING {_LEAD_COLUMNS}, {_DNC_FLAGS}, {_MISSING_FIELDS}""",
        campaign_id,
        limit,
        owner,
        now,
        lease_s,
    )
    return [_lease_row(r) for r in rows]


async def lock_leased(
    conn: asyncpg.Connection, lead_ids: Sequence[int], owner: str
) -> list[LeaseRow]:
    """Lock the given leads this owner still holds, fresh, in id order (others are skipped)."""
    rows = await conn.fetch(
        f"""SELECT {_LEAD_COLUMNS}, {_DNC_FLAGS}, {_MISSING_FIELDS} FROM leads l
            WHERE l.id = ANY($1::bigint[]) AND l.status = 'leased' AND l.lease_owner = $2
            ORDER BY l.id FOR UPDATE""",
        list(lead_ids),
        owner,
    )
    return [_lease_row(r) for r in rows]


@dataclass(frozen=True)
class LeadHold:
    """A lead the gates stop: ended for good (`blocked`) or postponed (`pending`)."""

    lead_id: int
    permanent: bool
    block_reason: str
    not_before: datetime | None


async def hold_leads(conn: asyncpg.Connection, holds: Sequence[LeadHold], now: datetime) -> None:
    await conn.executemany(
        """UPDATE leads SET status = CASE WHEN $2 THEN 'blocked' ELSE 'pending' END,
                            block_reason = $3,
                            next_attempt_at = coalesce($4, next_attempt_at),
                            lease_owner = NULL, lease_expires_at = NULL, updated_at = $5
           WHERE id = $1""",
        [(h.lead_id, h.permanent, h.block_reason, h.not_before, now) for h in holds],
    )


@dataclass(frozen=True)
class AttemptCount:
    """A lead's attempt counters after one more attempt on `day` (its local date)."""

    lead_id: int
    day: date
    attempts_today: int


async def count_attempts(
    conn: asyncpg.Connection, counts: Sequence[AttemptCount], now: datetime, lease_s: float
) -> None:
    """Count an attempt on each lead and extend its lease from `now`."""
    await conn.executemany(
        """UPDATE leads SET attempts = attempts + 1, attempts_day = $2,
                            attempts_today = $3, last_attempt_at = $4,
                            lease_expires_at = $4::timestamptz
                                              + make_interval(secs => $5::float8),
                            block_reason = NULL, updated_at = $4
           WHERE id = $1""",
        [(c.lead_id, c.day, c.attempts_today, now, lease_s) for c in counts],
    )


@dataclass(frozen=True)
class LeadSettlement:
    """Where a lead goes after its attempt ended: done, or pending again (from `retry_at`)."""

    lead_id: int
    done: bool
    retry_at: datetime | None
    disposition: str
    ended_at: datetime
    block_reason: str | None


async def settle_leads(
    conn: asyncpg.Connection, owner: str, settlements: Sequence[LeadSettlement]
) -> None:
    """Move each lead this owner still holds on; a lead it lost is left alone."""
    await conn.executemany(
        """UPDATE leads SET status = CASE WHEN $2 THEN 'done' ELSE 'pending' END,
                            next_attempt_at = coalesce($3, next_attempt_at),
                            last_disposition = $4, lease_owner = NULL,
                            lease_expires_at = NULL, updated_at = $5,
                            block_reason = coalesce($7, block_reason)
           WHERE id = $1 AND status = 'leased' AND lease_owner = $6""",
        [
            (s.lead_id, s.done, s.retry_at, s.disposition, s.ended_at, owner, s.block_reason)
            for s in settlements
        ],
    )


async def release_leases(conn: asyncpg.Connection, owner: str, lead_ids: Sequence[int]) -> None:
    """Give back leases this owner holds but will not dial."""
    await conn.execute(
        """UPDATE leads SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
                            updated_at = now()
           WHERE id = ANY($1::bigint[]) AND status = 'leased' AND lease_owner = $2""",
        list(lead_ids),
        owner,
    )


async def renew_leases(conn: asyncpg.Connection, owner: str, now: datetime, lease_s: float) -> int:
    """Heartbeat: a live owner's leases (including those of calls in progress) never expire."""
    result = await conn.execute(
        """UPDATE leads SET lease_expires_at = $2::timestamptz + make_interval(secs => $3::float8)
           WHERE status = 'leased' AND lease_owner = $1""",
        owner,
        now,
        lease_s,
    )
    return int(result.split()[-1])


# --- priorities (analytics/rfm.py scores a campaign's leads)


async def lock_lead_fields(conn: asyncpg.Connection, campaign_id: int) -> list[tuple[int, Any]]:
    """(id, fields) of every lead of the campaign, locked in the caller's transaction."""
    rows = await conn.fetch(
        "SELECT id, fields FROM leads WHERE campaign_id = $1 ORDER BY id FOR UPDATE",
        campaign_id,
    )
    return [(r["id"], r["fields"]) for r in rows]


# --- lead priorities, call consent, rehearsal leads, erasure (leads has one writer module)


async def set_priorities(
    conn: asyncpg.Connection | asyncpg.Pool,
    priorities: Sequence[tuple[int, int]],
    *,
    pending_only: bool,
) -> None:
    """Lease priorities (RFM, plus churn risk where scored) of the given leads; with
    `pending_only`, a lead leased or settled since it was scored keeps its priority."""
    await conn.execute(
        """UPDATE leads SET priority = s.priority, updated_at = now()
           FROM unnest($1::bigint[], $2::int[]) AS s(id, priority)
           WHERE leads.id = s.id AND (NOT $3 OR leads.status = 'pending')""",
        [p[0] for p in priorities],
        [p[1] for p in priorities],
        pending_only,
    )


async def set_call_consent(conn: asyncpg.Connection, lead_id: int, granted: bool) -> None:
    """The lead's consent to calls (store/engagement.py keeps the other channels')."""
    await conn.execute(
        "UPDATE leads SET consent = $2, updated_at = now() WHERE id = $1", lead_id, granted
    )


async def insert_rehearsal_lead(
    conn: asyncpg.Connection, campaign_id: int, phone: str, fields: dict[str, Any]
) -> int:
    """A rehearsal's lead; its id."""
    lead_id: int = await conn.fetchval(
        """INSERT INTO leads (campaign_id, phone_e164, timezone, fields)
           VALUES ($1, $2, 'UTC', $3) RETURNING id""",
        campaign_id,
        phone,
        fields,
    )
    return lead_id


async def anonymise_erased(conn: asyncpg.Connection, lead_ids: list[int]) -> int:
    """Erasure: the leads keep their ids and statistics, nothing of the person, and are
    blocked for good."""
    return await execute_count(
        conn,
        """UPDATE leads SET phone_e164 = NULL, external_id = NULL, fields = '{}'::jsonb,
                          timezone = 'UTC', consent = false, status = 'blocked',
                          block_reason = 'erased', erased_at = now(), updated_at = now()
                   WHERE id = ANY($1::bigint[])""",
        lead_ids,
    )
