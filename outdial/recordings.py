"""Deleting call recordings: the files queued in `recording_deletions` (store/recordings.py).

Only files below `privacy.recordings_dir` are deleted (a path in the database never makes
outdial delete anything else), and only while that directory exists here: outdial may run on
another host than Asterisk, and a file it cannot see is not a file that is gone. A file already
missing from a directory that is there counts as deleted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from store.recordings import count_queued, deletion_done, deletion_failed, queued_deletions

log = logging.getLogger(__name__)

# Files looked at per pass; what is left waits for the next pass.
BATCH = 1000


@dataclass(frozen=True)
class RecordingSweep:
    deleted: int
    kept: int  # still queued: outside the directory, or the file could not be deleted
    unreachable: bool  # the recordings directory is not on this host


def _delete(path: Path, directory: Path) -> str | None:
    """Delete one file; None when it is gone, else why it is not."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:
        return f"cannot resolve: {exc}"
    if not resolved.is_relative_to(directory):
        return f"outside privacy.recordings_dir {directory}"
    try:
        resolved.unlink(missing_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _sweep(paths: list[str], directory: Path) -> tuple[list[str], dict[str, str]]:
    """Runs in a thread (file system calls): (deleted paths, {kept path: why})."""
    deleted, kept = [], {}
    for text in paths:
        error = _delete(Path(text), directory)
        if error is None:
            deleted.append(text)
        else:
            kept[text] = error
    return deleted, kept


async def delete_recordings(pool: asyncpg.Pool, directory: Path) -> RecordingSweep:
    """Delete the queued recording files this host can reach; the rest stay queued."""
    if not await asyncio.to_thread(directory.is_dir):
        waiting = await count_queued(pool)
        if waiting:
            log.warning(
                "%d recordings wait for deletion: privacy.recordings_dir %s is not on this host",
                waiting,
                directory,
            )
        return RecordingSweep(0, waiting, unreachable=True)
    root = await asyncio.to_thread(directory.resolve)
    queued = await queued_deletions(pool, BATCH)
    deleted, kept = await asyncio.to_thread(_sweep, [q.path for q in queued], root)
    await deletion_done(pool, deleted)
    for path, error in kept.items():
        await deletion_failed(pool, path, error)
        log.warning("recording not deleted (%s): %s", error, Path(path).name)
    return RecordingSweep(len(deleted), len(kept), unreachable=False)
