"""Campaigns: per-campaign settings (stored in `campaigns.settings`), their rules and stats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compliance import CallingWindow
from compliance import parse_days as parse_day_names
from dialer.dispositions import ANSWERED, HUMAN_ANSWERED
from dialer.settings import MAX_ATTEMPTS, MAX_CHANNELS, MAX_CPS, MAX_HOLIDAYS, DialerSettings

# Letters, digits, '.', '_', '-', not starting with '.': the name travels in URL paths, where
# proxies normalise `.` and `..` away, in channel variables and in metric labels.
CAMPAIGN_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(CAMPAIGN_NAME_PATTERN)
_CALLER_ID = re.compile(r"^\+?[0-9]{2,20}$")

Status = Literal["active", "paused", "finished", "archived"]


class PauseReason(StrEnum):
    """Why a campaign is paused (`campaigns.paused_reason`)."""

    OPERATOR = "operator"  # `campaign pause` or the API
    # The daemon cannot serve the campaign's script; it resumes the campaign once it can.
    SCRIPT_UNAVAILABLE = "script_unavailable"


class CampaignError(ValueError):
    """A campaign that does not exist or settings that cannot be used."""


def parse_window(text: str) -> CallingWindow:
    """`09:00-21:00`: local times a call may start, start <= t < end, within one day."""
    try:
        return CallingWindow.parse(text)
    except ValueError as exc:
        raise CampaignError(str(exc)) from exc


def parse_days(text: str) -> frozenset[int]:
    """`mon-sat`, `mon,wed,fri` or `fri-mon` as weekday numbers (Monday = 0)."""
    try:
        return parse_day_names(text)
    except ValueError as exc:
        raise CampaignError(str(exc)) from exc


class CampaignSettings(BaseModel):
    """What `outdial campaign create` sets; None falls back to the dialer's defaults."""

    model_config = ConfigDict(extra="forbid")

    max_channels: int | None = Field(default=None, ge=1, le=MAX_CHANNELS)
    cps: float | None = Field(default=None, gt=0, le=MAX_CPS)
    window: str | None = Field(default=None, max_length=32)
    days: str | None = Field(default=None, max_length=64)
    holidays: list[date] = Field(default_factory=list, max_length=MAX_HOLIDAYS)
    caller_id: str | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    max_attempts_per_day: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    require_consent: bool = False
    # Record answered calls (Asterisk's MixMonitor, started by the deploy dialplan when the
    # dialer sets OUTDIAL_RECORD=1); the script's identification must say so.
    record: bool = False
    # Trunk names to dial out on; empty: every configured trunk.
    trunks: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            parse_window(value)
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: str | None) -> str | None:
        if value is not None:
            parse_days(value)
        return value

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        if value is not None and not _CALLER_ID.match(value):
            raise ValueError(f"caller_id {value!r}: digits with an optional leading +")
        return value


@dataclass(frozen=True)
class CallingPolicy:
    """The compliance rules one campaign applies to each of its leads."""

    window: CallingWindow
    days: frozenset[int]
    holidays: frozenset[date]
    max_attempts: int
    max_attempts_per_day: int
    require_consent: bool


def calling_policy(settings: CampaignSettings, defaults: DialerSettings) -> CallingPolicy:
    return CallingPolicy(
        window=parse_window(settings.window or defaults.window),
        days=parse_days(settings.days or defaults.days),
        holidays=frozenset([*defaults.holidays, *settings.holidays]),
        max_attempts=settings.max_attempts or defaults.max_attempts,
        max_attempts_per_day=settings.max_attempts_per_day or defaults.max_attempts_per_day,
        require_consent=settings.require_consent,
    )


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    script_name: str
    status: Status
    settings: CampaignSettings
    paused_reason: str | None = None
    paused_detail: str | None = None

    @property
    def status_text(self) -> str:
        """`paused (script_unavailable: script 'x' is not in /etc/outdial/scripts)`."""
        if self.status != "paused" or self.paused_reason is None:
            return self.status
        why = self.paused_reason + (f": {self.paused_detail}" if self.paused_detail else "")
        return f"paused ({why})"


