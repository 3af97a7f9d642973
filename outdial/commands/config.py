"""`outdial config ...`: inspect the effective configuration."""

from __future__ import annotations

from typing import Any

import typer
import yaml

from outdial.config import masked_dump
from outdial.context import cli_state
from outdial.masking import mask_secrets

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command()
def show(ctx: typer.Context) -> None:
    """Print the effective config (file + environment + defaults), secrets masked (and
    credentials in URLs)."""
    loaded = cli_state(ctx).loaded
    source = str(loaded.source) if loaded.source else "built-in defaults"
    typer.echo(f"# source: {source}")
    shown = _masked_strings(masked_dump(loaded.config))
    typer.echo(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True))


def _masked_strings(value: Any) -> Any:
    """Credentials inside plain values too: `https://user:pass@host/x?token=...` (webhook
    URLs) shows as `https://user:********@host/x?token=********`."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: _masked_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_strings(v) for v in value]
    return value


@app.command()
def check(ctx: typer.Context) -> None:
    """Validate the config file and report the first problems found."""
    loaded = cli_state(ctx).loaded
    typer.echo(f"{loaded.source or 'built-in defaults'}: OK")
