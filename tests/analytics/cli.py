"""Running `outdial` commands in-process (the CLI's import of every package costs seconds)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from click.testing import Result
from typer.testing import CliRunner

from outdial.cli import app
from outdial.commands.scoring import score

# `leads score` is mounted here the way the lead's `outdial leads` app mounts it.
leads_app = typer.Typer()
leads_app.command("score")(score)
test_app = typer.Typer()
test_app.add_typer(app, name="outdial")
test_app.add_typer(leads_app, name="leads")


async def invoke(
    *args: str, pg_url: str, tmp_path: Path, config: str = "{}\n", columns: int = 200
) -> Result:
    """Invoke in a worker thread: the command runs its own event loop, as it does for real."""
    config_file = tmp_path / "outdial.yaml"
    config_file.write_text(config)
    env = {
        "OUTDIAL_DATABASE_URL": pg_url,
        "OUTDIAL_CONFIG": str(config_file),
        "OUTDIAL_STATE_DIR": str(tmp_path / "state"),
        "COLUMNS": str(columns),
    }
    argv = list(args) if args[0] == "leads" else ["outdial", *args]
    return await asyncio.to_thread(CliRunner().invoke, test_app, argv, env=env)
