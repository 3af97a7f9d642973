"""Turn-holding prosody (voice/holding.py) on audio from two generators, and the end of turn
it lengthens on real Vosk, frame by frame.

espeak-ng's "네," (ko_yes_holding_2) ends in its own continuation rise, its "네." (ko_yes_2)
falls; Piper's "Yes." (turn_yes) falls. Piper's "Yes," in turn_hesitant falls as far as its
"Yes." (measured, docs/benchmarks.md), so it is not a case the signal can tell apart.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.voice.helpers import (
    DEMO_GRAMMAR,
    feed_pcm,
    feed_pcm_sending_no_silence,
    finals,
    fixture_pcm,
)
from voice.asr import AsrEngine, _phrase_run
from voice.audio import FRAME_MS, iter_frames, silence
from voice.holding import EndProsody, end_prosody, holds_turn
from voice.settings import AsrSettings, EndOfTurnSettings, VadSettings
from voice.vad import FrameVad

SETTINGS = EndOfTurnSettings()


def prosody_at_pause(name: str) -> EndProsody:
    """What the session judges: the last holding_window_ms of frames up to the first one the
    VAD calls quiet after the last voiced one."""
    frames = list(iter_frames(fixture_pcm(name)))
    vad = FrameVad(VadSettings())
    last_voiced = max(i for i, frame in enumerate(frames) if vad.is_speech(frame))
    window = frames[last_voiced + 2 - SETTINGS.holding_window_ms // FRAME_MS : last_voiced + 2]
    return end_prosody(b"".join(window), SETTINGS)


@pytest.mark.parametrize("name", ["ko_yes_2", "ko_yes_1", "turn_yes"])
def test_a_falling_yes_is_judged_final(name: str) -> None:
    prosody = prosody_at_pause(name)
    assert prosody.slope_st_per_s is not None
    assert prosody.slope_st_per_s < -10
    assert not holds_turn(prosody, SETTINGS)


def test_the_comma_yes_is_judged_holding() -> None:
    prosody = prosody_at_pause("ko_yes_holding_2")
    assert prosody.slope_st_per_s is not None
    assert prosody.slope_st_per_s > 10
    assert holds_turn(prosody, SETTINGS)


def test_a_slope_span_longer_than_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="holding_slope_ms must not exceed holding_window_ms"):
        EndOfTurnSettings(holding_window_ms=200, holding_slope_ms=300)


def test_silence_has_no_slope_and_does_not_hold() -> None:
    prosody = end_prosody(bytes(SETTINGS.holding_window_ms * 16), SETTINGS)
    assert prosody == EndProsody(slope_st_per_s=None)
    assert not holds_turn(prosody, SETTINGS)


async def waited_ms(engine: AsrEngine, name: str) -> tuple[str | None, float]:
    session = engine.session(DEMO_GRAMMAR)
    try:
        [final] = finals(await feed_pcm(session, fixture_pcm(name)))
    finally:
        await session.close()
    return final.phrase, (final.endpoint_at - final.speech_end) * 1000


async def test_the_end_of_turn_waits_longer_after_a_holding_yes(asr_engine: AsrEngine) -> None:
    """Both clips are the grammar's whole phrase "네"; the falling one ends after the short wait
    (once the partial names it), the holding one waits the cap, as a hesitant caller's pause."""
    turn = asr_engine.settings.vad.turn_policy
    assert turn.holding_prosody
    phrase, falling = await waited_ms(asr_engine, "ko_yes_2")
    assert phrase == "네"
    assert falling < turn.incomplete_silence_ms
    phrase, holding = await waited_ms(asr_engine, "ko_yes_holding_2")
    assert phrase == "네"
    assert holding >= turn.max_silence_ms


async def test_with_holding_prosody_off_the_comma_yes_ends_early() -> None:
    """The control: the same clip without the prosody check is cut after the short wait."""
    off = EndOfTurnSettings(holding_prosody=False)
    engine = await AsrEngine.load(
        AsrSettings(vad=VadSettings(end_of_turn=off), prewarm_recognizers=0)
    )
    try:
        phrase, waited = await waited_ms(engine, "ko_yes_holding_2")
    finally:
        engine.shutdown()
    assert phrase == "네"
    assert waited < off.incomplete_silence_ms


def speech_of(name: str) -> bytes:
    """A fixture without its 300 ms lead-in and 800 ms tail of silence."""
    pcm = fixture_pcm(name)
    return pcm[300 * 16 : len(pcm) - 800 * 16]


async def test_a_caller_heard_out_through_the_pause_is_one_run_of_phrases(
    asr_engine: AsrEngine,
) -> None:
    """ "네, ... 좋아요" with a 450 ms pause is one utterance: not one phrase, a run of two."""
    pcm = silence(300) + speech_of("ko_yes_holding_2") + silence(450)
    pcm += speech_of("ko_ok_1") + silence(1000)
    session = asr_engine.session(DEMO_GRAMMAR)
    try:
        [final] = finals(await feed_pcm(session, pcm))
    finally:
        await session.close()
    assert final.text == "네 좋아요"
    assert final.phrase is None
    assert final.phrases == ("네", "좋아요")


def audible_part(name: str) -> bytes:
    """A fixture from its first to its last sample at 1 % of full scale, as the bench's
    customers say it: the pause the test sets is the pause on the wire."""
    samples = np.frombuffer(fixture_pcm(name), dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) >= 0.01 * 32768)
    return samples[loud[0] : loud[-1] + 1].tobytes()


@pytest.mark.parametrize("pause_ms", [300, 700])
async def test_a_hesitant_answer_ends_after_the_short_wait_once_it_is_a_run_of_phrases(
    asr_engine: AsrEngine, pause_ms: int
) -> None:
    """The bench's hesitant customer ("네, ... 좋아요", nothing sent in the pause or after)
    waited the 800 ms cap after "좋아요" (issue 16: the p95's top): the run of phrases is a
    complete answer, so the turn ends on the short wait."""
    turn = asr_engine.settings.vad.turn_policy
    pcm = audible_part("ko_yes_holding_2") + silence(pause_ms) + audible_part("ko_ok_1")
    session = asr_engine.session(DEMO_GRAMMAR)
    try:
        [final] = finals(await feed_pcm_sending_no_silence(session, pcm))
    finally:
        await session.close()
    assert final.phrases == ("네", "좋아요")
    assert (final.endpoint_at - final.speech_end) * 1000 < turn.incomplete_silence_ms


def test_a_run_of_phrases_takes_the_longest_phrase_at_each_word() -> None:
    grammar = ("네", "상담원", "상담원 연결", "좋아요")
    assert _phrase_run("네 상담원 연결 네", grammar) == ("네", "상담원 연결", "네")
    assert _phrase_run("네 연결", grammar) == ()
    assert _phrase_run("네", None) == ()
