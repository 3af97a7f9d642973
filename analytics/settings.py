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


class AnalyticsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ab: AbSettings = AbSettings()
    rfm: RfmSettings = RfmSettings()


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
