"""Barge-in on real audio: Piper speech over the bot's prompt, its echo at -20 dB, line noise.

Behaviour by frame index (20 ms each): the detector fires within 100 ms of the caller's real
speech onset and never on the echo or the noise alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tests.voice.turn_audio import Trial, barge_in_trial, clip, frames_of, loud_frames, noise
from voice.audio import FRAME_BYTES, AudioFormatError
from voice.bargein import BargeIn
from voice.settings import BargeInSettings, VadSettings
from voice.silero import SileroFrames
from voice.vad import FrameVad

FLOOR_MS = 40  # the scripts' default barge_in_min_ms (dialog.actions.BARGE_IN_FLOOR_MS)
# Within ~100 ms of onset: the decision is made on frame onset + 4 at the latest.
MAX_FRAMES_AFTER_ONSET = 4


def fired_at(detector: BargeIn, trial: Trial, floor_ms: int | None = FLOOR_MS) -> int | None:
    detector.prompt(floor_ms)
    for i, (heard, played) in enumerate(zip(trial.heard, trial.played, strict=True)):
        if detector.on_frame(heard, played):
            return i
    return None


def detector(**settings: float) -> BargeIn:
    return BargeIn(BargeInSettings(**settings), SileroFrames())


@pytest.mark.parametrize("onset_at", [40, 140, 260])
@pytest.mark.parametrize("noise_dbfs", [-55.0, -40.0])
def test_fires_within_100_ms_of_the_callers_speech(onset_at: int, noise_dbfs: float) -> None:
    trial = barge_in_trial(noise_dbfs, seed=1, onset_at=onset_at)
    assert trial.onset is not None
    fired = fired_at(detector(), trial)
    assert fired is not None
    assert trial.onset <= fired <= trial.onset + MAX_FRAMES_AFTER_ONSET


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("noise_dbfs", [-55.0, -45.0, -40.0])
def test_the_prompts_own_echo_and_line_noise_never_fire(seed: int, noise_dbfs: float) -> None:
    assert fired_at(detector(), barge_in_trial(noise_dbfs, seed, onset_at=None)) is None


def test_line_noise_alone_between_prompts_never_fires() -> None:
    quiet = frames_of(noise(8000 * 5, -40.0, seed=3))
    trial = Trial(heard=quiet, played=[b""] * len(quiet), onset=None)
    assert fired_at(detector(), trial) is None


def test_without_the_echo_check_the_echo_alone_stops_the_bot() -> None:
    # Proves the echo test above can fail: a model VAD hears the echo as speech, as it is.
    no_check = detector(echo_margin_db=60.0)
    assert fired_at(no_check, barge_in_trial(-55.0, seed=0, onset_at=None)) is not None


def test_webrtcvad_alone_is_fooled_by_noise_where_silero_is_not() -> None:
    # Why the model VAD: at -40 dBFS, webrtcvad calls white noise speech in the prompt's pauses.
    trial = barge_in_trial(-40.0, seed=0, onset_at=None)
    webrtc = BargeIn(BargeInSettings(), FrameVad(VadSettings()))
    assert fired_at(webrtc, trial) is not None
    assert fired_at(detector(), trial) is None


def test_a_legal_notice_is_never_interrupted() -> None:
    trial = barge_in_trial(-55.0, seed=1, onset_at=90)
    assert fired_at(detector(), trial, floor_ms=None) is None


def test_the_floor_is_per_prompt() -> None:
    trial = barge_in_trial(-55.0, seed=1, onset_at=90)
    assert trial.onset is not None
    quick, patient = detector(), detector()
    quick_at, patient_at = fired_at(quick, trial, 20), fired_at(patient, trial, 300)
    assert quick_at is not None and patient_at is not None
    assert quick_at < patient_at
    assert patient_at - trial.onset >= 300 // 20 - 1


def test_fires_once_per_prompt_and_rearms_for_the_next() -> None:
    trial = barge_in_trial(-55.0, seed=1, onset_at=40)
    barge_in = detector()
    barge_in.prompt(FLOOR_MS)
    fired: list[int] = []
    for i, (heard, played) in enumerate(zip(trial.heard, trial.played, strict=True)):
        if barge_in.on_frame(heard, played):
            fired.append(i)
        if i == 70:  # the next prompt starts while the caller is still talking
            barge_in.prompt(FLOOR_MS)
    assert len(fired) == 2
    assert fired[0] < 70 < fired[1]


def test_caller_speech_with_nothing_playing_counts() -> None:
    speech = clip("interrupt")
    heard = frames_of(speech)
    first = next(i for i, f in enumerate(heard) if np.abs(np.frombuffer(f, "<i2")).max() > 300)
    fired = fired_at(detector(), Trial(heard, [b""] * len(heard), onset=first))
    assert fired is not None and first <= fired <= first + MAX_FRAMES_AFTER_ONSET


def test_bad_input_is_refused() -> None:
    with pytest.raises(AudioFormatError, match="320 bytes"):
        SileroFrames().is_speech(b"\x00" * (FRAME_BYTES - 2))
    with pytest.raises(ValueError, match="between 0 and 1"):
        SileroFrames(threshold=1.5)
    with pytest.raises(ValidationError, match="extra"):
        BargeInSettings(echo_margin=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        BargeInSettings(echo_window_ms=0)


@pytest.mark.parametrize(("floor_dbfs", "fires"), [(-45.0, False), (-120.0, True)])
def test_the_quiet_tail_of_an_answer_does_not_stop_the_reply(
    floor_dbfs: float, fires: bool
) -> None:
    # The caller's answer ends and the bot's reply starts at once: Silero still says "speech"
    # for ~100 ms of near silence after the last word. Only the noise floor keeps that out.
    answer = clip("interrupt")
    heard = frames_of(np.concatenate([answer, noise(8000, -95.0, seed=2)]))
    reply_starts = loud_frames(answer)[-1] + 1
    barge_in = detector(speech_floor_dbfs=floor_dbfs)
    barge_in.prompt(5000)  # the answer overlapped the question, too briefly to stop it
    fired = []
    for i, frame in enumerate(heard):
        if i == reply_starts:
            barge_in.prompt(20)  # the shortest floor: one frame
        if barge_in.on_frame(frame, None):
            fired.append(i)
    assert bool(fired) is fires
