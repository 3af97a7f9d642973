"""AgitationTracker: baseline, z-scores with floors, lexical cues, hysteresis."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from emotion.agitation import AgitationTracker, LexicalCues, TurnTaking
from emotion.features import ProsodyFeatures
from emotion.settings import EmotionSettings

CALM = ProsodyFeatures(
    duration_s=2.0,
    voiced_s=1.0,
    f0_median_st=12.0,
    f0_spread_st=2.0,
    energy_median_dbfs=-25.0,
    energy_spread_db=6.0,
    speaking_rate=5.0,
    rate_source="energy_peaks",
    pause_ratio=0.1,
)
ANGRY = replace(CALM, f0_median_st=16.0, energy_median_dbfs=-17.0, speaking_rate=6.5)
SILENT = replace(
    CALM,
    voiced_s=0.0,
    f0_median_st=None,
    f0_spread_st=None,
    energy_median_dbfs=None,
    energy_spread_db=None,
    speaking_rate=None,
)


def _calm_baseline(settings: EmotionSettings | None = None) -> AgitationTracker:
    settings = settings or EmotionSettings()
    tracker = AgitationTracker(settings)
    for _ in range(settings.baseline_utterances):
        tracker.update(CALM)
    return tracker


def test_first_utterance_has_no_acoustic_evidence() -> None:
    reading = AgitationTracker().update(ANGRY)
    bias = EmotionSettings().weights.bias
    assert reading.z == {}
    assert reading.score == pytest.approx(1 / (1 + math.exp(-bias)))
    assert reading.state == "calm"
    assert reading.baseline_utterances == 1  # it now starts the baseline


def test_calm_after_calm_baseline_stays_calm() -> None:
    reading = _calm_baseline().update(CALM)
    assert reading.state == "calm"
    assert reading.score < 0.1
    assert all(value == pytest.approx(0.0) for value in reading.z.values())
    assert set(reading.z) == {
        "f0_median",
        "f0_spread",
        "energy_median",
        "energy_spread",
        "speaking_rate",
        "pause_ratio",
    }


def test_raised_pitch_loudness_and_pace_become_agitated() -> None:
    reading = _calm_baseline().update(ANGRY)
    assert reading.state == "agitated"
    assert reading.score >= EmotionSettings().high
    assert reading.features is ANGRY


def test_constant_baseline_uses_the_std_floors() -> None:
    floors = EmotionSettings().std_floors
    reading = _calm_baseline().update(replace(CALM, f0_median_st=13.0, speaking_rate=5.5))
    assert reading.z["f0_median"] == pytest.approx(1.0 / floors.f0_median)
    assert reading.z["speaking_rate"] == pytest.approx(math.log(5.5 / 5.0) / floors.speaking_rate)


def test_z_scores_are_clipped() -> None:
    settings = EmotionSettings(z_clip=2.5)
    # 6.5 semitones: below `speaker_rise_st`, so scored as a rise (z 4.3 before the clip).
    reading = _calm_baseline(settings).update(replace(CALM, f0_median_st=18.5))
    assert reading.z["f0_median"] == pytest.approx(2.5)


def test_baseline_std_above_the_floor_is_used() -> None:
    tracker = AgitationTracker()
    for level in (-30.0, -25.0, -20.0):
        tracker.update(replace(CALM, energy_median_dbfs=level))
    reading = tracker.update(replace(CALM, energy_median_dbfs=-15.0))
    assert reading.z["energy_median"] == pytest.approx(10.0 / 5.0)


def test_hysteresis_holds_agitation_until_the_score_falls_below_low() -> None:
    settings = EmotionSettings(high=0.7, low=0.3)
    tracker = _calm_baseline(settings)
    assert tracker.update(ANGRY).state == "agitated"
    # Between low and high: a calm voice with a complaint stays agitated...
    between = tracker.update(CALM, LexicalCues(complaint=True, stop=True))
    assert settings.low <= between.score < settings.high
    assert between.state == "agitated"
    # ...and only a clearly calm turn releases it.
    released = tracker.update(CALM)
    assert released.score < settings.low
    assert released.state == "calm"
    assert tracker.state == "calm"


def test_lexical_cues_raise_the_score() -> None:
    plain = _calm_baseline().update(CALM).score
    for cues in (LexicalCues(complaint=True), LexicalCues(stop=True), LexicalCues(profanity=True)):
        assert _calm_baseline().update(CALM, cues).score > plain
    all_cues = LexicalCues(complaint=True, stop=True, profanity=True)
    assert _calm_baseline().update(CALM, all_cues).state == "agitated"


def test_only_repeated_repeat_requests_count() -> None:
    tracker = _calm_baseline()
    plain = tracker.update(CALM).score
    first = tracker.update(CALM, LexicalCues(repeat=True)).score
    second = tracker.update(CALM, LexicalCues(repeat=True)).score
    assert first == pytest.approx(plain)
    assert second > first


def test_repeat_requests_age_out_of_the_window() -> None:
    tracker = _calm_baseline(EmotionSettings(repeat_window_turns=2))
    plain = tracker.update(CALM).score
    tracker.update(CALM, LexicalCues(repeat=True))
    tracker.update(CALM)
    tracker.update(CALM)
    assert tracker.update(CALM, LexicalCues(repeat=True)).score == pytest.approx(plain)


def test_unvoiced_and_agitated_utterances_do_not_join_the_baseline() -> None:
    tracker = AgitationTracker(EmotionSettings(baseline_utterances=2))
    tracker.update(CALM)
    assert tracker.update(SILENT).baseline_utterances == 1
    assert tracker.update(ANGRY).state == "agitated"
    assert tracker.update(ANGRY).baseline_utterances == 1


def test_baseline_stops_growing_at_its_size() -> None:
    tracker = AgitationTracker(EmotionSettings(baseline_utterances=2))
    readings = [tracker.update(CALM) for _ in range(4)]
    assert [r.baseline_utterances for r in readings] == [1, 2, 2, 2]


def test_silent_turn_scores_on_cues_alone() -> None:
    reading = _calm_baseline().update(SILENT, LexicalCues(profanity=True))
    assert "f0_median" not in reading.z
    weights = EmotionSettings().weights
    assert reading.score == pytest.approx(1 / (1 + math.exp(-(weights.bias + weights.profanity))))


def test_rates_from_different_sources_are_not_compared() -> None:
    asr = replace(CALM, speaking_rate=2.5, rate_source="asr_words")
    reading = _calm_baseline().update(asr)
    assert "speaking_rate" not in reading.z
    assert "f0_median" in reading.z


def test_disabled_tracker_reports_calm_zero() -> None:
    tracker = _calm_baseline(EmotionSettings(enabled=False))
    reading = tracker.update(ANGRY, LexicalCues(profanity=True))
    assert reading.score == 0.0
    assert reading.state == "calm"
    assert reading.z == {}


def test_loudness_alone_or_tempo_alone_never_transfers() -> None:
    """The phone moved closer, or a caller who simply talks fast: as far as the z-scores go."""
    louder = replace(CALM, energy_median_dbfs=0.0, energy_spread_db=30.0)
    faster = replace(CALM, speaking_rate=40.0, articulation_rate=40.0, pause_ratio=0.0)
    for turn in (louder, faster):
        tracker = _calm_baseline()
        readings = [tracker.update(turn) for _ in range(4)]
        assert all(r.state == "calm" for r in readings), turn
        assert readings[-1].score < EmotionSettings().high


def test_pitch_with_effort_in_the_voice_transfers_where_pitch_alone_does_not() -> None:
    base = replace(CALM, f0_range_st=4.0, spectral_tilt_db=12.0, articulation_rate=5.0)
    settings = EmotionSettings(baseline_utterances=3)
    pitch_only = replace(base, f0_median_st=17.0, f0_range_st=8.0)
    strained = replace(pitch_only, spectral_tilt_db=4.0, energy_median_dbfs=-20.0)
    outcomes = {}
    for name, turn in (("pitch", pitch_only), ("strained", strained)):
        tracker = AgitationTracker(settings)
        for _ in range(3):
            tracker.update(base)
        outcomes[name] = tracker.update(turn).state
    assert outcomes == {"pitch": "calm", "strained": "agitated"}


def test_a_line_turned_noisy_does_not_count_as_faster_speech() -> None:
    """Noise fills pauses and adds energy peaks: tempo evidence is ignored while the line's
    noise floor is well above the baseline's, and counts again on a clean line."""
    base = replace(CALM, articulation_rate=5.0, mean_pause_s=0.3, noise_floor_dbfs=-60.0)
    rushed = replace(
        base, f0_median_st=14.5, speaking_rate=9.0, articulation_rate=9.0, pause_ratio=0.0
    )
    outcomes = {}
    for name, floor in (("clean", -60.0), ("noisy", -45.0)):
        tracker = AgitationTracker()
        for _ in range(3):
            tracker.update(base)
        outcomes[name] = tracker.update(replace(rushed, noise_floor_dbfs=floor)).state
    assert outcomes == {"clean": "agitated", "noisy": "calm"}


