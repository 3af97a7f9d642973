"""Bodies of the decision endpoints (engagement, consent, churn, follow-ups, their report)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from api.schemas import Text, _Request, _Response

MAX_EVENTS = 1_000
MAX_PLANNED = 500
LeadId = Annotated[int, Field(ge=1, le=2**63 - 1, description="Outdial's id of the lead.")]
ChannelName = Literal["call", "sms", "push"]


# -- engagement -------------------------------------------------------------------------------


class EngagementEventIn(_Request):
    lead_id: LeadId
    event_id: Annotated[Text, Field(min_length=1, max_length=200)] = Field(
        description="The CRM's id of this event: the same id sent again is counted once."
    )
    channel: ChannelName
    kind: Literal["sent", "delivered", "failed", "replied", "clicked", "opened", "answered",
                  "missed"] = Field(
        description="call: answered, missed; sms: sent, delivered, failed, replied, clicked; "
        "push: sent, delivered, failed, opened, clicked."
    )  # fmt: skip
    contact_id: Annotated[Text, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="The CRM's id of the message or call the event is about: events of one "
        "message count as one contact (a reply to it is its response).",
    )
    occurred_at: AwareDatetime


class EngagementIn(_Request):
    """Events a CRM or app reports: an SMS delivered or replied to, a push opened, a call
    answered. All are recorded or (on any error) none."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "events": [
                        {
                            "lead_id": 1042,
                            "event_id": "sms-881-delivered",
                            "channel": "sms",
                            "kind": "delivered",
                            "contact_id": "sms-881",
                            "occurred_at": "2024-06-01T10:00:03Z",
                        },
                        {
                            "lead_id": 1042,
                            "event_id": "sms-881-replied",
                            "channel": "sms",
                            "kind": "replied",
                            "contact_id": "sms-881",
                            "occurred_at": "2024-06-01T10:04:41Z",
                        },
                    ]
                }
            ]
        }
    }

    events: list[EngagementEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EngagementOut(_Response):
    recorded: int
    duplicates: int = Field(description="Events already recorded (same lead and event_id).")


# -- consent and churn labels -----------------------------------------------------------------


class ConsentIn(_Request):
    channel: ChannelName
    granted: bool


class ConsentOut(_Response):
    lead_id: int
    channel: ChannelName
    granted: bool


class ChurnLabelIn(_Request):
    churned: bool = Field(description="True: the customer left; false: they stayed.")
    observed_at: AwareDatetime | None = Field(
        default=None, description="When the CRM saw it; default: now. Orders the hold-out."
    )


class BulkChurnLabel(ChurnLabelIn):
    lead_id: LeadId


class ChurnLabelsIn(_Request):
    """Up to 1,000 labels, all recorded or (on any error) none."""

    labels: list[BulkChurnLabel] = Field(min_length=1, max_length=MAX_EVENTS)


class ChurnLabelsOut(_Response):
    recorded: int


class ChurnLabelOut(_Response):
    lead_id: int
    churned: bool
    observed_at: datetime


class ChurnFeature(_Response):
    feature: str
    value: float | None
    contribution: float = Field(description="Its share of the risk's log-odds.")


class ChurnScoreOut(_Response):
    lead_id: int
    score: float = Field(description="Probability that the customer leaves (calibrated).")
    model_version: int
    top_features: list[ChurnFeature]


# -- follow-ups -------------------------------------------------------------------------------


class FollowUpOut(_Response):
    lead_id: int
    channel: ChannelName | None = Field(description="Null: no channel may reach the lead.")
    at: datetime | None
    template: str | None = Field(description="The script's template (a call: the script).")
    text: str | None = Field(description="The message, filled with the lead's fields.")
    reason: str
    estimates: dict[str, float] = Field(description="Estimated response rate per channel.")
    blocked: dict[str, str] = Field(description="Channels that may not be used, and why.")


class FollowUpsIn(_Request):
    lead_ids: list[LeadId] = Field(min_length=1, max_length=MAX_PLANNED)


class FollowUpList(_Response):
    follow_ups: list[FollowUpOut]


# -- report -----------------------------------------------------------------------------------


class DecisionsOut(_Response):
    since: datetime
    until: datetime
    campaign: str | None
    grades: list[dict[str, Any]] = Field(
        description="Graded calls per script, variant and grade: {script_name, variant, grade, "
        "calls}."
    )
    churn: list[dict[str, Any]] = Field(
        description="Scored leads per risk band (0: under 10 %): {band, leads}."
    )
    follow_ups: list[dict[str, Any]] = Field(
        description="Follow-ups chosen per channel (null: none allowed): {channel, follow_ups}."
    )
    engagement: list[dict[str, Any]] = Field(
        description="Contacts and responses per channel: {channel, contacts, responses, "
        "response_rate}."
    )
