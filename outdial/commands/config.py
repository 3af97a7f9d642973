"""`outdial config ...`: inspect the effective configuration."""

from __future__ import annotations

import typer
import yaml

from outdial.config import masked_dump
from outdial.context import cli_state

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command()
def show(ctx: typer.Context) -> None:
    """Print the effective config (file + environment + defaults), secrets masked."""
    loaded = cli_state(ctx).loaded
    source = str(loaded.source) if loaded.source else "built-in defaults"
    typer.echo(f"# source: {source}")
    typer.echo(yaml.safe_dump(masked_dump(loaded.config), sort_keys=False, allow_unicode=True))


@app.command()
def check(ctx: typer.Context) -> None:
    """Validate the config file and report the first problems found."""
    loaded = cli_state(ctx).loaded
    typer.echo(f"{loaded.source or 'built-in defaults'}: OK")
