"""Settings of the analytics (A/B allocation, retirement, RFM) and the CRM webhooks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class AbSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Calls older than this do not count for allocation or retirement.
    window_hours: float = Field(default=168.0, gt=0, le=24 * 366)
    # A variant is judged only once it has this many completed calls.
    min_calls: int = Field(default=200, ge=1, le=10_000_000)
    # One-sided confidence that a variant is worse than the best one before it is retired.
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    # Only variants whose success rate is below this are candidates for retirement.
    success_threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    allocation: Literal["thompson", "fixed"] = "thompson"
    # allocation=fixed: script name -> variant name -> weight; unlisted scripts split evenly,
    # unlisted variants of a listed script get no calls.
    fixed_split: dict[str, dict[str, float]] = Field(default_factory=dict)
    retire_interval_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    # The allocator re-reads variant counts at most this often per script (0: every call).
    allocation_refresh_s: float = Field(default=10.0, ge=0, le=86_400)

    @field_validator("fixed_split")
    @classmethod
    def _weights_usable(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for script, weights in value.items():
            if any(w < 0 for w in weights.values()):
                raise ValueError(f"{script}: weights must be >= 0")
            if not weights or sum(weights.values()) <= 0:
                raise ValueError(f"{script}: at least one weight must be > 0")
        return value


class RfmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Names of the lead fields (from the import) that hold the three measures.
    recency_field: str = "last_purchase"
    frequency_field: str = "purchases"
    monetary_field: str = "total_spent"
    # "date": an ISO date or date-time of the last purchase; "days": days since it.
    recency_kind: Literal["date", "days"] = "date"
    bins: int = Field(default=5, ge=2, le=10)
    # priority = R * weight_r + F * weight_f + M * weight_m (defaults give the RFM cell, e.g. 545).
    weight_r: int = Field(default=100, ge=0)
    weight_f: int = Field(default=10, ge=0)
    weight_m: int = Field(default=1, ge=0)


Channel = Literal["call", "sms", "push"]
_WINDOW = r"^\d{2}:\d{2}-\d{2}:\d{2}$"


class ChannelSettings(BaseModel):
    """The follow-up planner: which channel reaches a lead best, and when (channels.py)."""

    model_config = ConfigDict(extra="forbid")

    # Leads sharing this field's value share a prior (e.g. `segment: retail`); absent: one
    # segment for everyone.
    segment_field: str = "segment"
    # How many contacts a prior weighs against a lead's own.
    prior_strength: float = Field(default=4.0, gt=0)
    # Response rates assumed before any contact was made.
    default_rates: dict[Channel, float] = Field(
        default_factory=lambda: {"call": 0.3, "sms": 0.15, "push": 0.1}
    )
    # How far back the segments' contacts count.
    prior_window_days: float = Field(default=90.0, gt=0)
    # Messages need the person's consent to that channel (a call's consent is the lead's).
    require_consent: list[Channel] = Field(default_factory=lambda: ["sms", "push"])
    # Local hours a message may go out (calls keep their campaign's window).
    message_window: str = Field(default="09:00-20:00", pattern=_WINDOW)
    # A follow-up is never planned sooner than this after the call.
    min_delay_s: float = Field(default=1800.0, ge=0)
    # "greedy" takes the channel with the best posterior mean; "thompson" samples each
    # channel's posterior (explores more; on simulated histories of 8 weeks it gained less:
    # docs/simulation.md).
    policy: Literal["thompson", "greedy"] = "greedy"
    # A lead whose call rate is below this share of its best channel's gets no more call
    # retries: the dialer stops wasting attempts on it and the follow-up goes by message.
    stop_calls_below: float = Field(default=0.5, ge=0, le=1)
    # The segments' priors are recomputed at most this often.
    prior_refresh_s: float = Field(default=600.0, ge=0)

    @field_validator("default_rates")
    @classmethod
    def _every_channel(cls, value: dict[str, float]) -> dict[str, float]:
        missing = {"call", "sms", "push"} - set(value)
        if missing:
            raise ValueError(f"give a rate for every channel; missing: {sorted(missing)}")
        if any(not 0 < rate < 1 for rate in value.values()):
            raise ValueError("rates must be between 0 and 1")
        return value


class ChurnSettings(BaseModel):
    """The churn-risk model (analytics/churn.py) and its share of the lease priority."""

    model_config = ConfigDict(extra="forbid")

    # Intents that count as objections in a lead's calls.
    objection_intents: list[str] = Field(
        default_factory=lambda: [
            "deny", "complaint", "opt_out", "cancel_order", "call_later", "ask_installment",
        ]
    )  # fmt: skip
    # The latest labels (by the time the churn was seen) held out to evaluate on.
    holdout_share: float = Field(default=0.25, gt=0, lt=1)
    # Fewer labelled leads than this (or no churner on either side of the split): no model.
    min_labels: int = Field(default=40, ge=10)
    # Lease priority points for a churn risk of 1.0, added to the RFM priority.
    priority_weight: int = Field(default=500, ge=0)
    # How often the daemon rescores the leads waiting to be dialled.
    score_interval_s: float = Field(default=3600.0, gt=0)
    # Features sent to the CRM with each score (those that raise the risk most).
    top_features: int = Field(default=3, ge=1, le=20)


class AnalyticsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ab: AbSettings = AbSettings()
    rfm: RfmSettings = RfmSettings()
    channels: ChannelSettings = ChannelSettings()
    churn: ChurnSettings = ChurnSettings()


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list, max_length=100)
    # HMAC-SHA256 key for the X-Outdial-Signature header; set it with $OUTDIAL_WEBHOOK_SECRET.
    secret: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    backoff_initial_s: float = Field(default=2.0, gt=0, le=86_400)
    backoff_max_s: float = Field(default=900.0, gt=0, le=7 * 86_400)
    backoff_factor: float = Field(default=2.0, ge=1.0, le=100)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    batch_size: int = Field(default=100, ge=1, le=10_000)

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        if len(set(value)) != len(value):
            raise ValueError("a URL is listed twice")
        return value

    @model_validator(mode="after")
    def _secret_when_sending(self) -> WebhookSettings:
        if self.urls and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError("webhook urls need a signing secret: set $OUTDIAL_WEBHOOK_SECRET")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self
