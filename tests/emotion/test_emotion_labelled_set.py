"""Acceptance: agitated turns outscore calm ones, and calm calls are not transferred.

Scored on the held-out "test" speakers only; the default weights were chosen on the "tune"
speakers (see tests/fixtures/emotion/generate.py). No lexical cues are given: voice only.
"""

from __future__ import annotations

from sklearn.metrics import roc_auc_score

from emotion.settings import EmotionSettings
from tests.emotion.labelled_set import SimulatedCall, SpeakerTakes, run_call, simulate_calls


def _test_calls(speakers: list[SpeakerTakes], settings: EmotionSettings) -> list[SimulatedCall]:
    held_out = [speaker for speaker in speakers if speaker.split == "test"]
    return simulate_calls(held_out, settings.baseline_utterances)


def test_held_out_speakers_are_disjoint_and_cover_both_languages(
    fixture_speakers: list[SpeakerTakes],
) -> None:
    tune = {s.id for s in fixture_speakers if s.split == "tune"}
    test = {s.id for s in fixture_speakers if s.split == "test"}
    assert tune and test and not tune & test
    assert {s.language for s in fixture_speakers if s.split == "test"} == {"en", "ko"}
    assert all(s.calm[0].has_voice and s.agitated[0].has_voice for s in fixture_speakers)


def test_agitation_score_separates_agitated_from_calm_turns(
    fixture_speakers: list[SpeakerTakes],
) -> None:
    settings = EmotionSettings()
    labels: list[bool] = []
    scores: list[float] = []
    for call in _test_calls(fixture_speakers, settings):
        readings = run_call(call, settings)
        for reading in readings[len(call.baseline) :]:
            labels.append(call.agitated)
            scores.append(reading.score)
    auc = roc_auc_score(labels, scores)
    print(f"\nagitation ROC AUC on held-out speakers: {auc:.3f} over {len(scores)} turns")
    assert auc >= 0.9


def test_calm_calls_are_not_transferred_and_agitated_ones_are(
    fixture_speakers: list[SpeakerTakes],
) -> None:
    settings = EmotionSettings()
    calm_transfers = agitated_transfers = calm_calls = agitated_calls = 0
    for call in _test_calls(fixture_speakers, settings):
        transferred = any(r.state == "agitated" for r in run_call(call, settings))
        if call.agitated:
            agitated_calls += 1
            agitated_transfers += transferred
        else:
            calm_calls += 1
            calm_transfers += transferred
    false_rate = calm_transfers / calm_calls
    hit_rate = agitated_transfers / agitated_calls
    print(f"\nfalse transfers {false_rate:.1%} of {calm_calls} calm calls; ", end="")
    print(f"agitated calls transferred {hit_rate:.1%} of {agitated_calls}")
    assert false_rate < 0.05
    # A detector that never fires would pass the line above; it must also catch most anger.
    assert hit_rate >= 0.8
