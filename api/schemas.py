"""Request and response bodies of the API; `docs/openapi.json` is generated from these."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from analytics.evaluation import SPAN_PATTERN
from dialer.campaigns import CAMPAIGN_NAME_PATTERN, CampaignSettings

MAX_BULK_LEADS = 5_000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _plain_text(value: str) -> str:
    # PostgreSQL text holds neither NUL nor lone surrogates (which JSON can smuggle in as
    # \u0000 and \ud800): refuse them here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("contains an unpaired UTF-16 surrogate") from exc
    return value


Text = Annotated[str, AfterValidator(_plain_text)]


def _field_value(value: Any) -> str:
    """A lead field as text, the way a CSV cell holds it: 35.5 -> "35.5", true -> "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _plain_text(value)
    raise ValueError("a field is a string, a number or a boolean")


FieldValue = Annotated[
    str,
    PlainValidator(_field_value),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
_AWARE_TIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _time_or_span(value: Any) -> datetime | str:
    """An RFC 3339 time with offset, or a span such as 24h (one clear error for either)."""
    if isinstance(value, str) and re.match(SPAN_PATTERN, value):
        return value.strip()
    try:
        return _AWARE_TIME.validate_python(value)
    except ValidationError as exc:
        raise ValueError(
            "expected an RFC 3339 time with offset (2024-06-01T00:00:00Z) or a span such as "
            "90m, 24h or 7d"
        ) from exc


TimeOrSpan = Annotated[
    datetime | str,
    PlainValidator(_time_or_span),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "pattern": SPAN_PATTERN, "examples": ["24h"]},
            ]
        }
    ),
]
CampaignName = Annotated[
    str,
    Field(
        pattern=CAMPAIGN_NAME_PATTERN,
        description="Letters, digits, '.', '_', '-'; not starting with '.' (so never . or ..).",
    ),
]
ExternalId = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^\S(.*\S)?$",
        description="The CRM's id of the lead, unique within a campaign.",
    ),
]
Region = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z]{2}$",
        description="Region (ISO 3166 code) for numbers written without +CC; "
        "default: the daemon's default_region.",
    ),
]
Phone = Annotated[Text, Field(max_length=64, description="A phone number, E.164 or national.")]


class _Request(BaseModel):
    # Strict: JSON types must match (no "12" for 12, no "yes" for true); unknown keys refused.
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- leads ------------------------------------------------------------------------------------


class _LeadValues(_Request):
    phone: Phone
    timezone: Annotated[Text, Field(max_length=64)] | None = Field(
        default=None,
        description="IANA zone of the lead; default: the number's zone when it has only one.",
    )
    priority: int | None = Field(
        default=None,
        description="Higher is dialled first (default 0).",
        json_schema_extra={"minimum": INT32_MIN, "maximum": INT32_MAX},
    )
    consent: bool | None = Field(default=None, description="Recorded consent (default false).")
    fields: dict[Text, FieldValue] = Field(
        default_factory=dict,
        max_length=200,
        description="Custom fields the conversation script can use, e.g. name, amount_due: "
        'strings, numbers or booleans, stored as text as a CSV cell holds them ("35.5").',
    )


class LeadIn(_LeadValues):
    """One lead, created or replaced under the external id in the path."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"phone": "+44 161 496 0000", "consent": True, "fields": {"name": "Ann"}}]
        }
    )

    region: Region | None = None


class BulkLead(_LeadValues):
    external_id: ExternalId


class BulkLeadsIn(_Request):
    """Up to 5,000 leads, all written or (on any error) none."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "region": "GB",
                    "leads": [
                        {"external_id": "crm-1002", "phone": "0161 496 0001"},
                        {"external_id": "crm-1003", "phone": "0161 496 0002", "priority": 5},
                    ],
                }
            ]
        }
    )

    region: Region | None = None
    leads: list[BulkLead] = Field(min_length=1, max_length=MAX_BULK_LEADS)


LeadStatus = Literal["pending", "leased", "done", "blocked", "failed"]


class LeadOut(_Response):
    id: int
    campaign: str
    external_id: str
    phone: str = Field(description="E.164.")
    timezone: str
    priority: int
    consent: bool
    fields: dict[str, Any]
    status: LeadStatus
    attempts: int
    last_disposition: str | None
    block_reason: str | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime


