"""EmotionSettings validation: unknown keys and inconsistent thresholds are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emotion.settings import EmotionSettings


def test_defaults_are_consistent() -> None:
    settings = EmotionSettings()
    assert settings.enabled
    assert 0 < settings.low < settings.high < 1
    assert settings.baseline_utterances >= 1


def test_nested_values_load_from_a_mapping() -> None:
    settings = EmotionSettings.model_validate(
        {"high": 0.8, "weights": {"profanity": 3.0}, "std_floors": {"f0_median": 2.0}}
    )
    assert settings.weights.profanity == 3.0
    assert settings.std_floors.f0_median == 2.0
    assert settings.weights.bias == EmotionSettings().weights.bias


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hgih": 0.8}, "Extra inputs"),
        ({"weights": {"anger": 1.0}}, "Extra inputs"),
        ({"low": 0.8, "high": 0.6}, "below high"),
        ({"low": 0.6, "high": 0.6}, "below high"),
        ({"high": 1.5}, "less than 1"),
        ({"baseline_utterances": 0}, "greater than or equal to 1"),
        ({"std_floors": {"energy_median": 0}}, "greater than 0"),
        ({"group_cap": 5.0}, "one kind of evidence alone"),
        ({"loudness_cap": 5.0}, "loudness_cap"),
        ({"group_cap": 3.5, "weights": {"bias": -3.5}, "high": 0.4, "low": 0.2}, "one kind"),
    ],
)
def test_bad_settings_are_rejected(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EmotionSettings.model_validate(data)