def test_quicker_answers_and_repeated_barge_ins_add_to_a_raised_voice() -> None:
    """A raised pitch alone stays calm; with the caller answering at once and cutting the bot
    off again and again it becomes agitated. Turn-taking alone never does."""
    base = replace(CALM, f0_range_st=4.0, spectral_tilt_db=12.0, articulation_rate=5.0)
    raised = replace(base, f0_median_st=16.0)
    settled = TurnTaking(answer_latency_s=1.2)
    hasty = TurnTaking(answer_latency_s=0.1, barged_in=True)

    def last_state(turn: ProsodyFeatures, taking: TurnTaking, turns: int) -> str:
        tracker = AgitationTracker()
        for _ in range(3):
            tracker.update(base, turn=settled)
        return [tracker.update(turn, turn=taking) for _ in range(turns)][-1].state

    assert last_state(raised, settled, 3) == "calm"
    assert last_state(raised, hasty, 3) == "agitated"
    assert last_state(base, hasty, 4) == "calm"


def test_answer_latency_is_compared_with_the_callers_own() -> None:
    tracker = AgitationTracker()
    for latency in (0.8, 1.0, 1.25):
        tracker.update(CALM, turn=TurnTaking(answer_latency_s=latency))
    reading = tracker.update(CALM, turn=TurnTaking(answer_latency_s=0.25))
    assert reading.z["answer_latency"] < -2.0
    assert "answer_latency" not in tracker.update(CALM).z


