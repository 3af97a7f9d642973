"""`outdial privacy purge`, `outdial leads forget` and `outdial leads export` (docs/privacy.md).

Every export and erasure is audited (who: `cli:<user>`), like reads and writes through the API.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from outdial.commands.report import open_database
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from outdial.recordings import delete_recordings
from outdial.retention import purge as purge_pass
from store.erasure import (
    ErasureReport,
    Subject,
    SubjectError,
    erase_subject,
    export_subject,
    find_subject,
)
from store.leadrows import LeadError, normalise_number
from store.retention import RuleResult
from store.tokens import record_access

app = typer.Typer(help="Retention of personal data.", no_args_is_help=True)

Phone = Annotated[
    str | None,
    typer.Argument(help="The person's phone number (any common form).", show_default=False),
]
LeadId = Annotated[
    int | None, typer.Option("--lead", help="Outdial's id of one of the person's leads.")
]
Region = Annotated[
    str | None,
    typer.Option("--region", help="Region for a number without +CC (default: config)."),
]


def cli_user() -> str:
    """The audit's "who" for a command run by hand."""
    return f"cli:{getpass.getuser()}"


@app.command()
def purge(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing.")
    ] = False,
) -> None:
    """Delete or anonymise now what `privacy.retention` says is past its time (the daemon does
    this every `privacy.purge_interval_s`)."""
    config = cli_state(ctx).loaded.config
    results = run_async(_purge(config, dry_run))
    title = "would be purged (dry run)" if dry_run else "purged"
    Console().print(_results_table(results, title))


async def _purge(config: Config, dry_run: bool) -> list[RuleResult]:
    async with open_database(config) as db:
        return await purge_pass(
            db.pool, config.privacy, webhooks=bool(config.webhooks.urls), dry_run=dry_run
        )


def _results_table(results: list[RuleResult], title: str) -> Table:
    table = Table(title=f"rows {title}")
    table.add_column("rule (privacy.retention)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for r in results:
        table.add_row(r.kind, r.table, f"{r.rows:,}")
    return table


def _subject_args(
    config: Config, phone: str | None, lead: int | None, region: str | None
) -> str | None:
    """The E.164 number, or None when the person is named by a lead id."""
    if (phone is None) == (lead is None):
        raise typer.BadParameter("give the person's PHONE or --lead ID (one of them)")
    if phone is None:
        return None
    try:
        return normalise_number(phone.strip(), (region or config.default_region).upper())[0]
    except LeadError as exc:
        raise UserError(f"PHONE: {exc}") from exc


async def _find(db_pool: object, phone: str | None, lead: int | None) -> Subject:
    try:
        return await find_subject(db_pool, phone=phone, lead_id=lead)  # type: ignore[arg-type]
    except SubjectError as exc:
        raise UserError(str(exc)) from exc


def forget(
    ctx: typer.Context,
    phone: Phone = None,
    lead: LeadId = None,
    region: Region = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase one person on request: every lead with their number, in every campaign, and all
    their calls left (transcripts, summaries, events, webhook events, audit targets). A
    do-not-call entry stays as a hash of the number alone, so an opt-out is still honoured."""
    config = cli_state(ctx).loaded.config
    number = _subject_args(config, phone, lead, region)
    if not yes:
        who = "this number" if lead is None else f"the person of lead {lead}"
        typer.confirm(f"Erase everything held about {who}? This cannot be undone", abort=True)
    report = run_async(_forget(config, number, lead))
    table = Table(title="erased", show_header=False)
    for name, count in report.as_dict().items():
        table.add_row(name.replace("_", " "), f"{count:,}")
    Console().print(table)


async def _forget(config: Config, phone: str | None, lead: int | None) -> ErasureReport:
    async with open_database(config) as db:
        subject = await _find(db.pool, phone, lead)
        async with db.pool.acquire() as conn:
            try:
                report = await erase_subject(conn, subject, cli_user())
            except SubjectError as exc:
                raise UserError(str(exc)) from exc
        if report.recordings:
            # Their files now, where this host reaches them; else the daemon's purge pass does.
            await delete_recordings(db.pool, config.privacy.recordings_dir)
        return report


def export(
    ctx: typer.Context,
    phone: Phone = None,
    lead: LeadId = None,
    region: Region = None,
) -> None:
    """Print everything held about one person as JSON (a subject access request); audited."""
    config = cli_state(ctx).loaded.config
    number = _subject_args(config, phone, lead, region)
    typer.echo(json.dumps(run_async(_export(config, number, lead)), indent=2, ensure_ascii=False))


async def _export(config: Config, phone: str | None, lead: int | None) -> dict[str, object]:
    async with open_database(config) as db:
        subject = await _find(db.pool, phone, lead)
        async with db.pool.acquire() as conn, conn.transaction():
            data = await export_subject(conn, subject)
            counts = {k: len(v) for k, v in data.items() if isinstance(v, list)}
            await record_access(
                conn, cli_user(), "personal_data.export", "subject", subject.phone_e164, counts
            )
        return data
