"""The write-ahead journal of a batch writer's in-memory queue.

A row waits up to one flush interval in memory before it is COPYed or spooled; a process
killed in that window (SIGKILL, the OOM killer) lost it, although the call it records had
happened (bench/chaos.py found a bot turn heard on the wire and never stored). Each queued row
is therefore also appended to `<kind>-journal-<number>.jsonl` beside the spool, encoded as the
spool encodes it (encrypted when the spool is). The write reaches the page cache, which
outlives the process; only a machine crash loses it, and an fsync per row would stall the
event loop. The next start moves what a dead process left into the spool, whose replay is
idempotent, so a row both journaled and written is stored once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Any

from store.spool import Row, Spool

log = logging.getLogger(__name__)


class Journal:
    """Numbered journal files: rows go to the open one; `seal()` closes it, and
    `drop_through(number)` deletes sealed files once their rows are in the table or spool."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._name = re.compile(rf"^{spool.kind}-journal-(\d{{12}})\.jsonl$")
        self._fd: int | None = None
        self._number = 0  # of the open file, or of the last one when none is open
        self._sealed: list[int] = []
        self._broken = False

    def recover(self) -> list[dict[str, Any]]:
        """The rows every journal file left by a previous process holds (torn lines skipped).
        Call with the spool open (its lock keeps another process out), then `discard_recovered`
        once they are safe in the spool; until then the files count as sealed."""
        rows: list[dict[str, Any]] = []
        for number, path in self._files():
            self._number = number
            self._sealed.append(number)
            with path.open("rb") as f:
                for line in f:
                    with contextlib.suppress(ValueError):  # a write cut short by the kill
                        rows.append(self._spool.decode(line))
        return rows

    def discard_recovered(self) -> None:
        if self._sealed:
            self.drop_through(self._sealed[-1])

    def append(self, row: Row) -> None:
        """Journal one queued row; a disk that refuses it leaves the row in memory only."""
        try:
            if self._fd is None:
                self._number += 1
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                self._fd = os.open(self._path(self._number), flags, 0o600)
            os.write(self._fd, self._spool.encode(row))
        except OSError as exc:
            if not self._broken:
                log.warning(
                    "%s: cannot journal queued rows in %s (%s); a crash now loses up to one "
                    "flush interval of them",
                    self._spool.kind,
                    self._spool.directory,
                    exc.strerror or exc,
                )
            self._broken = True
            self.seal()  # a torn line must not run into the next one
            return
        self._broken = False

    def seal(self) -> int | None:
        """Close the open file; its number, or None when nothing was journaled since."""
        if self._fd is None:
            return None
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        self._sealed.append(self._number)
        return self._number

    def drop_through(self, number: int) -> None:
        """Delete the sealed files up to `number`: every row in them is stored or spooled."""
        done = [n for n in self._sealed if n <= number]
        self._sealed = [n for n in self._sealed if n > number]
        for n in done:
            self._path(n).unlink(missing_ok=True)

    def close(self) -> None:
        """Seal what is open; called once the queue is drained, so every file can go."""
        self.seal()
        if self._sealed:
            self.drop_through(self._sealed[-1])

    def _files(self) -> list[tuple[int, Path]]:
        directory = self._spool.directory
        return sorted(
            (int(m[1]), directory / name)
            for name in os.listdir(directory)
            if (m := self._name.match(name)) is not None
        )

    def _path(self, number: int) -> Path:
        return self._spool.directory / f"{self._spool.kind}-journal-{number:012d}.jsonl"