def _campaign(row: asyncpg.Record) -> Campaign:
    raw: Any = row["settings"] or {}
    try:
        settings = CampaignSettings.model_validate(raw)
    except ValidationError as exc:
        raise CampaignError(f"campaign {row['name']!r} has unusable settings: {exc}") from exc
    return Campaign(
        row["id"],
        row["name"],
        row["script_name"],
        row["status"],
        settings,
        row["paused_reason"],
        row["paused_detail"],
    )


async def create_campaign(
    conn: asyncpg.Connection, name: str, script_name: str, settings: CampaignSettings
) -> Campaign:
    if not _NAME.match(name):
        # The name travels in channel variables and metric labels: keep it plain.
        raise CampaignError(
            f"campaign name {name!r}: use letters, digits, '.', '_' or '-', not starting with '.'"
        )
    row = await conn.fetchrow(
        """INSERT INTO campaigns (name, script_name, settings) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO NOTHING RETURNING *""",
        name,
        script_name,
        settings.model_dump(mode="json", exclude_defaults=True),
    )
    if row is None:
        raise CampaignError(f"campaign {name!r} already exists")
    return _campaign(row)


async def get_campaign(conn: asyncpg.Connection, name: str) -> Campaign:
    row = await conn.fetchrow("SELECT * FROM campaigns WHERE name = $1", name)
    if row is None:
        raise CampaignError(f"no campaign named {name!r}")
    return _campaign(row)


async def list_campaigns(
    conn: asyncpg.Connection, *, active_only: bool = False, archived: bool = False
) -> list[Campaign]:
    rows = await conn.fetch(
        """SELECT * FROM campaigns
            WHERE (NOT $1 OR status = 'active') AND ($2 OR status <> 'archived')
            ORDER BY id""",
        active_only,
        archived,
    )
    return [_campaign(r) for r in rows]


async def set_status(
    conn: asyncpg.Connection,
    name: str,
    status: Status,
    reason: PauseReason | None = None,
    detail: str | None = None,
) -> Campaign:
    """Set a campaign's status; a pause records its reason, anything else clears it."""
    if status == "paused" and reason is None:
        reason = PauseReason.OPERATOR
    row = await conn.fetchrow(
        """UPDATE campaigns SET status = $2, paused_reason = $3, paused_detail = $4,
                                updated_at = now()
            WHERE name = $1 RETURNING *""",
        name,
        status,
        reason if status == "paused" else None,
        detail if status == "paused" else None,
    )
    if row is None:
        raise CampaignError(f"no campaign named {name!r}")
    return _campaign(row)


async def pause_active(
    conn: asyncpg.Connection, campaign_id: int, reason: PauseReason, detail: str
) -> bool:
    """Pause a campaign if it is still active (another daemon may have got there first)."""
    paused = await conn.fetchval(
        """UPDATE campaigns SET status = 'paused', paused_reason = $2, paused_detail = $3,
                                updated_at = now()
            WHERE id = $1 AND status = 'active' RETURNING true""",
        campaign_id,
        reason,
        detail,
    )
    return bool(paused)


async def restate_pause(
    conn: asyncpg.Connection, campaign_id: int, reason: PauseReason, detail: str
) -> bool:
    """Give a campaign paused for `reason` the current `detail` (the script that was missing
    is there now, but its language pack is not); True if the detail changed."""
    changed = await conn.fetchval(
        """UPDATE campaigns SET paused_detail = $3, updated_at = now()
            WHERE id = $1 AND status = 'paused' AND paused_reason = $2
              AND paused_detail IS DISTINCT FROM $3 RETURNING true""",
        campaign_id,
        reason,
        detail,
    )
    return bool(changed)


async def paused_for(conn: asyncpg.Connection, reason: PauseReason) -> list[Campaign]:
    rows = await conn.fetch(
        "SELECT * FROM campaigns WHERE status = 'paused' AND paused_reason = $1 ORDER BY id",
        reason,
    )
    return [_campaign(r) for r in rows]


