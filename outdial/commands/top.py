"""`outdial top`: a live view of the floor for the supervisor, refreshed every second.

It reads the database (store/floor.py: calls on the line, rates, trunks, reply latency), which
every daemon of a cluster writes, and asks the local daemon's metrics endpoint whether it is up
and logged in to AMI. It fits an 80x24 terminal over SSH: one line per figure, then as many
calls as the height leaves, and never a phone number (calls are named by their id).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import aiohttp
import asyncpg
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from api.transcript import sparkline
from dialer.dispositions import HUMAN_ANSWERED
from outdial.commands.report import open_database
from outdial.config import Config
from outdial.context import FLAG, cli_state, run_async
from store.floor import (
    Abandoned,
    CampaignRates,
    LiveCall,
    TrunkUse,
    abandoned_30d,
    campaign_rates,
    live_calls,
    reply_latency_p95,
    transfers_waiting,
    trunk_use,
)

# The answer rate is measured over attempts settled this long ago at most.
ANSWER_WINDOW_S = 15 * 60.0
LATENCY_WINDOW_S = 60.0
# The 30-day abandoned count scans a month of attempts: read it this often, not every second.
ABANDONED_EVERY_S = 30.0
# Lines above the calls table (figures, blank line, table header) and below it (the "more").
_HEADER_LINES = 7
_FOOTER_LINES = 1


@dataclass(frozen=True)
class DaemonState:
    reachable: bool
    ami_connected: bool | None = None
    sessions: int | None = None  # call sessions the local daemon runs


@dataclass
class Floor:
    """One refresh."""

    at: datetime
    calls: list[LiveCall]
    trunks: list[TrunkUse]
    rates: list[CampaignRates]
    abandoned: list[Abandoned]
    transfers_waiting: int
    reply_p95_ms: float | None
    replies: int
    daemon: DaemonState
    trunk_limits: dict[str, int] = field(default_factory=dict)
    abandoned_cap: float = 0.03


def parse_metrics(text: str) -> DaemonState:
    """The daemon's own view from its Prometheus text: AMI login and sessions running."""
    ami, sessions = None, 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "outdial_ami_connected":
                ami = sample.value >= 1
            elif sample.name == "outdial_active_calls":
                sessions += int(sample.value)
    return DaemonState(True, ami, sessions)


async def daemon_state(session: aiohttp.ClientSession, url: str) -> DaemonState:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=0.5)) as response:
            if response.status != 200:
                return DaemonState(False)
            return parse_metrics(await response.text())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return DaemonState(False)


class FloorReader:
    """Reads a Floor each refresh; the slow 30-day figure only every ABANDONED_EVERY_S."""

    def __init__(self, pool: asyncpg.Pool, config: Config, metrics_url: str) -> None:
        self.pool = pool
        self.config = config
        self.metrics_url = metrics_url
        self._abandoned: list[Abandoned] = []
        self._abandoned_at = -1e9

    async def read(self, http: aiohttp.ClientSession) -> Floor:
        max_call_s = self.config.dialer.max_call_s
        async with self.pool.acquire() as conn:
            if time.monotonic() - self._abandoned_at > ABANDONED_EVERY_S:
                self._abandoned = await abandoned_30d(conn, sorted(HUMAN_ANSWERED))
                self._abandoned_at = time.monotonic()
            calls = await live_calls(conn, max_call_s)
            trunks = await trunk_use(conn, max_call_s)
            rates = await campaign_rates(conn, ANSWER_WINDOW_S, max_call_s)
            waiting = await transfers_waiting(conn, max_call_s)
            p95, replies = await reply_latency_p95(conn, LATENCY_WINDOW_S)
        return Floor(
            at=datetime.now(UTC),
            calls=calls,
            trunks=trunks,
            rates=rates,
            abandoned=self._abandoned,
            transfers_waiting=waiting,
            reply_p95_ms=p95,
            replies=replies,
            daemon=await daemon_state(http, self.metrics_url),
            trunk_limits={t.name: t.max_channels for t in self.config.trunks},
            abandoned_cap=self.config.dialer.abandoned_limit,
        )


# -- drawing -----------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> str:
    return "-" if whole == 0 else f"{part / whole:.0%}"


def _line(*parts: str) -> Text:
    return Text("  ".join(p for p in parts if p), no_wrap=True, overflow="ellipsis")


def _daemon(state: DaemonState) -> str:
    if not state.reachable:
        return "daemon: metrics unreachable"
    ami = {None: "", True: ", AMI up", False: ", AMI DOWN"}[state.ami_connected]
    return f"daemon up{ami}, {state.sessions} sessions"


