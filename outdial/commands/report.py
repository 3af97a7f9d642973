"""`outdial report`: the script effectiveness table the hourly A/B job acts on.

A single command, registered by `outdial.cli` as `app.command("report")(report)`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from analytics.evaluation import VariantStats, Window, campaign_exists, evaluate
from analytics.insights import Decisions, decisions
from analytics.variants import list_variants
from dialog.grading import GRADES
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from store.db import Database

_SPAN = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def parse_span(text: str) -> timedelta:
    """`90m`, `1h`, `24h`, `7d` -> timedelta."""
    match = _SPAN.match(text.strip())
    if not match or int(match[1]) == 0:
        raise typer.BadParameter(f"{text!r} is not a span like 1h, 24h or 7d", param_hint="--since")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


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


def render_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for name in ("script", "variant", "status"):
        table.add_column(name)
    for name in ("calls", "completed", "success", "avg dur s", "efficiency", "transfer",
                 "opt-out", "compliance"):  # fmt: skip
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            r["script_name"] or "-",
            r["variant"] or "-",
            r["status"] or "-",
            str(r["calls"]),
            str(r["completed"]),
            f"{_pct(r['success_rate'])} ({r['successes']})",
            _num(r["avg_duration_s"], 1),
            _num(r["efficiency"], 4),
            _pct(r["transfer_rate"]),
            _pct(r["opt_out_rate"]),
            str(r["compliance_hits"]),
        )
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
    window = Window.last(parse_span(since), datetime.now(UTC))
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
        console.print(render_table(rows, f"Script effectiveness, last {since}, {scope}"))
        for table in decision_tables(found):
            console.print(table)
