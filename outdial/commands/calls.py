"""`outdial calls list` and `outdial calls show CALL_ID`: read calls back as conversations.

Reading a call is reading a person's data: `show` is audited as `call.read` about the person
called, `list` as `calls.list` (who: `cli:<user>`), like the API's reads.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import textwrap
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from analytics.evaluation import parse_span
from api.schemas import CallOut, TurnOut
from api.transcript import call_document, sparkline
from compliance.redact import redact
from outdial.commands.privacy import cli_user
from outdial.commands.report import open_database
from outdial.config import Config
from outdial.context import FLAG, cli_state, run_async
from outdial.errors import UserError
from store.calls import (
    CallFilter,
    calls_by_id,
    list_calls,
    matching_call_ids,
    phone_of_call,
    with_turns,
)
from store.tokens import record_access

app = typer.Typer(help="Read calls back: list them, show one as a conversation.")

GRADES = ("A", "B", "C", "D", "E", "F")
MAX_LIST = 1000
# The conversation's time and speaker columns; the text wraps in the rest of the width.
_GUTTER = 20
_WIDTH = (60, 120)
# A shorter start of a call id matches too many to be worth reading every id for.
MIN_PREFIX = 4
# The call ids `calls list` prints (a prefix `calls show` accepts).
_LIST_ID = 10
# The call header's label column.
_LABEL = 11


class Transfer(StrEnum):
    yes = "yes"
    no = "no"


def when_option(text: str, now: datetime, option: str) -> datetime:
    """A span before now (`24h`, `7d`) or a date/time (`2026-11-01`, `2026-11-01T09:00Z`;
    UTC unless it says otherwise)."""
    try:
        return now - parse_span(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a span like 1h, 24h or 7d nor a date/time like 2026-11-01 "
            "or 2026-11-01T09:00Z",
            param_hint=option,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _shown(config: Config, text: str | None) -> str | None:
    if text is None or not config.compliance.redaction:
        return text
    return redact(text, config.compliance.phone_regions).text


# -- list --------------------------------------------------------------------------------------


def _duration(row: Any) -> float | None:
    began = row["bot_started_at"] or row["answered_at"]
    if began is None or row["ended_at"] is None:
        return None
    return round((row["ended_at"] - began).total_seconds(), 1)


def summary_of(row: Any) -> dict[str, Any]:
    """One line of `calls list --json`."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "call_id": row["call_id"],
        "campaign": row["campaign"],
        "dialled_at": iso(row["dialled_at"]),
        "answered_at": iso(row["answered_at"]),
        "bot_started_at": iso(row["bot_started_at"]),
        "ended_at": iso(row["ended_at"]),
        "duration_s": _duration(row),
        "disposition": row["disposition"],
        "outcome": row["outcome"],
        "success": row["success"],
        "grade": row["grade"],
        "amd_status": row["amd_status"],
        "script": row["script"],
        "script_version": row["script_version"],
        "variant": row["variant"],
        "transfer_target": row["transfer_target"],
        "transfer_reason": row["transfer_reason"],
        "turns": row["turn_count"],
        "recording_path": row["recording_path"],
    }


async def _list(config: Config, wanted: CallFilter) -> list[dict[str, Any]]:
    async with open_database(config) as db, db.pool.acquire() as conn, conn.transaction():
        rows = await list_calls(conn, wanted)
        await record_access(
            conn,
            cli_user(),
            "calls.list",
            "calls",
            None,
            {"calls": len(rows), "campaign": wanted.campaign},
        )
    return [summary_of(r) for r in rows]


def _short_time(text: str | None) -> str:
    return "-" if text is None else datetime.fromisoformat(text).strftime("%m-%d %H:%M:%S")