class BulkLeadResult(_Response):
    external_id: str
    id: int
    created: bool = Field(description="True: a new lead; false: an existing one was updated.")


class BulkLeadsOut(_Response):
    created: int
    updated: int
    leads: list[BulkLeadResult]


# -- campaigns --------------------------------------------------------------------------------


class CampaignSettingsIn(CampaignSettings):
    """Per-campaign dialling settings; unset values fall back to the daemon's defaults."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CampaignIn(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "summer",
                    "script": "collections_v1",
                    "settings": {"window": "09:00-20:00"},
                }
            ]
        }
    )

    name: CampaignName
    script: Annotated[Text, Field(min_length=1, max_length=200)] = Field(
        description="Name of a conversation script this daemon has loaded."
    )
    settings: CampaignSettingsIn = Field(default_factory=CampaignSettingsIn)


CampaignStatus = Literal["active", "paused", "finished", "archived"]


class CampaignOut(_Response):
    id: int
    name: str
    script: str
    status: CampaignStatus
    paused_reason: str | None = Field(
        description="Why a paused campaign is paused: operator (paused by hand or the API), "
        "script_unavailable (the daemon cannot serve its script; it resumes the campaign "
        "once the script loads)."
    )
    paused_detail: str | None = Field(description="The reason in a sentence.")
    settings: dict[str, Any] = Field(description="The settings that differ from the defaults.")


class CampaignList(_Response):
    campaigns: list[CampaignOut]


class CampaignStatsOut(_Response):
    campaign: str
    status: CampaignStatus
    paused_reason: str | None
    paused_detail: str | None
    leads_by_status: dict[str, int]
    blocked_by_reason: dict[str, int] = Field(
        description="Leads the dialer stopped for good, by reason (dnc, no_consent, ...)."
    )
    postponed_by_reason: dict[str, int] = Field(
        description="Leads waiting to be dialled again, by reason (outside_window, ...)."
    )
    attempts_by_disposition: dict[str, int]
    live_attempts: int
    answer_rate: float | None = Field(description="Answered / settled attempts.")
    abandoned_rate_30d: float | None = Field(
        description="Abandoned / calls a person answered, last 30 days."
    )


# -- DNC --------------------------------------------------------------------------------------


class DncQuery(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "+44 161 496 0000"}]})

    phone: Phone
    campaign: CampaignName | None = Field(
        default=None, description="A campaign's own list; absent: the global list."
    )
    region: Region | None = None
    channel: Literal["call", "sms", "push"] = Field(
        default="call",
        description="The channel the list is for: calls (the dialer's list), SMS or app "
        "push (the follow-ups); each channel has its own lists.",
    )


class DncIn(DncQuery):
    reason: Annotated[Text, Field(max_length=500)] | None = None


class DncAdded(_Response):
    added: bool = Field(description="False: the number was already on that list.")


class DncRemoved(_Response):
    removed: bool = Field(description="False: the number was not on that list.")


class DncStatus(_Response):
    listed: bool = Field(description="True when a call to the number would be blocked.")
    on_global_list: bool
    on_campaign_list: bool | None = Field(description="Null when no campaign was given.")


# -- calls ------------------------------------------------------------------------------------


class TurnOut(_Response):
    seq: int
    speaker: Literal["bot", "customer", "system"]
    node: str | None
    text: str = Field(description="Redacted as the daemon's compliance settings say.")
    intent: str | None
    intent_confidence: float | None
    asr_confidence: float | None
    agitation: float | None
    barge_in: bool
    dtmf: str | None
    at: datetime
    offset_s: float | None = Field(
        description="Seconds from the start of the bot's media to the start of the turn: the "
        "bot's first audio out, the customer's start of speech, else when it was logged."
    )
    end_offset_s: float | None = Field(
        description="Seconds from the start of the media to the customer's end of speech."
    )
    reply_ms: float | None = Field(
        description="A bot reply: the customer's end of speech to its first audio out."
    )
    processing_ms: float | None = Field(
        description="A bot reply: the end of the customer's turn (endpoint) to its first audio."
    )


class ComplianceEventOut(_Response):
    offset_s: float | None = Field(description="Seconds from the start of the bot's media.")
    direction: Literal["bot", "customer", "dialer"]
    category: str
    action: str
    node: str | None
    term: str | None = Field(description="The word heard or blocked, where one was.")
    at: datetime


class CallOut(_Response):
    call_id: str
    campaign: str | None
    external_id: str | None
    dialled_at: datetime | None
    answered_at: datetime | None
    bot_started_at: datetime | None
    ended_at: datetime | None
    disposition: str | None
    outcome: str | None
    success: bool | None
    amd_status: str | None
    amd_cause: str | None
    script: str | None
    script_version: int | None
    variant: str | None
    transfer_target: str | None
    transfer_reason: str | None
    hangup_side: str | None
    greeting_latency_ms: float | None
    summary: str | None
    recording_path: str | None = Field(
        description="The call's recording on the PBX host (MixMonitor's file), if recorded."
    )
    agitation_peak: float | None
    grade: Literal["A", "B", "C", "D", "E", "F"] | None = Field(
        description="The lead's grade from the script's grading rules (A best)."
    )
    grade_reason: str | None
    turns: list[TurnOut]
    compliance_events: list[ComplianceEventOut]


class CallList(_Response):
    calls: list[CallOut]


# -- reports and health -----------------------------------------------------------------------


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: TimeOrSpan | None = Field(
        default=None,
        description="Start: RFC 3339 with offset, or a span before `until` as the CLI's "
        "--since takes it (90m, 24h, 7d); default: 24h.",
    )
    until: AwareDatetime | None = Field(default=None, description="End; default: now.")
    campaign: CampaignName | None = None


class VariantStatsOut(_Response):
    script_name: str | None
    variant: str | None
    calls: int
    completed: int
    successes: int
    success_rate: float | None
    avg_duration_s: float | None
    efficiency: float | None
    transfers: int
    transfer_rate: float | None
    opt_outs: int
    opt_out_rate: float | None
    compliance_hits: int


class ReportOut(_Response):
    since: datetime
    until: datetime
    campaign: str | None
    variants: list[VariantStatsOut]


class HealthOut(_Response):
    status: Literal["ok", "ready"]


# -- personal data ----------------------------------------------------------------------------


class ErasureOut(_Response):
    """What an erasure changed: the person's leads in every campaign and all they left."""

    leads: int = Field(description="Leads with the person's number, in every campaign.")
    calls: int
    call_attempts: int
    turns: int = Field(description="Turns whose text, keyed digits and emotion were blanked.")
    compliance_events: int
    outbox_events: int = Field(description="Webhook events about the person, deleted.")
    dnc_entries_kept_as_hash: int = Field(
        description="Do-not-call entries kept as a hash of the number alone (opt-out honoured)."
    )
    audit_rows: int
    recordings: int = Field(
        description="Call recordings whose files were queued for deletion (done by the daemon)."
    )
    engagement_events: int = Field(description="Channel engagement the CRM reported, deleted.")
    channel_consents: int = Field(description="Consents to SMS and push, deleted.")
    follow_ups: int = Field(description="Follow-ups chosen after calls, deleted.")
    churn_rows: int = Field(description="Churn labels and scores, deleted.")


# -- scripts ----------------------------------------------------------------------------------


class ScriptStageIn(_Request):
    source: Annotated[str, Field(min_length=1, max_length=1_000_000)] = Field(
        description="The script's YAML; its `name` must be the one in the path."
    )
    cases: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}\.yaml$")], str] = Field(
        default_factory=dict,
        description="Its test cases: file name -> YAML text (as in scripts/tests/NAME/).",
    )


class ScriptPromoteIn(_Request):
    version: int | None = Field(default=None, ge=1, description="Default: the newest staged.")
    force: bool = Field(
        default=False, description="Promote even if its tests fail (recorded as forced)."
    )


class ScriptVersionOut(_Response):
    name: str
    version: int
    live: bool
    staged_by: str | None
    staged_at: datetime | None
    promoted_by: str | None
    promoted_at: datetime | None
    forced: bool


class ScriptVersionList(_Response):
    versions: list[ScriptVersionOut]


class ScriptPromoted(_Response):
    name: str
    version: int
    forced: bool = False
    test_failures: list[str] = Field(default_factory=list)
