"""Adaptive end of turn on real audio (Piper speech in line noise), by frame index.

A complete answer ends 200 ms after its last voiced frame once something says it is complete;
an answer with a mid-answer pause is not cut in that pause, and then waits the cap.
"""

from __future__ import annotations

import pytest

from tests.voice.turn_audio import clip, frames_of, noise
from voice.audio import FRAME_S
from voice.settings import EndOfTurnSettings, VadSettings
from voice.turn import Completeness, EndOfTurn, intent_completeness
from voice.vad import Endpointer, FrameVad, SpeechEnded

COMPLETE_FRAMES = 200 // 20
INCOMPLETE_FRAMES = 600 // 20
MAX_FRAMES = 800 // 20


def heard(name: str) -> tuple[list[bytes], list[bool]]:
    """A fixture in -55 dBFS line noise, with 2 s more of it, and the VAD's decisions."""
    samples = clip(name)
    frames = frames_of(samples + noise(samples.size, -55.0, seed=4))
    frames += frames_of(noise(8000 * 2, -55.0, seed=5))
    vad = FrameVad(VadSettings())
    return frames, [vad.is_speech(f) for f in frames]


def end_frame(
    name: str,
    judge: dict[int, bool] | None = None,
    settings: VadSettings | None = None,
) -> tuple[int | None, list[bool]]:
    """The frame the turn ends on; `judge` maps a frame index to a completeness verdict
    reaching the endpointer there (as a partial ASR result would)."""
    frames, voiced = heard(name)
    endpointer = Endpointer(settings or VadSettings())
    for i, is_voiced in enumerate(voiced):
        now = (i + 1) * FRAME_S
        if judge and i in judge:
            endpointer.note_completeness(Completeness(judge[i], now))
        if isinstance(endpointer.on_frame(is_voiced, now), SpeechEnded):
            return i, voiced
    return None, voiced


def last_voiced(voiced: list[bool]) -> int:
    return max(i for i, v in enumerate(voiced) if v)


def voiced_runs(voiced: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, v in enumerate([*voiced, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def test_a_complete_answer_ends_200_ms_after_its_last_voiced_frame() -> None:
    _, voiced = heard("yes")
    last = last_voiced(voiced)
    # The grammar hit arrives 100 ms into the silence.
    ended, _ = end_frame("yes", judge={last + 5: True})
    assert ended == last + COMPLETE_FRAMES


def test_a_late_verdict_ends_the_turn_on_the_frame_it_arrives() -> None:
    _, voiced = heard("yes")
    last = last_voiced(voiced)
    ended, _ = end_frame("yes", judge={last + 15: True})
    assert ended == last + 15


def test_an_answer_nothing_judged_waits_600_ms() -> None:
    ended, voiced = end_frame("yes")
    assert ended == last_voiced(voiced) + INCOMPLETE_FRAMES


def test_a_hesitant_answer_is_not_cut_in_its_pause_and_then_waits_the_cap() -> None:
    ended, voiced = end_frame("hesitant")
    runs = voiced_runs(voiced)
    pause = max(range(len(runs) - 1), key=lambda k: runs[k + 1][0] - runs[k][1])
    assert (runs[pause + 1][0] - runs[pause][1]) * 20 >= 400  # the fixture's 500 ms pause
    assert ended is not None and ended > runs[-1][1]  # after the last word, not in the pause
    assert ended == last_voiced(voiced) + MAX_FRAMES


def test_an_incomplete_verdict_in_the_pause_keeps_waiting() -> None:
    _, voiced = heard("hesitant")
    first_word_end = voiced_runs(voiced)[0][1]
    ended, _ = end_frame("hesitant", judge={first_word_end + 5: False})
    assert ended == last_voiced(voiced) + MAX_FRAMES


def test_a_verdict_on_words_since_added_to_is_stale() -> None:
    _, voiced = heard("hesitant")
    first_word_end = voiced_runs(voiced)[0][1]
    # "Yes" judged complete inside its own word; the caller went on after it.
    ended, _ = end_frame("hesitant", judge={first_word_end - 2: True})
    assert ended == last_voiced(voiced) + MAX_FRAMES


def test_the_deprecated_fixed_endpoint_ignores_verdicts() -> None:
    _, voiced = heard("yes")
    last = last_voiced(voiced)
    ended, _ = end_frame(
        "yes", judge={last + 5: True}, settings=VadSettings(endpoint_silence_ms=500)
    )
    assert ended == last + 500 // 20


def test_the_wall_clock_ends_a_turn_when_no_frames_arrive() -> None:
    turn = EndOfTurn(EndOfTurnSettings())
    turn.begin(1.0)
    assert not turn.on_frame(True, 1.1)
    turn.note_completeness(Completeness(True, 1.15))
    assert not turn.on_time(1.29)
    assert turn.on_time(1.30)


def test_time_the_process_stood_still_is_no_silence() -> None:
    """A 0.3 s stall after the last word: a complete answer still needs its 200 ms of real
    silence after it, and words read after the stall make no hesitant caller of it."""
    turn = EndOfTurn(EndOfTurnSettings())
    turn.begin(1.0)
    turn.on_frame(True, 1.1)
    turn.note_completeness(Completeness(True, 1.1))
    turn.forgive(0.3)
    assert not turn.on_time(1.55)
    assert turn.on_time(1.6)
    assert not turn.on_frame(True, 1.5)  # the caller went on: the frames came late
    assert not turn.hesitant
    # The stall is over with that word: the next silence counts from it, in full.
    assert turn.on_frame(False, 1.5 + 0.6)


def test_intent_completeness_uses_the_threshold() -> None:
    settings = EndOfTurnSettings(intent_threshold=0.8)
    assert intent_completeness(0.8, settings, at=1.0) == Completeness(True, 1.0)
    assert not intent_completeness(0.79, settings, at=1.0).complete
    assert not intent_completeness(None, settings, at=1.0).complete


@pytest.mark.parametrize(
    "bad",
    [
        {"complete_silence_ms": 10},
        {"max_silence_ms": 500},  # below the 600 ms incomplete wait
        {"intent_threshold": 1.5},
        {"complete_silence": 200},
    ],
)
def test_bad_end_of_turn_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EndOfTurnSettings(**bad)