def list_table(calls: list[dict[str, Any]]) -> Table:
    """The list at any width from 80 columns: the id is cut to 10 characters (`calls show`
    takes a prefix), times, dispositions and figures are whole, and only campaign and outcome
    names are cut (with an ellipsis) when the terminal is narrow."""
    table = Table(box=None, pad_edge=False, header_style="bold")

    def fixed(header: str, width: int, justify: Literal["left", "right"] = "left") -> None:
        table.add_column(header, no_wrap=True, min_width=width, max_width=width, justify=justify)

    fixed("call", _LIST_ID)
    fixed("dialled UTC", 14)
    table.add_column("campaign", no_wrap=True, overflow="ellipsis", ratio=2)
    fixed("disposition", 11)
    table.add_column("outcome", no_wrap=True, overflow="ellipsis", ratio=1)
    fixed("gr", 2)
    fixed("secs", 4, "right")
    fixed("rec", 3)
    for c in calls:
        cells = [
            c["call_id"][:_LIST_ID],
            _short_time(c["dialled_at"] or c["bot_started_at"]),
            c["campaign"] or "-",
            c["disposition"] or "live",
            c["outcome"] or "-",
            c["grade"] or "-",
        ]
        duration = c["duration_s"]
        cells += [
            "-" if duration is None else f"{duration:.0f}",
            "yes" if c["recording_path"] else "",
        ]
        table.add_row(*cells)
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")] = None,
    disposition: Annotated[
        str | None,
        typer.Option(
            "--disposition",
            help="completed, transferred, abandoned, machine, failed, busy, no_answer, ...",
        ),
    ] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="The script's outcome (e.g. confirmed).")
    ] = None,
    grade: Annotated[
        str | None, typer.Option("--grade", help="The lead's grade after the call (A-F).")
    ] = None,
    transferred: Annotated[
        Transfer | None,
        typer.Option("--transferred", help="yes: only calls handed to a person; no: none."),
    ] = None,
    since: Annotated[
        str, typer.Option("--since", help="Dialled since: a span (24h, 7d) or a date/time.")
    ] = "24h",
    until: Annotated[
        str | None,
        typer.Option("--until", help="Dialled before: a span ago or a date/time (default: now)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LIST, help="Newest calls shown at most.")
    ] = 50,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON array of calls (with call_id).", metavar=FLAG),
    ] = False,
) -> None:
    """Calls newest first, with their campaign, disposition, outcome and length; filter by
    campaign, disposition, outcome, grade, transfer and time."""
    now = datetime.now(UTC)
    if grade is not None and grade.upper() not in GRADES:
        raise typer.BadParameter(
            f"{grade!r} is not one of {', '.join(GRADES)}", param_hint="--grade"
        )
    wanted = CallFilter(
        since=when_option(since, now, "--since"),
        until=now if until is None else when_option(until, now, "--until"),
        campaign=campaign,
        disposition=disposition,
        outcome=outcome,
        grade=grade.upper() if grade else None,
        transferred=None if transferred is None else transferred is Transfer.yes,
        limit=limit,
    )
    calls = run_async(_list(cli_state(ctx).loaded.config, wanted))
    if as_json:
        typer.echo(json.dumps(calls, indent=2, ensure_ascii=False))
        return
    console = Console(highlight=False)
    if not calls:
        console.print("no calls match (widen --since?)")
        return
    table = list_table(calls)
    # Narrower than the names: share the room out by ratio (rich does that only when expanding).
    unbounded = console.options.update_width(10_000)
    table.expand = console.measure(table, options=unbounded).maximum > console.width
    console.print(table)
    if len(calls) == limit:
        console.print(f"(the newest {limit}; --limit shows more)")


# -- show --------------------------------------------------------------------------------------


async def _resolve(conn: asyncpg.Connection, given: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", given):
        raise UserError(f"{given!r} is not a call id (or the first 4 or more characters of one)")
    found = await matching_call_ids(conn, given, min_prefix=MIN_PREFIX)
    if not found:
        short = f" (a prefix needs {MIN_PREFIX} characters)" if len(given) < MIN_PREFIX else ""
        raise UserError(f"no call with id {given!r}{short}")
    if len(found) > 1:
        listed = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise UserError(f"{given!r} is the start of several call ids ({listed}): give more")
    return found[0]


async def load_call(config: Config, given: str) -> CallOut:
    """The call's document, its read audited as `call.read` about the person called."""
    async with open_database(config) as db, db.pool.acquire() as conn:
        call_id = await _resolve(conn, given)
        async with conn.transaction():
            rows = await with_turns(conn, await calls_by_id(conn, [call_id]))
            phone = await phone_of_call(conn, call_id)
            await record_access(conn, cli_user(), "call.read", f"call/{call_id}", phone)
    return await asyncio.to_thread(call_document, rows[0], lambda t: _shown(config, t))


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "   -   "
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}".rjust(7)


