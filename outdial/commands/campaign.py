"""`outdial campaign ...`: create, list, pause, resume, archive, delete and inspect campaigns."""

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
    Status,
    campaign_stats,
    create_campaign,
    delete_campaign,
    list_campaigns,
    set_status,
)
from dialog import (
    RECORDING_NOT_ANNOUNCED,
    Script,
    ScriptError,
    announces_recording,
    load_script,
    parse_script,
)
from dialog.directory import ScriptDirectory, scan_scripts
from langpacks.install import plan_packs
from outdial.config import Config
from outdial.context import FLAG, cli_state, run_async
from outdial.errors import UserError
from store.db import Database
from store.scripts import STAGED_ONLY, LiveVersion, live_script_version, newest_script_version

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


def servable_script(spec: str, config: Config, *, record: bool = False) -> str:
    """The name of the script `spec` names (a script name or a file), once it is certain the
    daemon can serve it: it validates, sits in the daemon's scripts directory or has a live
    stored version (promoted), the language pack it needs is installed (and, for a campaign
    that records, it says so in its identification)."""
    directory = scan_scripts(config.scripts_path)
    if spec in directory.scripts:
        name, script = spec, directory.scripts[spec].script
    elif _names_a_file(spec):
        name = _script_in_directory(spec, directory, config)
        script = directory.scripts[name].script
    else:
        name, script = spec, _stored_live_script(spec, directory, config)
    plan = plan_packs(config, [script])
    if name in plan.refused:
        raise UserError(plan.refused[name])
    if record and not announces_recording(script):
        raise UserError(f"--record: {RECORDING_NOT_ANNOUNCED.format(name=name)}")
    return name


def _names_a_file(spec: str) -> bool:
    return Path(spec).suffix in (".yaml", ".yml") or Path(spec).exists()


def _stored_live_script(name: str, directory: ScriptDirectory, config: Config) -> Script:
    """The live stored version of `name` (promoted, or loaded once by the daemon), which the
    daemon serves without a file; a staged-only script is refused."""

    async def stored(conn: asyncpg.Connection) -> LiveVersion | int | None:
        return await live_script_version(conn, name) or await newest_script_version(conn, name)

    found = _with_db(config, stored)
    if found is None:
        raise UserError(
            f"--script {name!r}: {directory.why_not(name)}; no version of it is stored either"
        )
    if isinstance(found, int):
        raise UserError(f"--script {name!r}: {STAGED_ONLY.format(name=name, version=found)}")
    try:
        return parse_script(found.source, f"{name} version {found.version} (stored)").script
    except ScriptError as exc:  # valid when stored; the validator may have grown since
        message = f"--script {name!r}: the live stored version does not validate:\n{exc}"
        raise UserError(message) from exc


