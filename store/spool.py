"""An on-disk spool: rows wait here, fsync'd, while PostgreSQL is unreachable.

Rows are JSON objects, one per line, in numbered segment files `<kind>-<number>.jsonl` so
several row kinds (turns, call records, ...) can share one directory. Rows hold personal data
(what a customer said, prompts with their name): given a cipher, each line is a Fernet token
(AES-128-CBC with HMAC-SHA256, from `cryptography`) instead of the JSON itself; lines written
without one (before an upgrade) are still read. Segments are replayed
oldest first and deleted only after their rows are committed, so a crash at any point
replays a segment at most once more; the writers' idempotent keys make that harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from store.settings import DatabaseSettings

log = logging.getLogger(__name__)

Row = Mapping[str, Any]
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def spool_dir(settings: DatabaseSettings, state_dir: Path) -> Path:
    """Where writers spool: `database.spool_dir` if configured, else `<state_dir>/spool`."""
    return Path(settings.spool_dir) if settings.spool_dir else state_dir / "spool"


def spool_cipher(keys: Sequence[bytes]) -> MultiFernet:
    """Encrypts with the first key, decrypts with any (segments written before a key change)."""
    if not keys:
        raise ValueError("a spool cipher needs at least one key")
    return MultiFernet([Fernet(key) for key in keys])


class SpoolKeyError(RuntimeError):
    """A complete spool line no key opens: replaying on would lose its rows."""


class SpoolBusyError(RuntimeError):
    """Another process holds this spool; two writers replaying one spool would race."""


def _fsync_dir(directory: Path) -> None:
    # A new or removed file name is durable only once its directory is synced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only JSON-lines segments for one row kind; safe to use from several threads."""

    def __init__(
        self,
        directory: Path,
        kind: str,
        *,
        segment_rows: int = 10_000,
        cipher: MultiFernet | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", kind):
            raise ValueError(f"spool kind must be lowercase letters, digits, _: {kind!r}")
        self.directory = directory
        self.kind = kind
        self.segment_rows = segment_rows
        self._cipher = cipher
        self._name = re.compile(rf"^{kind}-(\d{{12}})\.jsonl$")
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        # Sealed and active segments, oldest first, with their complete row counts.
        self._segments: dict[Path, int] = {}
        # The segment being appended to: its open file and path.
        self._active: tuple[IO[bytes], Path] | None = None
        self._next_number = 1
        self.torn_lines = 0

    def open(self) -> None:
        """Take the spool's lock and index the segments a previous process left behind."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_file = (self.directory / f"{self.kind}.lock").open("ab")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock_file.close()
            raise SpoolBusyError(
                f"spool {self.directory}/{self.kind} is in use by another process"
            ) from exc
        self._lock_file = lock_file
        found = sorted(
            (int(m[1]), p)
            for p in self.directory.iterdir()
            if (m := self._name.match(p.name)) is not None
        )
        self._segments = {path: _count_lines(path) for _, path in found}
        self._next_number = found[-1][0] + 1 if found else 1
        if self.depth:
            log.info("spool %s/%s holds %d rows to replay", self.directory, self.kind, self.depth)

    def close(self) -> None:
        with self._lock:
            self._close_active()
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    @property
    def depth(self) -> int:
        """Rows on disk waiting to be replayed."""
        return sum(self._segments.values())

    def append(self, rows: Sequence[Row]) -> None:
        """Write `rows` durably (returns after fsync)."""
        if not rows:
            return
        data = b"".join(self.encode(row) for row in rows)
        with self._lock:
            if self._lock_file is None:
                raise RuntimeError("spool is not open")
            active, path = self._ensure_active()
            before = active.tell()
            try:
                active.write(data)
                active.flush()
                os.fsync(active.fileno())
            except OSError:
                # A full disk: nothing of this call may stay (a retry would double its rows).
                self._abandon_active(path, before)
                raise
            self._segments[path] += len(rows)
            if self._segments[path] >= self.segment_rows:
                self._close_active()

    def encode(self, row: Row) -> bytes:
        """One row as the spool stores it: a line of JSON, or of its Fernet token."""
        plain = _ENCODER.encode(row).encode()
        return (plain if self._cipher is None else self._cipher.encrypt(plain)) + b"\n"

    def decode(self, line: bytes) -> dict[str, Any]:
        if line.startswith(b"{"):  # written without a cipher
            return json.loads(line)
        if self._cipher is None:
            raise SpoolKeyError("the spool holds encrypted rows: configure its key")
        try:
            return json.loads(self._cipher.decrypt(line.rstrip(b"\n")))
        except InvalidToken as exc:
            raise SpoolKeyError(
                "a spool row opens with none of the spool keys (was spool.key replaced?)"
            ) from exc

    def seal(self) -> None:
        """Finish the active segment so replay can read it while new rows go to a new one."""
        with self._lock:
            self._close_active()

    def sealed_segments(self) -> list[Path]:
        with self._lock:
            active = self._active[1] if self._active is not None else None
            return [p for p in self._segments if p != active]

    def read(self, segment: Path) -> list[dict[str, Any]]:
        """The complete rows of a segment; a torn last line (crash mid-append) is skipped."""
        rows: list[dict[str, Any]] = []
        with segment.open("rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("no line end")
                    rows.append(self.decode(line))
                except ValueError:
                    # Only an append cut short by a crash leaves this; its rows were never
                    # acknowledged to the writer, which kept them in memory at the time.
                    self.torn_lines += 1
                    log.warning("spool %s line %d is incomplete; skipped", segment.name, number)
        return rows

    def remove(self, segment: Path) -> None:
        """Forget a segment whose rows are committed."""
        with self._lock:
            segment.unlink(missing_ok=True)
            self._segments.pop(segment, None)
        _fsync_dir(self.directory)

    def _ensure_active(self) -> tuple[IO[bytes], Path]:
        if self._active is None:
            path = self.directory / f"{self.kind}-{self._next_number:012d}.jsonl"
            self._next_number += 1
            # "x": never reopen a segment that a previous process may have left torn.
            self._active = (path.open("xb"), path)
            self._segments[path] = 0
            _fsync_dir(self.directory)
        return self._active

    def _abandon_active(self, path: Path, durable_bytes: int) -> None:
        """Cut the active segment back to what earlier appends made durable; the next append
        starts a new segment (the buffered file object cannot be trusted after a failed
        write)."""
        assert self._active is not None
        active, self._active = self._active[0], None
        with contextlib.suppress(OSError):
            active.close()  # may retry the buffered bytes: the truncation below undoes them
        with contextlib.suppress(OSError):
            if durable_bytes:
                os.truncate(path, durable_bytes)
            else:
                path.unlink()
                del self._segments[path]

    def _close_active(self) -> None:
        if self._active is not None:
            self._active[0].close()
            self._active = None


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
