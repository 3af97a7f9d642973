from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance.rules import CallingWindow, is_within_calling_window
from compliance.settings import ComplianceSettings

WINDOW = CallingWindow(time(8), time(21))


def test_window_is_evaluated_in_the_callees_time_zone() -> None:
    now = datetime(2025, 3, 12, 13, 30, tzinfo=UTC)  # 21:30 Shanghai, 09:30 New York
    assert not is_within_calling_window(now, "Asia/Shanghai", WINDOW)
    assert is_within_calling_window(now, "America/New_York", WINDOW)


def test_window_end_is_exclusive_and_start_inclusive() -> None:
    shanghai = timedelta(hours=8)
    assert is_within_calling_window(
        datetime(2025, 3, 12, 0, 0, tzinfo=UTC), "Asia/Shanghai", WINDOW
    )  # 08:00 local
    assert not is_within_calling_window(
        datetime(2025, 3, 12, 21, 0, tzinfo=UTC) - shanghai, "Asia/Shanghai", WINDOW
    )


def test_days_and_holidays() -> None:
    saturday_noon = datetime(2025, 3, 15, 4, 0, tzinfo=UTC)  # 12:00 Shanghai
    assert not is_within_calling_window(saturday_noon, "Asia/Shanghai", WINDOW, days=range(5))
    assert is_within_calling_window(saturday_noon, "Asia/Shanghai", WINDOW)
    assert not is_within_calling_window(
        saturday_noon, "Asia/Shanghai", WINDOW, holidays={date(2025, 3, 15)}
    )


def test_dst_gap_in_new_york() -> None:
    # 2025-03-09: clocks jump from 02:00 to 03:00. 12:59 UTC is 08:59 EDT (after the jump).
    assert is_within_calling_window(
        datetime(2025, 3, 9, 12, 59, tzinfo=UTC), "America/New_York", WINDOW
    )
    assert not is_within_calling_window(
        datetime(2025, 3, 9, 11, 59, tzinfo=UTC), "America/New_York", WINDOW
    )  # 07:59 EDT


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["Asia/Shanghai", "America/Los_Angeles", "Europe/Berlin", "UTC"]),
)
def test_window_matches_local_wall_clock(naive: datetime, tz: str) -> None:
    from zoneinfo import ZoneInfo

    now = naive.replace(tzinfo=UTC)
    local = now.astimezone(ZoneInfo(tz)).time()
    assert is_within_calling_window(now, tz, WINDOW) == (time(8) <= local < time(21))


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_within_calling_window(datetime(2025, 1, 1, 12), "UTC", WINDOW)
    with pytest.raises(ValueError, match="unknown time zone"):
        is_within_calling_window(datetime(2025, 1, 1, tzinfo=UTC), "Mars/Olympus", WINDOW)
    with pytest.raises(ValueError, match="must be before end"):
        CallingWindow(time(21), time(8))
    with pytest.raises(ValueError, match="expected HH:MM-HH:MM"):
        CallingWindow.parse("8 to 9")
    with pytest.raises(ValueError, match="expected HH:MM-HH:MM"):
        CallingWindow.parse("8am-9pm")


def test_settings_defaults_and_validation() -> None:
    settings = ComplianceSettings()
    assert settings.keep_raw_transcripts is False and settings.redaction is True
    assert settings.window() == CallingWindow(time(8), time(21))
    with pytest.raises(ValueError, match="expected HH:MM-HH:MM"):
        ComplianceSettings(calling_window="late")
    with pytest.raises(ValueError, match="calling_days"):
        ComplianceSettings(calling_days=[7])
    with pytest.raises(ValueError, match="extra"):
        ComplianceSettings(unknown=1)
