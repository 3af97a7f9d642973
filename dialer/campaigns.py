"""Campaigns: per-campaign settings (stored in `campaigns.settings`), their rules and stats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Literal, cast

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compliance import CallingWindow
from compliance import parse_days as parse_day_names
from dialer.dispositions import ANSWERED, HUMAN_ANSWERED
from dialer.settings import MAX_ATTEMPTS, MAX_CHANNELS, MAX_CPS, MAX_HOLIDAYS, DialerSettings
from store import campaigns as campaigns_db
from store.calls import abandoned_30d, attempts_by_disposition
from store.campaigns import CampaignRow
from store.leads import held_leads, leads_by_status

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


def _campaign(row: CampaignRow) -> Campaign:
    raw: Any = row.settings or {}
    try:
        settings = CampaignSettings.model_validate(raw)
    except ValidationError as exc:
        raise CampaignError(f"campaign {row.name!r} has unusable settings: {exc}") from exc
    return Campaign(
        row.id,
        row.name,
        row.script_name,
        cast(Status, row.status),
        settings,
        row.paused_reason,
        row.paused_detail,
    )


async def create_campaign(
    conn: asyncpg.Connection, name: str, script_name: str, settings: CampaignSettings
) -> Campaign:
    if not _NAME.match(name):
        # The name travels in channel variables and metric labels: keep it plain.
        raise CampaignError(
            f"campaign name {name!r}: use letters, digits, '.', '_' or '-', not starting with '.'"
        )
    row = await campaigns_db.insert_campaign(
        conn, name, script_name, settings.model_dump(mode="json", exclude_defaults=True)
    )
    if row is None:
        raise CampaignError(f"campaign {name!r} already exists")
    return _campaign(row)


async def get_campaign(conn: asyncpg.Connection, name: str) -> Campaign:
    row = await campaigns_db.campaign_by_name(conn, name)
    if row is None:
        raise CampaignError(f"no campaign named {name!r}")
    return _campaign(row)


async def list_campaigns(
    conn: asyncpg.Connection, *, active_only: bool = False, archived: bool = False
) -> list[Campaign]:
    rows = await campaigns_db.campaign_rows(conn, active_only=active_only, archived=archived)
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
    row = await campaigns_db.update_status(
        conn,
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
    return await campaigns_db.pause_if_active(conn, campaign_id, reason, detail)


async def restate_pause(
    conn: asyncpg.Connection, campaign_id: int, reason: PauseReason, detail: str
) -> bool:
    """Give a campaign paused for `reason` the current `detail` (the script that was missing
    is there now, but its language pack is not); True if the detail changed."""
    return await campaigns_db.restate_pause_detail(conn, campaign_id, reason, detail)


async def paused_for(conn: asyncpg.Connection, reason: PauseReason) -> list[Campaign]:
    return [_campaign(r) for r in await campaigns_db.paused_for_reason(conn, reason)]


async def resume_paused(conn: asyncpg.Connection, campaign_id: int, reason: PauseReason) -> bool:
    """Resume a campaign only if it is still paused for `reason` (an operator's pause stays)."""
    return await campaigns_db.resume_if_paused_for(conn, campaign_id, reason)


async def delete_campaign(conn: asyncpg.Connection, name: str) -> int:
    """Delete a campaign that never placed a call (with its leads); returns the leads removed.

    A campaign with calls keeps its records: archive it instead.
    """
    campaign = await get_campaign(conn, name)
    deleted = await campaigns_db.delete_if_unused(conn, campaign.id)
    if deleted.calls:
        raise CampaignError(
            f"campaign {name!r} has placed {deleted.calls} call(s): its records are kept; "
            "archive it instead (`outdial campaign archive`)"
        )
    return deleted.leads


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
    counts = await abandoned_30d(conn, campaign_id, sorted(HUMAN_ANSWERED))
    return counts.abandoned / counts.answered if counts.answered else None


async def campaign_stats(conn: asyncpg.Connection, name: str) -> CampaignStats:
    campaign = await get_campaign(conn, name)
    leads = await leads_by_status(conn, campaign.id)
    by_disposition = await attempts_by_disposition(conn, campaign.id)
    held = await held_leads(conn, campaign.id)
    live = by_disposition.pop("live", 0)
    settled = sum(by_disposition.values())
    answered = sum(n for d, n in by_disposition.items() if d in ANSWERED)
    return CampaignStats(
        campaign=campaign,
        blocked_by_reason={h.block_reason: h.leads for h in held if h.status == "blocked"},
        postponed_by_reason={h.block_reason: h.leads for h in held if h.status == "pending"},
        leads_by_status=leads,
        attempts_by_disposition=by_disposition,
        live_attempts=live,
        answer_rate=answered / settled if settled else None,
        abandoned_rate_30d=await abandoned_rate_30d(conn, campaign.id),
    )
