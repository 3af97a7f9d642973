"""Frame VAD and the endpointer: synthetic decisions, synthetic audio and fixture audio."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tests.voice.helpers import fixture_pcm
from voice.audio import (
    FRAME_BYTES,
    FRAME_S,
    SAMPLE_RATE,
    AudioFormatError,
    bytes_to_int16,
    int16_to_bytes,
    iter_frames,
    silence,
)
from voice.settings import VadSettings
from voice.vad import Endpointer, FrameVad, SpeechEnded, SpeechStarted, VadEvent


def run(endpointer: Endpointer, pattern: str, start: float = 0.0) -> list[tuple[int, VadEvent]]:
    """Feed one decision per character ('#' voiced, '.' silent) at 20 ms spacing."""
    events = []
    for i, mark in enumerate(pattern):
        event = endpointer.on_frame(mark == "#", start + (i + 1) * FRAME_S)
        if event is not None:
            events.append((i, event))
    return events


def test_speech_starts_after_min_speech_and_ends_after_trailing_silence() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=100, endpoint_silence_ms=500))
    events = run(endpointer, "..." + "#" * 20 + "." * 30)
    assert [(i, type(e)) for i, e in events] == [(7, SpeechStarted), (47, SpeechEnded)]
    started, ended = events[0][1], events[1][1]
    assert started.at == pytest.approx(4 * FRAME_S)  # the first voiced frame
    assert ended.started_at == pytest.approx(4 * FRAME_S)
    assert ended.at == pytest.approx(23 * FRAME_S)  # the last voiced frame
    assert not ended.truncated


def test_endpoint_silence_is_configurable() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=100, endpoint_silence_ms=300))
    events = run(endpointer, "#" * 10 + "." * 30)
    assert [i for i, e in events if isinstance(e, SpeechEnded)] == [9 + 15]


def test_short_blips_and_pauses() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=120, start_gap_ms=100))
    # A 60 ms click never becomes speech.
    assert run(endpointer, "###" + "." * 40) == []
    # A 400 ms pause inside speech does not end it: it marks the caller hesitant, so the end
    # waits the cap (800 ms, 40 frames), not the 600 ms of an incomplete answer.
    events = run(endpointer, "#" * 10 + "." * 20 + "#" * 10 + "." * 45, start=10.0)
    assert [(i, type(e)) for i, e in events] == [(5, SpeechStarted), (79, SpeechEnded)]


def test_voiced_frames_with_short_gaps_still_start_speech() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=120, start_gap_ms=100))
    events = run(endpointer, "##.##.##" + "." * 5)
    assert [(i, type(e)) for i, e in events] == [(7, SpeechStarted)]
    assert endpointer.in_speech


def test_wall_clock_ends_an_utterance_when_no_frames_arrive() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=100, endpoint_silence_ms=500))
    run(endpointer, "#" * 15)  # last voiced frame at 0.30 s, then the far end goes quiet
    assert endpointer.in_speech
    assert endpointer.on_time(0.50) is None
    assert endpointer.on_time(0.79) is None
    ended = endpointer.on_time(0.80)
    assert isinstance(ended, SpeechEnded)
    assert ended.at == pytest.approx(0.30)
    assert not endpointer.in_speech
    assert endpointer.on_time(5.0) is None


def test_wall_clock_drops_a_pending_start() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=200, start_gap_ms=100))
    run(endpointer, "###")
    assert endpointer.candidate_start == pytest.approx(FRAME_S)
    assert endpointer.on_time(1.0) is None
    assert endpointer.candidate_start is None
    # After the dropped candidate, new speech starts from scratch.
    events = run(endpointer, "#" * 10, start=1.0)
    assert isinstance(events[0][1], SpeechStarted)
    assert events[0][1].at == pytest.approx(1.0 + FRAME_S)


def test_max_speech_cuts_a_monologue() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=100, max_speech_ms=1000))
    events = run(endpointer, "#" * 80)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded, SpeechStarted]
    assert events[1][1].truncated


def test_flush_ends_speech_in_progress_only() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=100))
    assert endpointer.flush() is None
    run(endpointer, "#" * 10)
    ended = endpointer.flush()
    assert isinstance(ended, SpeechEnded)
    assert endpointer.flush() is None


def test_time_must_not_go_backwards() -> None:
    endpointer = Endpointer(VadSettings())
    endpointer.on_frame(True, 2.0)
    with pytest.raises(ValueError, match="backwards"):
        endpointer.on_frame(True, 1.0)
    with pytest.raises(ValueError, match="backwards"):
        endpointer.on_time(1.5)


def test_vad_settings_reject_nonsense() -> None:
    with pytest.raises(ValidationError, match="pad_ms"):
        VadSettings(pad_ms=600, endpoint_silence_ms=500)
    with pytest.raises(ValidationError, match="pad_ms"):
        VadSettings(pad_ms=300)  # longer than the 200 ms after a complete answer
    with pytest.raises(ValidationError, match="cannot both be set"):
        VadSettings(endpoint_silence_ms=500, end_of_turn={"complete_silence_ms": 300})
    with pytest.raises(ValidationError, match="complete_silence_ms <= incomplete_silence_ms"):
        VadSettings(end_of_turn={"complete_silence_ms": 700, "incomplete_silence_ms": 600})
    with pytest.raises(ValidationError, match="extra"):
        VadSettings(end_of_turn={"silence_ms": 300})
    with pytest.raises(ValidationError):
        VadSettings(aggressiveness=4)
    with pytest.raises(ValidationError, match="extra"):
        VadSettings(silence_ms=300)  # type: ignore[call-arg]


def test_frame_vad_on_silence_noise_and_speech() -> None:
    vad = FrameVad(VadSettings())
    assert not vad.is_speech(silence(20))
    assert not any(vad.is_speech(f) for f in iter_frames(fixture_pcm("noise_2s")))
    speech = [vad.is_speech(f) for f in iter_frames(fixture_pcm("en_greeting_us"))]
    assert sum(speech) >= 20
    assert not any(speech[:10])  # the 300 ms lead-in silence


def test_energy_floor_silences_quiet_speech() -> None:
    vad = FrameVad(VadSettings(energy_floor_dbfs=-45.0))
    voiced = [f for f in iter_frames(fixture_pcm("en_greeting_us")) if vad.is_speech(f)]
    assert voiced
    quiet = [
        int16_to_bytes((bytes_to_int16(f).astype(np.float32) * 0.003).astype(np.int16))
        for f in voiced
    ]
    assert not any(vad.is_speech(f) for f in quiet)
    permissive = FrameVad(VadSettings(energy_floor_dbfs=-90.0, aggressiveness=0))
    assert any(permissive.is_speech(f) for f in quiet)


def _hiss(seconds: float, dbfs: float) -> bytes:
    """A trunk's steady white line noise, as pbxsim's trunk lines send it."""
    rms = 32768 * 10 ** (dbfs / 20)
    samples = np.random.default_rng(7).normal(0.0, rms, int(seconds * 8000))
    return int16_to_bytes(np.clip(samples, -32768, 32767).astype(np.int16))


def _trimmed(pcm: bytes) -> bytes:
    samples = bytes_to_int16(pcm)
    loud = np.flatnonzero(np.abs(samples) > 300)
    speech = samples[loud[0] : loud[-1]]
    return int16_to_bytes(speech[: len(speech) // 160 * 160])


def test_steady_line_noise_after_an_answer_is_not_speech() -> None:
    """On a trunk whose hiss sits above the fixed floor (-40 dBFS), webrtcvad alone takes some
    of the hiss after an answer for speech (it held bench/calls.py's noisy-line answers open
    for seconds); the floor follows the line's noise, so only the answer is voiced."""
    vad = FrameVad(VadSettings())
    answer = _trimmed(fixture_pcm("ko_yes_1"))
    audio = _hiss(3.0, -40.0) + answer + _hiss(3.0, -40.0)
    voiced = [vad.is_speech(f) for f in iter_frames(audio)]
    answer_frames = slice(150, 150 + len(answer) // FRAME_BYTES)
    assert all(voiced[answer_frames])
    assert not any(voiced[answer_frames.stop :])


def test_frame_vad_rejects_wrong_frame_sizes() -> None:
    vad = FrameVad(VadSettings())
    with pytest.raises(AudioFormatError, match="320"):
        vad.is_speech(b"\x00" * 160)


def test_two_answers_in_a_fixture_are_two_utterances() -> None:
    vad = FrameVad(VadSettings())
    endpointer = Endpointer(VadSettings())
    events = []
    for i, frame in enumerate(iter_frames(fixture_pcm("ko_yes_then_no"))):
        event = endpointer.on_frame(vad.is_speech(frame), (i + 1) * FRAME_S)
        if event is not None:
            events.append(event)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * 2
    first_end, second_start = events[1].at, events[2].at
    assert 0.3 < events[0].at < 0.5  # 300 ms of lead-in silence
    assert second_start - first_end > 1.0  # the 1.1 s gap between the answers
    assert events[3].at < len(fixture_pcm("ko_yes_then_no")) / (2 * SAMPLE_RATE)


def test_max_speech_also_cuts_during_a_pause_and_by_the_clock() -> None:
    endpointer = Endpointer(VadSettings(min_speech_ms=100, max_speech_ms=1000))
    events = run(endpointer, "#" * 45 + "..........")  # the cap falls inside the pause
    assert [(i, type(e)) for i, e in events] == [(4, SpeechStarted), (50, SpeechEnded)]
    assert events[1][1].truncated and events[1][1].at == pytest.approx(45 * FRAME_S)
    run(endpointer, "#" * 10, start=5.0)
    ended = endpointer.on_time(5.0 + 1.0 + FRAME_S)
    assert isinstance(ended, SpeechEnded) and ended.truncated
