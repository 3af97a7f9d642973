"""`outdial check`: one OK/FAIL line per dependency; exit 1 if any fails."""

from __future__ import annotations

import typer

from outdial.checks import CheckResult, check_config_files, check_exposure, run_checks
from outdial.config import ConfigError
from outdial.context import cli_state, run_async


def check(ctx: typer.Context) -> None:
    """Check config (and who may change or read it), database, models, AMI, listen ports and
    who can reach them, clock and time zones. WARN lines fail too under --strict."""
    state = cli_state(ctx)
    try:
        loaded = state.loaded
    except ConfigError as exc:
        # Nothing else can be checked without a config; say so on the same one-line format.
        for line in str(exc).splitlines():
            typer.echo(CheckResult("config", False, line).line)
        raise typer.Exit(1) from exc
    source = str(loaded.source) if loaded.source else "built-in defaults"
    results = [
        CheckResult("config", True, source),
        *check_config_files(loaded.source),
        *run_async(run_checks(loaded.config)),
        *check_exposure(loaded.config),
    ]
    for result in results:
        typer.echo(result.line)
    if not all(r.ok and not (r.warning and state.strict) for r in results):
        raise typer.Exit(1)
