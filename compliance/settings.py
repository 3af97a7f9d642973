"""Settings of the compliance package (composed into the daemon config by `outdial/config.py`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from compliance.rules import CallingWindow
from compliance.words import DEFAULT_WORD_LIST


class ComplianceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Sensitive-word lists, merged by category; the shipped default list comes first.
    word_lists: list[Path] = Field(default_factory=lambda: [DEFAULT_WORD_LIST])
    # Replace phone numbers, cards, IDs and e-mails in logs and stored transcripts.
    redaction: bool = True
    # Keep the unredacted transcript beside the redacted one (only where the law allows it).
    keep_raw_transcripts: bool = False
    # Regions whose phone-number formats redaction recognises.
    phone_regions: list[str] = Field(default_factory=lambda: ["CN", "US"])
    # Default calling window in the called party's local time, "HH:MM-HH:MM".
    calling_window: str = "08:00-21:00"
    # Allowed weekdays, Monday=0 ... Sunday=6.
    calling_days: list[int] = Field(default_factory=lambda: list(range(7)))
    holidays: list[date] = Field(default_factory=list, max_length=1_000)
    # Regions where a lead without recorded consent is never dialled.
    consent_required_regions: list[str] = Field(default_factory=lambda: ["US", "CN"])

    @field_validator("calling_window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        CallingWindow.parse(value)
        return value

    @field_validator("calling_days")
    @classmethod
    def _days_in_range(cls, value: list[int]) -> list[int]:
        if any(not 0 <= d <= 6 for d in value):
            raise ValueError("calling_days are weekdays 0 (Monday) to 6 (Sunday)")
        return value

    def window(self) -> CallingWindow:
        return CallingWindow.parse(self.calling_window)
