"""`outdial campaign ...`: create, list, pause, resume and inspect dialling campaigns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dialer.campaigns import (
    Campaign,
    CampaignError,
    CampaignSettings,
    CampaignStats,
    campaign_stats,
    create_campaign,
    list_campaigns,
    set_status,
)
from dialog import ScriptError, load_script
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from store.db import Database

app = typer.Typer(help="Dialling campaigns.", no_args_is_help=True)

T = TypeVar("T")


def _with_db(config: Config, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def _run() -> T:
        db = await Database.open(config.database, config.state_dir)
        try:
            async with db.pool.acquire() as conn:
                return await work(conn)
        except CampaignError as exc:
            raise UserError(str(exc)) from exc
        finally:
            await db.close()

    return run_async(_run())


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Campaign name (letters, digits, . _ -).")],
    script: Annotated[Path, typer.Option("--script", help="Conversation script YAML.")],
    max_channels: Annotated[int | None, typer.Option(min=1, help="Live calls at most.")] = None,
    cps: Annotated[float | None, typer.Option(min=0.001, help="Originates per second.")] = None,
    window: Annotated[
        str | None, typer.Option(help="Local calling hours, e.g. 09:00-21:00.")
    ] = None,
    days: Annotated[str | None, typer.Option(help="Calling days, e.g. mon-sat.")] = None,
    caller_id: Annotated[str | None, typer.Option(help="Caller ID number sent.")] = None,
    max_attempts: Annotated[int | None, typer.Option(min=1, help="Attempts per lead.")] = None,
    require_consent: Annotated[
        bool, typer.Option("--require-consent", help="Dial only leads with consent.")
    ] = False,
) -> None:
    """Create a campaign bound to a validated script."""
    config = cli_state(ctx).loaded.config
    try:
        loaded = load_script(script)
    except ScriptError as exc:
        raise UserError(f"script does not validate:\n{exc}") from exc
    try:
        settings = CampaignSettings(
            max_channels=max_channels,
            cps=cps,
            window=window,
            days=days,
            caller_id=caller_id,
            max_attempts=max_attempts,
            require_consent=require_consent,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"campaign settings: {problems}") from exc
    campaign = _with_db(
        config, lambda conn: create_campaign(conn, name, loaded.script.name, settings)
    )
    Console().print(f"created campaign {campaign.name} (id {campaign.id})")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every campaign with its status and script."""
    config = cli_state(ctx).loaded.config
    campaigns: list[Campaign] = _with_db(config, list_campaigns)
    table = Table("id", "name", "status", "script", "settings")
    for c in campaigns:
        shown = c.settings.model_dump(exclude_defaults=True, mode="json")
        table.add_row(str(c.id), c.name, c.status, c.script_name, str(shown or ""))
    Console().print(table)


@app.command()
def pause(ctx: typer.Context, name: str) -> None:
    """Stop dialling a campaign (calls in progress finish)."""
    config = cli_state(ctx).loaded.config
    _with_db(config, lambda conn: set_status(conn, name, "paused"))
    Console().print(f"paused {name}")


@app.command()
def resume(ctx: typer.Context, name: str) -> None:
    """Dial a paused campaign again."""
    config = cli_state(ctx).loaded.config
    _with_db(config, lambda conn: set_status(conn, name, "active"))
    Console().print(f"resumed {name}")


@app.command()
def stats(ctx: typer.Context, name: str) -> None:
    """Leads by status, attempts by disposition, answer and abandoned rates."""
    config = cli_state(ctx).loaded.config
    result: CampaignStats = _with_db(config, lambda conn: campaign_stats(conn, name))
    console = Console()
    console.print(f"campaign {name}")
    for status, n in sorted(result.leads_by_status.items()):
        console.print(f"  leads {status}: {n}")
    for disposition, n in sorted(result.attempts_by_disposition.items()):
        console.print(f"  attempts {disposition}: {n}")
    console.print(f"  live attempts: {result.live_attempts}")
    console.print(f"  answer rate: {_percent(result.answer_rate)}")
    console.print(f"  abandoned rate (30 days): {_percent(result.abandoned_rate_30d)}")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