def _utc(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _wrap(text: str, width: int, indent: int) -> list[str]:
    pad = " " * indent
    lines = textwrap.wrap(text, width - indent) or [""]
    return [lines[0]] + [pad + line for line in lines[1:]]


def _header(call: CallOut, width: int) -> list[str]:
    lines: list[tuple[str, str]] = [("campaign", call.campaign or "-")]
    script = f"{call.script or '-'}" + (f" v{call.script_version}" if call.script_version else "")
    lines.append(("script", f"{script}, variant {call.variant or '-'}"))
    dialled = _utc(call.dialled_at)
    if call.dialled_at and call.answered_at:
        answered = (call.answered_at - call.dialled_at).total_seconds()
        dialled += f", answered after {answered:.1f} s"
    lines.append(("dialled", dialled))
    amd = call.amd_status or "-"
    lines.append(("AMD", amd + (f" ({call.amd_cause})" if call.amd_cause else "")))
    if call.bot_started_at is not None:
        bot = f"from {call.bot_started_at.astimezone(UTC):%H:%M:%S} UTC"
        if call.ended_at is not None:
            bot = f"{(call.ended_at - call.bot_started_at).total_seconds():.1f} s {bot}"
        if call.greeting_latency_ms is not None:
            bot += f", greeting after {call.greeting_latency_ms:.0f} ms"
        lines.append(("bot", bot))
    ended = call.disposition or "live"
    ended += f", outcome {call.outcome or '-'}"
    if call.success is not None:
        ended += ", success" if call.success else ", not a success"
    if call.hangup_side:
        ended += f", hung up by {call.hangup_side}"
    lines.append(("ended", ended))
    if call.transfer_target or call.transfer_reason:
        lines.append(("transfer", f"{call.transfer_target or '-'}: {call.transfer_reason or '-'}"))
    if call.summary:
        lines.append(("summary", call.summary))
    lines.append(("recording", call.recording_path or "not recorded"))
    scores = [t.agitation for t in call.turns if t.agitation is not None]
    agitation = "-" if not scores else f"{sparkline(scores)} peak {max(scores):.2f}"
    lines.append(("agitation", agitation))
    out = [f"call {call.call_id}"]
    for label, value in lines:
        out += _wrap(f"{label.ljust(_LABEL)}{value}", width, _LABEL)
    return out


def _turn_details(turn: TurnOut) -> str:
    parts = [f"[{turn.node}]" if turn.node else ""]
    if turn.speaker == "customer":
        if turn.intent:
            parts.append(f"intent {turn.intent} {_num(turn.intent_confidence)}")
        if turn.asr_confidence is not None:
            parts.append(f"asr {_num(turn.asr_confidence)}")
        if turn.agitation is not None:
            parts.append(f"agitation {_num(turn.agitation)}")
        if turn.barge_in:
            parts.append("barge-in")
    if turn.reply_ms is not None:
        reply = f"reply {turn.reply_ms:.0f} ms"
        if turn.processing_ms is not None:
            reply += f" (processing {turn.processing_ms:.0f} ms)"
        parts.append(reply)
    return ", ".join(p for p in parts if p)


def _said(turn: TurnOut) -> str:
    if turn.dtmf:
        return f"keys {turn.dtmf}"
    return turn.text or "(nothing recognised)"


def render_call(call: CallOut, width: int = 80) -> list[str]:
    """`outdial calls show` as lines of at most `width` characters."""
    out = _header(call, width)
    out.append("")
    entries: list[tuple[float, int, list[str]]] = []
    text_width = width - _GUTTER
    pad = " " * _GUTTER
    for turn in call.turns:
        lines = [pad + line for line in textwrap.wrap(_said(turn), text_width)] or [pad]
        lines[0] = f"{_clock(turn.offset_s)}  {turn.speaker:<9}  " + lines[0][_GUTTER:]
        details = _turn_details(turn)
        if details:
            lines += [pad + line for line in textwrap.wrap(details, text_width)]
        entries.append((turn.offset_s if turn.offset_s is not None else 1e9, turn.seq, lines))
    for event in call.compliance_events:
        what = f"! {event.category} ({event.direction}): {event.action}"
        if event.term:
            what += f" '{event.term}'"
        if event.node:
            what += f" [{event.node}]"
        lines = [f"{_clock(event.offset_s)}  " + line for line in textwrap.wrap(what, width - 9)]
        entries.append((event.offset_s if event.offset_s is not None else 1e9, 1 << 30, lines))
    for _, _, lines in sorted(entries, key=lambda e: (e[0], e[1])):
        out += lines
    if not call.turns:
        out.append("(no turns: the bot did not talk to anyone on this call)")
    return out


def terminal_width() -> int:
    columns = shutil.get_terminal_size((80, 24)).columns
    return min(max(columns, _WIDTH[0]), _WIDTH[1])


@app.command()
def show(
    ctx: typer.Context,
    call_id: Annotated[str, typer.Argument(help="The call's id, or its first characters.")],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the call as JSON (with a turns array).", metavar=FLAG),
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw the call's timeline (who spoke when, reply gaps, agitation) to "
            "this PNG file.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """One call as a conversation: each turn with its time, speaker, text (redacted), node,
    intent, timing, barge-ins, agitation; compliance hits, AMD verdict, disposition, transfer,
    variant and where the recording is."""
    config = cli_state(ctx).loaded.config
    call = run_async(load_call(config, call_id))
    if as_json:
        typer.echo(call.model_dump_json(indent=2))
    else:
        typer.echo("\n".join(render_call(call, terminal_width())))
    if plot is not None:
        from outdial.callplot import draw_timeline  # matplotlib: only when asked for

        draw_timeline(call, plot)
        typer.echo(f"timeline drawn to {plot}", err=as_json)
