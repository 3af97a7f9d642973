"""`outdial variants ...`: see, retire and restore A/B script variants."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analytics.retirement import Retirement, retire_losers
from analytics.variants import VariantError, evidence_summary, restore_variant, retire_variant
from outdial.commands.report import open_database
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from store.scripts import VariantOutcome, VariantRecord, list_variants, variant_outcomes

app = typer.Typer(
    help="A/B script variants: list, retire, restore, and review (run the retirement pass now).",
    no_args_is_help=True,
)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def _listing(
    config: Config, script: str | None
) -> list[tuple[VariantRecord, VariantOutcome | None]]:
    since = datetime.now(UTC) - timedelta(hours=config.analytics.ab.window_hours)
    async with open_database(config) as db:
        records = await list_variants(db.pool, script)
        if script is not None and not records:
            raise UserError(f"no script named {script!r} has variants")
        outcomes: dict[tuple[str, str], VariantOutcome] = {}
        for name in sorted({r.script_name for r in records}):
            for o in await variant_outcomes(db.pool, name, since):
                outcomes[(name, o.variant)] = o
    return [(r, outcomes.get((r.script_name, r.variant))) for r in records]


@app.command("list")
def list_command(
    ctx: typer.Context,
    script: Annotated[str | None, typer.Option("--script", help="Only this script.")] = None,
) -> None:
    """Every variant with its status, A/B-window numbers and retirement evidence."""
    config = cli_state(ctx).loaded.config
    rows = run_async(_listing(config, script))
    table = Table(title=f"Variants (A/B window {config.analytics.ab.window_hours:g} h)")
    for name in ("script", "variant", "status", "completed", "success", "evidence"):
        table.add_column(name, justify="right" if name in ("completed", "success") else "left")
    for record, outcome in rows:
        rate = outcome.success_rate if outcome else None
        table.add_row(
            record.script_name,
            record.variant,
            record.status,
            str(outcome.completed if outcome else 0),
            "-" if rate is None else f"{rate * 100:.1f}%",
            evidence_summary(record.evidence),
        )
    Console().print(table)


async def _retire(config: Config, script: str, variant: str, reason: str) -> None:
    async with open_database(config) as db:
        await retire_variant(db.pool, script, variant, actor=_actor(), reason=reason)


async def _restore(config: Config, script: str, variant: str) -> None:
    async with open_database(config) as db:
        await restore_variant(db.pool, script, variant, actor=_actor())


@app.command()
def retire(
    ctx: typer.Context,
    script: Annotated[str, typer.Argument(help="Script name.")],
    variant: Annotated[str, typer.Argument(help="Variant name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the evidence).")],
) -> None:
    """Stop allocating new calls to a variant (the last active one cannot be retired)."""
    try:
        run_async(_retire(cli_state(ctx).loaded.config, script, variant, reason))
    except VariantError as exc:
        raise UserError(str(exc)) from exc
    typer.echo(f"retired {script}/{variant}")


@app.command()
def restore(
    ctx: typer.Context,
    script: Annotated[str, typer.Argument(help="Script name.")],
    variant: Annotated[str, typer.Argument(help="Variant name.")],
) -> None:
    """Undo a retirement; the variant is judged afresh on calls from now on."""
    try:
        run_async(_restore(cli_state(ctx).loaded.config, script, variant))
    except VariantError as exc:
        raise UserError(str(exc)) from exc
    typer.echo(f"restored {script}/{variant}")


async def _review(config: Config) -> list[Retirement]:
    async with open_database(config) as db:
        return await retire_losers(db.pool, config.analytics.ab)


@app.command()
def review(ctx: typer.Context) -> None:
    """Run the hourly retirement pass now and print what it retired."""
    retired = run_async(_review(cli_state(ctx).loaded.config))
    for r in retired:
        typer.echo(f"retired {r.script_name}/{r.variant}: {evidence_summary(r.evidence)}")
    if not retired:
        typer.echo("no variant meets the retirement rule")
