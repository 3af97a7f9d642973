"""`outdial check`: one OK/FAIL line per dependency; exit 1 if any fails."""

from __future__ import annotations

import typer

from outdial.checks import CheckResult, run_checks
from outdial.config import ConfigError
from outdial.context import cli_state, run_async
from outdial.secretcheck import readable_secrets_warning


def check(ctx: typer.Context) -> None:
    """Check config, database, models, AMI, listen ports, clock and time zones."""
    try:
        loaded = cli_state(ctx).loaded
    except ConfigError as exc:
        # Nothing else can be checked without a config; say so on the same one-line format.
        for line in str(exc).splitlines():
            typer.echo(CheckResult("config", False, line).line)
        raise typer.Exit(1) from exc
    source = str(loaded.source) if loaded.source else "built-in defaults"
    results = [CheckResult("config", True, source), *run_async(run_checks(loaded.config))]
    for result in results:
        typer.echo(result.line)
    if (warning := readable_secrets_warning(loaded.source)) is not None:
        typer.echo(f"WARN secrets: {warning}")  # a warning: the daemon still runs
    if not all(r.ok for r in results):
        raise typer.Exit(1)
