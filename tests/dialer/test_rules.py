"""Dispositions, retry rules, pacing, settings and campaign parsing (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from dialer.campaigns import (
    CampaignError,
    CampaignSettings,
    calling_policy,
    parse_days,
    parse_window,
)
from dialer.dispositions import (
    Disposition,
    from_amd,
    from_hangup_cause,
    from_originate_reason,
    next_step,
    parse_session_disposition,
)
from dialer.masking import mask_number
from dialer.pacing import AnswerRate, PacingInput, TokenBucket, calls_to_start
from dialer.settings import DialerSettings, RetryDelays, TrunkSettings

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reason", "disposition"),
    [(4, "answered"), (5, "busy"), (3, "no-answer"), (8, "congestion"), (0, "failed")],
)
def test_originate_reasons_map_to_dispositions(reason: int, disposition: str) -> None:
    assert from_originate_reason(reason) == disposition


@pytest.mark.parametrize(
    ("cause", "disposition"),
    [(17, "busy"), (19, "no-answer"), (34, "congestion"), (1, "failed"), (0, "failed")],
)
def test_hangup_causes_map_to_dispositions(cause: int, disposition: str) -> None:
    assert from_hangup_cause(cause, was_up=False) == disposition
    assert from_hangup_cause(cause, was_up=True) == "answered"


def test_amd_notsure_is_a_person_unless_configured() -> None:
    default = DialerSettings()
    assert from_amd("NOTSURE", default) == "answered"
    assert from_amd("MACHINE", default) == "machine"
    assert from_amd(None, default) == "answered"
    assert from_amd("NOTSURE", DialerSettings(amd_notsure="machine")) == "machine"
    # The customer hung up while AMD listened: answered, never reached, called again.
    assert from_amd("HANGUP", default) == "early-hangup"


def test_session_dispositions_outside_the_contract_are_ignored() -> None:
    assert parse_session_disposition("transferred") == Disposition.TRANSFERRED
    assert parse_session_disposition("busy") is None  # not one a session may write
    assert parse_session_disposition("nonsense") is None
    # A failed session and an early hang-up are the session's to report.
    assert parse_session_disposition("error") == Disposition.ERROR
    assert parse_session_disposition("early-hangup") == Disposition.EARLY_HANGUP
    assert parse_session_disposition(None) is None


def test_retry_delays_follow_the_settings() -> None:
    settings = DialerSettings(retry=RetryDelays(busy_s=60, no_answer_s=120, machine_s=30))
    assert next_step(Disposition.BUSY, T0, settings).retry_at == T0 + timedelta(seconds=60)
    assert next_step(Disposition.NO_ANSWER, T0, settings).retry_at == T0 + timedelta(seconds=120)
    assert next_step(Disposition.MACHINE, T0, settings).retry_at == T0 + timedelta(seconds=30)
    for final in ("answered", "completed", "transferred", "abandoned", "failed"):
        assert next_step(Disposition(final), T0, settings).done
    # A call the bot failed and a hang-up during the opening are tried again.
    delays = RetryDelays(error_s=45, early_hangup_s=90)
    retrying = DialerSettings(retry=delays)
    assert next_step(Disposition.ERROR, T0, retrying).retry_at == T0 + timedelta(seconds=45)
    assert next_step(Disposition.EARLY_HANGUP, T0, retrying).retry_at == T0 + timedelta(seconds=90)
    # Leaving a message on the machine ends the lead.
    assert next_step(Disposition.MACHINE, T0, DialerSettings(machine="leave_message")).done


def test_default_retry_delays_are_five_and_thirty_minutes() -> None:
    settings = DialerSettings()
    assert next_step(Disposition.BUSY, T0, settings).retry_at == T0 + timedelta(minutes=5)
    assert next_step(Disposition.NO_ANSWER, T0, settings).retry_at == T0 + timedelta(minutes=30)


def test_token_bucket_caps_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=2)
    assert bucket.available(0.0) == 2
    bucket.take(2, 0.0)
    assert bucket.available(0.0) == 0
    assert bucket.available(0.1) == 1
    taken = 0
    for step in range(1, 101):  # one simulated second in 10 ms steps
        n = bucket.available(0.1 + step / 100)
        bucket.take(n, 0.1 + step / 100)
        taken += n
    assert 9 <= taken <= 11
    with pytest.raises(ValueError):
        bucket.take(5, 1.1)
    with pytest.raises(ValueError):
        TokenBucket(rate=0)


def _pacing(**kw: object) -> PacingInput:
    base = {
        "free_channels": 100,
        "free_sessions": 10,
        "ringing": 0,
        "answer_rate": 0.25,
        "abandoned_rate": None,
        "abandoned_limit": 0.03,
        "progressive": True,
    }
    base.update(kw)
    return PacingInput(**base)  # type: ignore[arg-type]


def test_progressive_pacing_follows_the_answer_rate_and_free_sessions() -> None:
    assert calls_to_start(_pacing()) == 40  # 10 free sessions / 25% answered
    assert calls_to_start(_pacing(ringing=30)) == 10
    assert calls_to_start(_pacing(free_channels=5)) == 5
    assert calls_to_start(_pacing(free_sessions=0)) == 0
    # Strict pacing, or an abandoned rate near the limit: one call per free session.
    assert calls_to_start(_pacing(progressive=False)) == 10
    assert calls_to_start(_pacing(abandoned_rate=0.02)) == 10
    assert calls_to_start(_pacing(abandoned_rate=0.01)) == 40


def test_answer_rate_moves_from_its_prior_to_the_measurement() -> None:
    rate = AnswerRate(window=100)
    assert rate.value == 0.5
    for _ in range(100):
        rate.add(False)
    assert rate.value < 0.05


def test_windows_and_days_parse_and_reject_bad_input() -> None:
    window = parse_window("09:00-21:00")
    assert (window.start.hour, window.end.hour) == (9, 21)
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("sat,sun") == frozenset({5, 6})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    for bad in ("9-21", "21:00-09:00", "25:00-26:00", "09:00-09:00"):
        with pytest.raises(CampaignError):
            parse_window(bad)
    for bad in ("monday", "mon-xyz", ""):
        with pytest.raises(CampaignError):
            parse_days(bad)


def test_campaign_settings_reject_bad_values_and_fill_defaults() -> None:
    with pytest.raises(ValidationError):
        CampaignSettings(window="late")
    with pytest.raises(ValidationError):
        CampaignSettings(caller_id="call me")
    with pytest.raises(ValidationError):
        CampaignSettings(cps=0)
    with pytest.raises(ValidationError):
        CampaignSettings.model_validate({"colour": "red"})
    policy = calling_policy(CampaignSettings(days="mon-sat"), DialerSettings())
    assert str(policy.window.start) == "08:00:00" and policy.days == frozenset(range(6))
    assert policy.max_attempts == DialerSettings().max_attempts


def test_trunk_dial_string_needs_the_number() -> None:
    assert TrunkSettings(dial_string="Local/{number}@customers").dial_string
    for bad in ("PJSIP/carrier", "PJSIP/{num}@carrier", "PJSIP/{number@carrier"):
        with pytest.raises(ValidationError):
            TrunkSettings(dial_string=bad)
    with pytest.raises(ValidationError):
        TrunkSettings(name="bad name")


def test_numbers_are_masked_for_logs() -> None:
    assert mask_number("+15551234567") == "***4567"
    assert "555123" not in mask_number("+15551234567")
    assert mask_number("12") == "***"