async def resume_paused(conn: asyncpg.Connection, campaign_id: int, reason: PauseReason) -> bool:
    """Resume a campaign only if it is still paused for `reason` (an operator's pause stays)."""
    resumed = await conn.fetchval(
        """UPDATE campaigns SET status = 'active', paused_reason = NULL, paused_detail = NULL,
                                updated_at = now()
            WHERE id = $1 AND status = 'paused' AND paused_reason = $2 RETURNING true""",
        campaign_id,
        reason,
    )
    return bool(resumed)


async def delete_campaign(conn: asyncpg.Connection, name: str) -> int:
    """Delete a campaign that never placed a call (with its leads); returns the leads removed.

    A campaign with calls keeps its records: archive it instead.
    """
    campaign = await get_campaign(conn, name)
    async with conn.transaction():
        calls = await conn.fetchval(
            "SELECT count(*) FROM call_attempts WHERE campaign_id = $1", campaign.id
        )
        if calls:
            raise CampaignError(
                f"campaign {name!r} has placed {calls} call(s): its records are kept; "
                "archive it instead (`outdial campaign archive`)"
            )
        leads = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE campaign_id = $1", campaign.id
        )
        await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign.id)
    return int(leads)


@dataclass(frozen=True)
class CampaignStats:
    campaign: Campaign
    leads_by_status: dict[str, int]
    # Leads the dialer's gates held back, by reason: for good (`blocked`, e.g. dnc) and for
    # now (`pending` with a reason, e.g. outside_window: dialled when it allows).
    blocked_by_reason: dict[str, int]
    postponed_by_reason: dict[str, int]
    attempts_by_disposition: dict[str, int]
    live_attempts: int
    answer_rate: float | None  # answered (person or machine) / settled attempts
    abandoned_rate_30d: float | None  # abandoned / calls a person answered, last 30 days


async def abandoned_rate_30d(conn: asyncpg.Connection, campaign_id: int) -> float | None:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE disposition = 'abandoned') AS abandoned,
                  count(*) FILTER (WHERE disposition = ANY($2::text[])) AS answered
           FROM call_attempts
           WHERE campaign_id = $1 AND ended_at > now() - interval '30 days'""",
        campaign_id,
        sorted(HUMAN_ANSWERED),
    )
    return row["abandoned"] / row["answered"] if row["answered"] else None


async def campaign_stats(conn: asyncpg.Connection, name: str) -> CampaignStats:
    campaign = await get_campaign(conn, name)
    leads = await conn.fetch(
        "SELECT status, count(*) AS n FROM leads WHERE campaign_id = $1 GROUP BY status",
        campaign.id,
    )
    attempts = await conn.fetch(
        """SELECT coalesce(disposition, 'live') AS disposition, count(*) AS n
           FROM call_attempts WHERE campaign_id = $1 GROUP BY 1""",
        campaign.id,
    )
    held = await conn.fetch(
        """SELECT status, block_reason, count(*) AS n FROM leads
            WHERE campaign_id = $1 AND block_reason IS NOT NULL
              AND status IN ('blocked', 'pending')
            GROUP BY 1, 2""",
        campaign.id,
    )
    by_disposition = {r["disposition"]: r["n"] for r in attempts}
    live = by_disposition.pop("live", 0)
    settled = sum(by_disposition.values())
    answered = sum(n for d, n in by_disposition.items() if d in ANSWERED)
    return CampaignStats(
        campaign=campaign,
        blocked_by_reason={r["block_reason"]: r["n"] for r in held if r["status"] == "blocked"},
        postponed_by_reason={r["block_reason"]: r["n"] for r in held if r["status"] == "pending"},
        leads_by_status={r["status"]: r["n"] for r in leads},
        attempts_by_disposition=by_disposition,
        live_attempts=live,
        answer_rate=answered / settled if settled else None,
        abandoned_rate_30d=await abandoned_rate_30d(conn, campaign.id),
    )
