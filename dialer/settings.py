"""Dialer and trunk settings (composed into the daemon config by outdial.config)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from compliance import CallingWindow, parse_days

# Upper bounds (config and campaign settings): far above any real deployment, low enough that
# a typo or a hostile value (2**63 channels, 1e308 calls a second) is refused with its field.
MAX_CHANNELS = 10_000
MAX_CPS = 1_000.0
MAX_ATTEMPTS = 100
MAX_HOLIDAYS = 1_000
MAX_RETRY_S = 30 * 86_400


class RetryDelays(BaseModel):
    """Seconds until a lead is tried again after each retryable disposition."""

    model_config = ConfigDict(extra="forbid")

    busy_s: float = Field(default=300.0, ge=0, le=MAX_RETRY_S)
    no_answer_s: float = Field(default=1800.0, ge=0, le=MAX_RETRY_S)
    congestion_s: float = Field(default=600.0, ge=0, le=MAX_RETRY_S)
    machine_s: float = Field(default=3600.0, ge=0, le=MAX_RETRY_S)
    # Calls the bot failed (the customer heard its fallback), PBX-side errors and outcomes
    # that could not be settled from AMI.
    error_s: float = Field(default=600.0, ge=0, le=MAX_RETRY_S)
    # The customer hung up during AMD or the bot's opening, before hearing who was calling.
    early_hangup_s: float = Field(default=1800.0, ge=0, le=MAX_RETRY_S)


class TrunkSettings(BaseModel):
    """One way out: a PBX reached over AMI and the dial string for its carrier."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="default", pattern=r"^[A-Za-z0-9_]+$")
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "outdial"
    # Set by OUTDIAL_AMI_SECRET or OUTDIAL_AMI_SECRET_<NAME>; never written in the file.
    secret: SecretStr = SecretStr("")
    # `{number}` is replaced by the lead's E.164 number.
    dial_string: str = "PJSIP/{number}@carrier"
    cps: float = Field(
        default=10.0, gt=0, le=MAX_CPS, description="originates per second on this trunk"
    )
    max_channels: int = Field(default=100, ge=1, le=MAX_CHANNELS)
    # Where the answered call lands (deploy/asterisk's outbound context).
    context: str = "outdial-outbound"
    exten: str = "s"
    priority: int = Field(default=1, ge=1, le=99_999)
    ring_timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("dial_string")
    @classmethod
    def _has_number(cls, value: str) -> str:
        if "{number}" not in value:
            raise ValueError("dial_string must contain {number}")
        try:
            value.format(number="0")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"dial_string is not a valid template: {exc}") from exc
        return value


class DialerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Lease owner name; None: hostname and process id.
    owner: str | None = None
    lease_s: float = Field(
        default=300.0, gt=0, le=86_400, description="a crashed owner's leases return after"
    )
    lease_batch: int = Field(default=50, ge=1, le=10_000)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    max_channels: int = Field(
        default=200, ge=1, le=MAX_CHANNELS, description="global cap on live calls"
    )
    # Defaults for campaigns that do not set their own.
    window: str = Field(default="08:00-21:00", max_length=32)
    days: str = Field(default="mon-sun", max_length=64)
    holidays: list[date] = Field(default_factory=list, max_length=MAX_HOLIDAYS)
    max_attempts: int = Field(default=5, ge=1, le=MAX_ATTEMPTS)
    max_attempts_per_day: int = Field(default=3, ge=1, le=MAX_ATTEMPTS)
    retry: RetryDelays = RetryDelays()
    # Answering machines: leave a message (the lead is done) or call again later.
    machine: Literal["retry", "leave_message"] = "retry"
    # AMD's NOTSURE is usually a person who said a short hello (NOTES §5).
    amd_notsure: Literal["human", "machine"] = "human"
    # Progressive pacing: dial so that the expected answers fit the free sessions.
    pacing: Literal["strict", "progressive"] = "progressive"
    abandoned_limit: float = Field(default=0.03, gt=0, lt=1)
    answer_rate_window: int = Field(
        default=200, ge=10, le=100_000, description="recent calls measured"
    )
    # After the final Hangup, how long to wait for the call session's `calls` row.
    session_result_wait_s: float = Field(default=3.0, ge=0, le=600)
    # A call with no Hangup after this long is checked against the PBX.
    max_call_s: float = Field(default=3600.0, gt=0, le=86_400)
    drain_timeout_s: float = Field(default=30.0, ge=0, le=3600)
    reconnect_initial_s: float = Field(default=0.5, gt=0, le=3600)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    ami_timeout_s: float = Field(default=10.0, gt=0, le=600)

    # Read by the same parsers the dialer applies to every lead, so a value that loads works.
    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        CallingWindow.parse(value)
        return value

    @field_validator("days")
    @classmethod
    def _days_parse(cls, value: str) -> str:
        parse_days(value)
        return value
