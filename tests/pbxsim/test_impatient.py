"""pbxsim's impatient customers: the scenario's rules, their voice levels and how they
recognise the bot's apology by its sound (the calls themselves: tests/bench/test_impatience.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pbxsim import ScenarioError, load_scenario
from pbxsim.impatient import DEFAULT_LEVELS, _match, voiced_clip

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
YES = AUDIO / "ko_yes_1.wav"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("patience: 3", r"s.yaml:5: customers.shy.impatience.patience"),  # an unknown key
        ("offer: offer.wav", r"offer and offer_dtmf go together"),
    ],
)
def test_a_bad_impatience_is_an_error_naming_its_file_and_line(
    tmp_path: Path, line: str, error: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"customers:\n  shy:\n    impatience:\n      answers: [yes.wav]\n      {line}\n"
    )
    with pytest.raises(ScenarioError, match=error):
        load_scenario(path)


def test_the_top_level_makes_the_answer_louder_and_shorter() -> None:
    calm = np.frombuffer(voiced_clip(YES, None, 8000), "<i2").astype(np.float64)
    agitated = np.frombuffer(voiced_clip(YES, DEFAULT_LEVELS[-1], 8000), "<i2").astype(float)
    assert agitated.size < calm.size / 1.2  # faster
    assert np.sqrt(np.mean(agitated**2)) > 1.5 * np.sqrt(np.mean(calm**2))  # louder


def test_the_apology_is_recognised_by_its_sound_wherever_it_starts() -> None:
    rng = np.random.default_rng(1)
    apology = rng.normal(0, 3000, 3200).astype(np.float32)
    turn = np.concatenate([np.zeros(1234, np.float32), apology, rng.normal(0, 3000, 6000)])
    assert _match(turn.astype(np.float32), apology) > 0.99
    other = rng.normal(0, 3000, turn.size).astype(np.float32)
    assert _match(other, apology) < 0.2
    assert _match(apology[:100], apology) == 0.0  # too short a turn to hold it


def test_near_silence_never_matches_a_phrase() -> None:
    rng = np.random.default_rng(2)
    apology = rng.normal(0, 3000, 3200).astype(np.float32)
    hiss = rng.normal(0, 0.5, 40000).astype(np.float32)  # a quiet line between two prompts
    turn = np.concatenate([rng.normal(0, 3000, 8000), hiss, rng.normal(0, 3000, 8000)])
    assert _match(turn.astype(np.float32), apology) < 0.2
