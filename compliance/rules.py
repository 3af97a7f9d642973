"""Calling windows: parsing them, and whether a moment is inside one in the callee's zone.

All functions are pure: the caller passes the current time, the lists and the policy.
Times are timezone-aware; the window is evaluated in the called party's time zone (IANA
name, via zoneinfo), as US (47 CFR 64.1200: 8:00-21:00 local) and Chinese rules require.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WINDOW = re.compile(r"^\s*(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\s*$")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local wall-clock window [start, end); it may not cross midnight."""

    start: time = time(8, 0)
    end: time = time(21, 0)

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"calling window start {self.start} must be before end {self.end}")

    @classmethod
    def parse(cls, text: str) -> CallingWindow:
        """From "HH:MM-HH:MM", e.g. "08:00-21:00" (the config, campaigns and the API all
        read windows here, so a value one accepts works everywhere)."""
        match = _WINDOW.match(text)
        if match is None:
            raise ValueError(f"window {text!r}: expected HH:MM-HH:MM, for example 09:00-21:00")
        try:
            start, end = (time.fromisoformat(part) for part in match.groups())
        except ValueError as exc:
            raise ValueError(f"window {text!r}: {exc}") from exc
        try:
            return cls(start, end)
        except ValueError as exc:
            raise ValueError(f"window {text!r}: {exc}") from exc


def parse_days(text: str) -> frozenset[int]:
    """`mon-sat`, `mon,wed,fri` or `fri-mon` as weekday numbers (Monday = 0)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"days {text!r}: use day names {','.join(DAY_NAMES)}, e.g. mon-sat")
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if last else a
        span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
        days.update(span)
    return frozenset(days)


ALL_DAYS = frozenset(range(7))  # Monday=0 ... Sunday=6


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_within_calling_window(
    now_utc: datetime,
    tz: str,
    window: CallingWindow,
    days: Collection[int] = ALL_DAYS,
    holidays: Collection[date] = frozenset(),
) -> bool:
    """True when the called party's local time is inside the window on an allowed day.

    `days` are ISO weekdays counted from Monday=0; `holidays` are local dates never called.
    """
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError("now_utc must be timezone-aware")
    local = now_utc.astimezone(timezone(tz))
    if local.weekday() not in days or local.date() in holidays:
        return False
    return window.start <= local.time().replace(tzinfo=None) < window.end
