"""`outdial report`: the script effectiveness table the hourly A/B job acts on.

A single command, registered by `outdial.cli` as `app.command("report")(report)`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from analytics.evaluation import Window, evaluate, parse_span
from analytics.insights import Decisions, decisions
from dialog.grading import GRADES
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from store.campaigns import campaign_exists
from store.db import Database
from store.scripts import VariantStats, list_variants


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def since_option(text: str) -> timedelta:
    try:
        return parse_span(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc


@asynccontextmanager
async def open_database(config: Config) -> AsyncIterator[Database]:
    """The database for one command; an unreachable server is the operator's to fix."""
    try:
        db = await Database.open(config.database, config.state_dir)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise UserError(f"cannot open the database: {exc}") from exc
    try:
        yield db
    finally:
        await db.close()


def _row(stats: VariantStats, status: str | None) -> dict[str, Any]:
    return {**asdict(stats), "status": status}


async def collect(
    config: Config, window: Window, campaign: str | None
) -> tuple[list[dict[str, Any]], Decisions]:
    """The effectiveness rows, and the grades, churn risk, follow-ups and engagement."""
    async with open_database(config) as db:
        if campaign is not None and not await campaign_exists(db.pool, campaign):
            raise UserError(f"no campaign named {campaign!r}")
        stats = await evaluate(db.pool, window, campaign)
        statuses = {(v.script_name, v.variant): v.status for v in await list_variants(db.pool)}
        found = await decisions(db.pool, window, campaign)
    return [_row(s, statuses.get((s.script_name, s.variant))) for s in stats], found


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class ReportColumn:
    header: str  # short, so the table fits 80 columns
    cell: Callable[[dict[str, Any]], str]
    # Narrow terminals drop the highest first (0: never dropped); csv/json keep everything.
    drop_order: int = 0
    numeric: bool = True


REPORT_COLUMNS = (
    ReportColumn("script", lambda r: r["script_name"] or "-", numeric=False),
    ReportColumn("var", lambda r: r["variant"] or "-", numeric=False),
    ReportColumn("status", lambda r: r["status"] or "-", 4, numeric=False),
    ReportColumn("calls", lambda r: str(r["calls"])),
    ReportColumn("done", lambda r: str(r["completed"]), 3),
    ReportColumn("success", lambda r: f"{_pct(r['success_rate'])} ({r['successes']})"),
    ReportColumn("secs", lambda r: _num(r["avg_duration_s"], 1), 5),
    ReportColumn("effic.", lambda r: _num(r["efficiency"], 4), 6),
    ReportColumn("xfer", lambda r: _pct(r["transfer_rate"])),
    ReportColumn("opt-out", lambda r: _pct(r["opt_out_rate"])),
    ReportColumn("hits", lambda r: str(r["compliance_hits"]), 2),
)
# The padding between two columns (no vertical borders); the script column may wrap down to
# _SCRIPT_MIN.
_COLUMN_EDGES = 2
_SCRIPT_MIN = 10


def _fits(columns: list[ReportColumn], cells: list[list[str]], width: int) -> bool:
    needed = -_COLUMN_EDGES  # no padding outside the first and last columns
    for index, column in enumerate(columns):
        widest = max([len(column.header), *(len(row[index]) for row in cells)])
        if column.header == "script":
            widest = min(widest, _SCRIPT_MIN)
        needed += widest + _COLUMN_EDGES
    return needed <= width


def render_table(rows: list[dict[str, Any]], title: str, width: int = 80) -> Table:
    """The report for a terminal `width` columns wide: short headers, script names wrapped,
    and the least needed columns dropped (named in the caption) when it is still too narrow."""
    columns = list(REPORT_COLUMNS)
    while True:
        cells = [[c.cell(r) for c in columns] for r in rows]
        droppable = [c for c in columns if c.drop_order]
        if _fits(columns, cells, width) or not droppable:
            break
        columns.remove(max(droppable, key=lambda c: c.drop_order))
    hidden = [c.header for c in REPORT_COLUMNS if c not in columns]
    caption = (
        f"not shown at this width: {', '.join(hidden)} (--format csv or json has them)"
        if hidden
        else "var: variant, done: completed, secs: average length, effic.: 1/(secs + 0.1), "
        "xfer: transfer rate, hits: compliance hits"
    )
    table = Table(title=title, caption=caption, box=None, pad_edge=False)
    for column in columns:
        table.add_column(
            column.header,
            justify="right" if column.numeric else "left",
            overflow="fold",
            no_wrap=column.header != "script",
            min_width=_SCRIPT_MIN if column.header == "script" else None,
        )
    for row in cells:
        table.add_row(*row)
    return table


def decision_tables(found: Decisions) -> list[Table]:
    """Grades per script and variant, churn-risk bands, follow-ups and engagement per channel."""
    grades = Table(title="Lead grades per script and variant")
    for name in ("script", "variant", *GRADES, "graded"):
        grades.add_column(name, justify="left" if name in ("script", "variant") else "right")
    pivot: dict[tuple[str | None, str | None], dict[str, int]] = {}
    for g in found.grades:
        pivot.setdefault((g.script_name, g.variant), {})[g.grade] = g.calls
    for (script, variant), counts in pivot.items():
        cells = [str(counts.get(grade, 0)) for grade in GRADES]
        grades.add_row(script or "-", variant or "-", *cells, str(sum(counts.values())))
    churn = Table(title="Churn risk of the scored leads")
    churn.add_column("risk")
    churn.add_column("leads", justify="right")
    for band in found.churn:
        churn.add_row(band.label, str(band.leads))
    follow = Table(title="Follow-ups chosen per channel")
    follow.add_column("channel")
    follow.add_column("follow-ups", justify="right")
    for f in found.follow_ups:
        follow.add_row(f.channel or "none allowed", str(f.follow_ups))
    engagement = Table(title="Engagement per channel")
    for name in ("channel", "contacts", "responses", "response rate"):
        engagement.add_column(name, justify="left" if name == "channel" else "right")
    for e in found.engagement:
        engagement.add_row(e.channel, str(e.contacts), str(e.responses), _pct(e.response_rate))
    return [grades, churn, follow, engagement]


def render_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(VariantStats.__dataclass_fields__) + ["status"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def report(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", help="Window ending now: 1h, 24h, 7d (or Nm/Nh/Nd).")
    ] = "24h",
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")] = None,
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
) -> None:
    """Success rate, duration, efficiency, transfer and opt-out rates per script and variant;
    lead grades, churn risk, follow-ups and engagement per channel (CSV: the first table)."""
    window = Window.last(since_option(since), datetime.now(UTC))
    rows, found = run_async(collect(cli_state(ctx).loaded.config, window, campaign))
    if output is Format.json:
        document = {
            "since": window.since.isoformat(),
            "until": window.until.isoformat(),
            "campaign": campaign,
            "rows": rows,
            **found.as_json(),
        }
        typer.echo(json.dumps(document, indent=2))
    elif output is Format.csv:
        typer.echo(render_csv(rows), nl=False)
    else:
        scope = f"campaign {campaign}" if campaign else "all campaigns"
        console = Console()
        title = f"Script effectiveness, last {since}, {scope}"
        console.print(render_table(rows, title, console.width))
        for table in decision_tables(found):
            console.print(table)
