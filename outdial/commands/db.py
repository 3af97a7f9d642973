"""`outdial db ...`: the database schema."""

from __future__ import annotations

import typer
from rich.console import Console

from outdial.context import cli_state, run_async
from store.db import Database

app = typer.Typer(help="Database schema and status.", no_args_is_help=True)


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply pending SQL migrations (safe to run any number of times)."""
    config = cli_state(ctx).loaded.config

    async def _run() -> list[str]:
        db = await Database.open(config.database, config.state_dir)
        try:
            return db.applied
        finally:
            await db.close()

    applied = run_async(_run())
    console = Console()
    if applied:
        for name in applied:
            console.print(f"applied {name}")
    else:
        console.print("schema is up to date")