def _abandoned(floor: Floor) -> str:
    """The worst campaign's 30-day abandoned rate against the cap."""
    rated = [(a.abandoned / a.person_answered, a.campaign) for a in floor.abandoned
             if a.person_answered]  # fmt: skip
    cap = f"cap {floor.abandoned_cap:.0%}"
    if not rated:
        return f"abandoned - ({cap})"
    rate, campaign = max(rated)
    flag = " OVER" if rate > floor.abandoned_cap else ""
    worst = f" {campaign}" if len(rated) > 1 else ""
    return f"abandoned {rate:.1%}{worst} ({cap}){flag}"


def _trunks(floor: Floor) -> str:
    if not floor.trunks:
        return "trunks: idle"
    shown = []
    for t in floor.trunks:
        limit = floor.trunk_limits.get(t.trunk)
        dialling = f" ({t.dialling} dialling)" if t.dialling else ""
        shown.append(f"{t.trunk} {t.in_use}/{limit or '?'}{dialling}")
    return "trunks: " + ", ".join(shown)


def _duration(floor: Floor, call: LiveCall) -> str:
    seconds = max(0, int((floor.at - call.started_at).total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _agitation(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} {sparkline([value])}"


def render_floor(floor: Floor, height: int = 24) -> Group:
    """The screen: figures, then the calls on the line, as many as `height` rows leave."""
    dialled = sum(r.dialled_last_minute for r in floor.rates)
    settled = sum(r.settled_recent for r in floor.rates)
    answered = sum(r.answered_recent for r in floor.rates)
    p95 = "-" if floor.reply_p95_ms is None else f"{floor.reply_p95_ms:.0f} ms"
    lines = [
        _line(f"outdial top  {floor.at:%H:%M:%S} UTC", _daemon(floor.daemon)),
        _line(
            f"dial {dialled}/min",
            f"answer {_pct(answered, settled)} (15 min)",
            _abandoned(floor),
        ),
        _line(
            f"transfers waiting {floor.transfers_waiting}",
            f"reply p95 {p95} (1 min, {floor.replies} replies)",
        ),
        _line(_trunks(floor)),
        _line(
            f"on the line: {len(floor.calls)} with the bot, "
            f"{sum(t.dialling for t in floor.trunks)} dialling"
        ),
    ]
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    table.add_column("call", no_wrap=True, max_width=10)
    table.add_column("campaign", no_wrap=True, overflow="ellipsis", max_width=22)
    table.add_column("node", no_wrap=True, overflow="ellipsis", max_width=22)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("agitation", no_wrap=True)
    room = max(1, height - _HEADER_LINES - _FOOTER_LINES)
    shown = floor.calls if len(floor.calls) <= room else floor.calls[: room - 1]
    for call in shown:
        table.add_row(
            call.call_id[:10],
            call.campaign or "-",
            call.node or "-",
            _duration(floor, call),
            _agitation(call.agitation),
        )
    parts: list[Text | Table] = [*lines, Text(""), table]
    if len(shown) < len(floor.calls):
        parts.append(Text(f"(+{len(floor.calls) - len(shown)} more calls)"))
    return Group(*parts)


# -- the command -------------------------------------------------------------------------------


async def _run(config: Config, metrics_url: str, interval: float, once: bool) -> None:
    console = Console(highlight=False)
    async with (
        open_database(config) as db,
        aiohttp.ClientSession() as http,
    ):
        reader = FloorReader(db.pool, config, metrics_url)
        if once:
            console.print(render_floor(await reader.read(http), console.height))
            return
        with Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                floor = await reader.read(http)
                live.update(render_floor(floor, console.height), refresh=True)
                await asyncio.sleep(interval)


def top(
    ctx: typer.Context,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, max=60, help="Seconds between refreshes.")
    ] = 1.0,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            "--metrics-url",
            help="The daemon's metrics (default: http://127.0.0.1:<metrics.port>/metrics).",
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Print one screen and exit.", metavar=FLAG)
    ] = False,
) -> None:
    """A live view of the floor: calls on the line (campaign, node, duration, agitation; no
    numbers), dial, answer and abandoned rates against the cap, transfers waiting, channels
    per trunk and the reply-latency p95 of the last minute. Ctrl-C quits."""
    config = cli_state(ctx).loaded.config
    url = metrics_url or f"http://127.0.0.1:{config.metrics.port}/metrics"
    with contextlib.suppress(KeyboardInterrupt):
        run_async(_run(config, url, interval, once))