def _script_in_directory(spec: str, directory: ScriptDirectory, config: Config) -> str:
    """The name of the script file `spec`, once it is certain that the directory holds it."""
    path = Path(spec)
    try:
        name = load_script(path).script.name
    except ScriptError as exc:
        raise UserError(f"script does not validate:\n{exc}") from exc
    if name not in directory.scripts:
        raise UserError(
            f"script {name!r} ({path}) is not in the daemon's scripts directory "
            f"{config.scripts_path}: copy it there (then `systemctl reload outdial`)"
        )
    return name


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Campaign name (letters, digits, . _ -).")],
    script: Annotated[
        str,
        typer.Option(
            "--script",
            help="Script name (or its file) in the daemon's scripts directory "
            "(`outdial config show` prints scripts_dir), or the name of a promoted stored "
            "version (`outdial script versions NAME`).",
        ),
    ],
    max_channels: Annotated[int | None, typer.Option(min=1, help="Live calls at most.")] = None,
    cps: Annotated[float | None, typer.Option(min=0.001, help="Originates per second.")] = None,
    window: Annotated[
        str | None, typer.Option(help="Local calling hours, e.g. 09:00-21:00.")
    ] = None,
    days: Annotated[str | None, typer.Option(help="Calling days, e.g. mon-sat.")] = None,
    caller_id: Annotated[str | None, typer.Option(help="Caller ID number sent.")] = None,
    max_attempts: Annotated[int | None, typer.Option(min=1, help="Attempts per lead.")] = None,
    require_consent: Annotated[
        bool,
        typer.Option(
            "--require-consent",
            help="Dial only leads with recorded consent (a flag: no value).",
            metavar=FLAG,
        ),
    ] = False,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Record answered calls (MixMonitor; the script's identification must say the "
            "call may be recorded). A flag: no value.",
            metavar=FLAG,
        ),
    ] = False,
) -> None:
    """Create a campaign bound to a script the daemon serves (stored by name)."""
    config = cli_state(ctx).loaded.config
    script_name = servable_script(script, config, record=record)
    try:
        settings = CampaignSettings(
            max_channels=max_channels,
            cps=cps,
            window=window,
            days=days,
            caller_id=caller_id,
            max_attempts=max_attempts,
            require_consent=require_consent,
            record=record,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"campaign settings: {problems}") from exc
    campaign = _with_db(config, lambda conn: create_campaign(conn, name, script_name, settings))
    Console().print(f"created campaign {campaign.name} (id {campaign.id}, script {script_name})")


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[
        bool, typer.Option("--all", help="Archived campaigns too.", metavar=FLAG)
    ] = False,
) -> None:
    """Every campaign with its status (and why it is paused) and script."""
    config = cli_state(ctx).loaded.config
    campaigns: list[Campaign] = _with_db(config, lambda conn: list_campaigns(conn, archived=all_))
    table = Table("id", "name", "status", "script", "settings")
    for c in campaigns:
        shown = c.settings.model_dump(exclude_defaults=True, mode="json")
        table.add_row(str(c.id), c.name, c.status_text, c.script_name, str(shown or ""))
    Console(soft_wrap=True).print(table)


def _set_status(ctx: typer.Context, name: str, status: Status, done: str) -> None:
    config = cli_state(ctx).loaded.config
    _with_db(config, lambda conn: set_status(conn, name, status))
    Console().print(f"{done} {name}")


@app.command()
def pause(ctx: typer.Context, name: str) -> None:
    """Stop dialling a campaign (calls in progress finish)."""
    _set_status(ctx, name, "paused", "paused")


@app.command()
def resume(ctx: typer.Context, name: str) -> None:
    """Dial a paused campaign again."""
    _set_status(ctx, name, "active", "resumed")


@app.command()
def archive(ctx: typer.Context, name: str) -> None:
    """Finish with a campaign: never dialled again, hidden from `list` (records kept)."""
    _set_status(ctx, name, "archived", "archived")


@app.command()
def delete(ctx: typer.Context, name: str) -> None:
    """Delete a campaign that never placed a call, with its leads (else: archive it)."""
    config = cli_state(ctx).loaded.config
    leads = _with_db(config, lambda conn: delete_campaign(conn, name))
    Console().print(f"deleted {name} and its {leads} lead(s)")


@app.command()
def stats(ctx: typer.Context, name: str) -> None:
    """Status, leads by status, why leads are held back, attempts, answer and abandoned rates."""
    config = cli_state(ctx).loaded.config
    result: CampaignStats = _with_db(config, lambda conn: campaign_stats(conn, name))
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"campaign {name}: {result.campaign.status_text}")
    for status, n in sorted(result.leads_by_status.items()):
        console.print(f"  leads {status}: {n}")
    for reason, n in sorted(result.blocked_by_reason.items()):
        console.print(f"  blocked for good, {reason}: {n}")
    for reason, n in sorted(result.postponed_by_reason.items()):
        console.print(f"  waiting, {reason}: {n}")
    for disposition, n in sorted(result.attempts_by_disposition.items()):
        console.print(f"  attempts {disposition}: {n}")
    console.print(f"  live attempts: {result.live_attempts}")
    console.print(f"  answer rate: {_percent(result.answer_rate)}")
    console.print(f"  abandoned rate (30 days): {_percent(result.abandoned_rate_30d)}")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