@pytest.mark.parametrize("latency", [-0.5, float("nan"), float("inf")])
def test_a_bad_answer_latency_is_refused(latency: float) -> None:
    with pytest.raises(ValueError, match="answer_latency_s"):
        TurnTaking(answer_latency_s=latency)


ENVELOPE = (-20.0, 8.0, -5.0, 3.0, 1.0, -2.0, 0.5, 1.0, -0.5, 0.3, 0.2, -0.1)
OTHER_ENVELOPE = (-5.0, -10.0, 8.0, -4.0, 5.0, 3.0, -3.0, -2.0, 2.0, -1.5, 1.5, 1.0)
VOICED = replace(CALM, spectral_envelope=ENVELOPE)


def _voiced_baseline() -> AgitationTracker:
    tracker = AgitationTracker()
    for _ in range(EmotionSettings().baseline_utterances):
        tracker.update(VOICED)
    return tracker


@pytest.mark.parametrize("octaves", [1, 2, -1, -2])
def test_a_pitch_median_whole_octaves_off_in_the_same_voice_is_folded_back(octaves: int) -> None:
    """The tracker locked on a harmonic of a low voice (or on two periods): not a pitch rise."""
    tracker = _voiced_baseline()
    locked = replace(VOICED, f0_median_st=12.0 + 12.0 * octaves + 0.5)
    reading = tracker.update(locked)
    assert not reading.speaker_changed
    assert reading.features.f0_median_st == pytest.approx(12.5)
    assert reading.z["f0_median"] == pytest.approx(0.5 / EmotionSettings().std_floors.f0_median)
    assert reading.state == "calm"


def test_an_octave_up_in_another_voice_is_another_speaker_and_a_new_baseline() -> None:
    tracker = _voiced_baseline()
    other = replace(VOICED, f0_median_st=24.0, spectral_envelope=OTHER_ENVELOPE)
    reading = tracker.update(other)
    assert reading.speaker_changed
    assert reading.z == {}
    assert reading.baseline_utterances == 1
    assert reading.state == "calm"


@pytest.mark.parametrize("pitch", [6.0, 23.0])
def test_another_person_taking_the_phone_rebaselines_instead_of_raising_agitation(
    pitch: float,
) -> None:
    """A lower voice (6 semitones down) or a much higher one (11 up, no octave): the new voice
    becomes the baseline, and its own later rise is measured against it."""
    tracker = _voiced_baseline()
    newcomer = replace(VOICED, f0_median_st=pitch, spectral_envelope=OTHER_ENVELOPE)
    readings = [tracker.update(newcomer) for _ in range(3)]
    assert readings[0].speaker_changed
    assert [r.baseline_utterances for r in readings] == [1, 2, 3]
    assert all(r.state == "calm" for r in readings)
    angry = replace(
        newcomer,
        f0_median_st=pitch + 4.0,
        energy_median_dbfs=-17.0,
        speaking_rate=6.5,
    )
    assert tracker.update(angry).state == "agitated"


def test_the_same_raised_pitch_is_scored_where_an_unguarded_tracker_would_see_a_new_speaker() -> (
    None
):
    """A clear rise of 5 semitones is impatience, not another speaker."""
    reading = _voiced_baseline().update(
        replace(ANGRY, f0_median_st=17.0, spectral_envelope=ENVELOPE)
    )
    assert not reading.speaker_changed
    assert reading.state == "agitated"


# A little higher, louder and quicker: under `high` in one turn, over it when it holds.
MILD = replace(CALM, f0_median_st=14.5, energy_median_dbfs=-22.0, speaking_rate=6.0)


def test_a_small_rise_that_holds_over_turns_transfers_where_one_such_turn_does_not() -> None:
    single = _calm_baseline()
    one = single.update(MILD)
    assert one.state == "calm"
    held = _calm_baseline()
    readings = [held.update(MILD) for _ in range(3)]
    assert readings[0].score == pytest.approx(one.score)
    # From the second turn on, the mean of the held rise is stronger evidence than one turn.
    assert readings[1].score > one.score
    assert readings[-1].state == "agitated"


def test_a_single_raised_turn_among_calm_ones_does_not_accumulate() -> None:
    """The recent turns' mean only counts when stronger than the turn itself: one raised turn
    followed by calm ones fades instead of holding the score up."""
    tracker = _calm_baseline()
    readings = [tracker.update(turn) for turn in (MILD, CALM, CALM)]
    assert readings[-1].score < readings[0].score
    assert all(r.state == "calm" for r in readings)


def test_a_turn_alone_with_sustain_turns_1() -> None:
    tracker = _calm_baseline(EmotionSettings(sustain_turns=1))
    scores = [tracker.update(MILD).score for _ in range(3)]
    assert scores[0] == pytest.approx(scores[-1])
