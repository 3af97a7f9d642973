"""`outdial leads ...`: bring leads into a campaign."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dialog.validate import find_script
from outdial.commands.campaign import servable_script
from outdial.config import Config
from outdial.context import FLAG, cli_state, run_async
from outdial.errors import UserError
from store.campaigns import ensure_campaign, script_of_campaign_named
from store.db import Database
from store.leads import (
    CampaignNotFoundError,
    ImportSummary,
    LeadImportError,
    ProgressCallback,
    import_leads,
)
from store.scripts import campaign_required_fields

app = typer.Typer(help="Import leads into campaigns.", no_args_is_help=True)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header line and a phone column; also read: timezone, consent, "
            "priority, external_id; other columns become lead fields."
        ),
    ],
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign to add the leads to.")],
    region: Annotated[
        str | None,
        typer.Option("--region", help="Region for numbers without +CC (default: config)."),
    ] = None,
    create_campaign: Annotated[
        bool,
        typer.Option(
            "--create-campaign", help="Create the campaign if it does not exist.", metavar=FLAG
        ),
    ] = False,
    script: Annotated[
        str | None,
        typer.Option(
            "--script", help="Script of a campaign created here (a name the daemon serves)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes normalising numbers (default: auto)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON.", metavar=FLAG)
    ] = False,
) -> None:
    """Import FILE (CSV; columns in docs/operator-guide.md): numbers to E.164; rejected and
    duplicate rows to STEM.rejects.csv beside it (may.csv: may.rejects.csv)."""
    if create_campaign and not script:
        raise typer.BadParameter("--create-campaign needs --script NAME", param_hint="--script")
    if not file.is_file():
        # Checked before the database starts: a typo should not cost a server start.
        raise UserError(f"{file}: no such file")
    config = cli_state(ctx).loaded.config
    script_name = servable_script(script, config) if create_campaign and script else None
    job = _Job(file, campaign, region or config.default_region, script_name)
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = run_async(_run(config, job, workers, advance))
    for warning in summary.warnings:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    if as_json:
        typer.echo(json.dumps(_as_dict(summary)))
    else:
        Console().print(_table(summary))


@dataclasses.dataclass(frozen=True)
class _Job:
    file: Path
    campaign: str
    region: str
    create_with_script: str | None


async def _run(
    config: Config, job: _Job, workers: int | None, progress: ProgressCallback
) -> ImportSummary:
    try:
        db = await Database.open(config.database, config.state_dir)
    except (OSError, asyncpg.PostgresError) as exc:
        raise UserError(f"cannot open the database: {exc}") from exc
    try:
        async with db.pool.acquire() as conn:
            if job.create_with_script is not None:
                await ensure_campaign(conn, job.campaign, job.create_with_script)
            required = await _required_fields(conn, config, job.campaign)
            return await import_leads(
                conn,
                job.file,
                campaign=job.campaign,
                region=job.region,
                workers=workers,
                progress=progress,
                required_fields=required,
            )
    except CampaignNotFoundError as exc:
        raise UserError(f"{exc} (create it with --create-campaign --script NAME)") from exc
    except LeadImportError as exc:
        raise UserError(str(exc)) from exc
    finally:
        await db.close()


async def _required_fields(
    conn: asyncpg.Connection, config: Config, campaign: str
) -> tuple[str, ...]:
    """What the campaign's script requires of a lead: from the version a daemon serves, else
    from the script in scripts_dir. Neither known: nothing is checked now (a warning says
    so) and the dialer blocks a lead that lacks a field before dialling it."""
    served = await campaign_required_fields(conn, campaign)
    if served is not None:
        return served
    script_name = await script_of_campaign_named(conn, campaign)
    if script_name is None:
        return ()  # no such campaign: the import says so
    script = await asyncio.to_thread(find_script, config.scripts_dir, script_name)
    if script is not None:
        return script.required_fields()
    typer.echo(
        f"warning: script {script_name!r} of campaign {campaign!r} is neither loaded by a "
        f"daemon nor in {config.scripts_dir}: required fields are not checked now (the dialer "
        "checks them before dialling)",
        err=True,
    )
    return ()


def _as_dict(summary: ImportSummary) -> dict[str, object]:
    data = dataclasses.asdict(summary)
    data["seconds"] = round(summary.seconds, 3)
    data["rows_per_s"] = round(summary.rows_per_s, 1)
    return data


def _table(summary: ImportSummary) -> Table:
    table = Table(title=f"{summary.file} -> campaign {summary.campaign}", show_header=False)
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_row("rows read", str(summary.rows))
    table.add_row("imported", str(summary.imported))
    table.add_row("duplicates in file", str(summary.duplicates_in_file))
    table.add_row("already in campaign", str(summary.duplicates_in_db))
    table.add_row("rejected", str(summary.rejected))
    for reason, count in sorted(summary.reject_reasons.items()):
        table.add_row(f"  {reason}", str(count))
    table.add_row("rejects file", summary.rejects_file or "-")
    table.add_row("rows/s", f"{summary.rows_per_s:,.0f}")
    return table
