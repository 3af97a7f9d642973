"""Streaming voice activity detection and endpointing over 20 ms slin frames.

`FrameVad` classifies one frame (webrtcvad, gated by an energy floor that follows the line's
noise). `Endpointer` turns the per-frame decisions into utterance boundaries; how much trailing
silence ends one is `voice.turn.EndOfTurn`'s call (adaptive). Time is always passed in
(seconds, any monotonic clock), so both are pure and deterministic. The far end may send no
frames at all during silence (Asterisk Local channels), so `Endpointer.on_time` ends an
utterance from the wall clock alone.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

import webrtcvad

from voice.audio import FRAME_BYTES, FRAME_MS, FRAME_S, SAMPLE_RATE, AudioFormatError, rms_dbfs
from voice.settings import VadSettings
from voice.turn import Completeness, EndOfTurn, Holding


class FrameVad:
    """Speech / non-speech for one 20 ms frame."""

    def __init__(self, settings: VadSettings) -> None:
        self._vad = webrtcvad.Vad(settings.aggressiveness)
        self._floor_dbfs = settings.energy_floor_dbfs
        self._noise_margin_db = settings.noise_margin_db
        # Minimum statistics: the quietest frame of the last window is the line's noise (speech
        # pauses within a window); judged only once the window is full.
        self._levels: deque[float] = deque(maxlen=settings.noise_window_ms // FRAME_MS)

    def is_speech(self, frame: bytes) -> bool:
        if len(frame) != FRAME_BYTES:
            raise AudioFormatError(f"a frame is {FRAME_BYTES} bytes, got {len(frame)}")
        level = rms_dbfs(frame)
        self._levels.append(level)
        # The energy gate first: cheap, and webrtcvad calls steady line noise speech (a
        # trunk's -40 dBFS hiss for seconds after an answer, measured through pbxsim).
        if level < self._gate_dbfs():
            return False
        return self._vad.is_speech(frame, SAMPLE_RATE)

    def _gate_dbfs(self) -> float:
        if len(self._levels) < (self._levels.maxlen or 0):
            return self._floor_dbfs
        return max(self._floor_dbfs, min(self._levels) + self._noise_margin_db)


@dataclass(frozen=True)
class SpeechStarted:
    """Enough voiced audio to call it speech; `at` is the first voiced frame's time."""

    at: float


@dataclass(frozen=True)
class SpeechEnded:
    """The utterance is over; `at` is the last voiced frame's time."""

    started_at: float
    at: float
    # True when max_speech_ms cut it rather than trailing silence.
    truncated: bool = False


VadEvent = SpeechStarted | SpeechEnded


# Float tolerance when comparing accumulated frame times with thresholds.
_EPS_S = 1e-6


class _State(enum.Enum):
    IDLE = "idle"
    PENDING = "pending"  # voiced frames seen, not yet min_speech_ms of them
    SPEAKING = "speaking"


class Endpointer:
    """Utterance start/end from per-frame voicing decisions and the clock.

    `now` for a frame is the time it arrived (its end). Times must not go backwards.
    """

    def __init__(self, settings: VadSettings) -> None:
        self._min_speech_s = settings.min_speech_ms / 1000
        self._start_gap_s = settings.start_gap_ms / 1000
        self._turn = EndOfTurn(settings.turn_policy)
        self._max_speech_s = settings.max_speech_ms / 1000
        self._state = _State.IDLE
        self._first_voiced = 0.0
        self._last_voiced = 0.0
        self._voiced_s = 0.0
        self._last_now = float("-inf")

    @property
    def in_speech(self) -> bool:
        """An utterance has started and not yet ended."""
        return self._state is _State.SPEAKING

    @property
    def last_voiced(self) -> float:
        """Time of the last voiced frame seen (0.0 before any)."""
        return self._last_voiced

    @property
    def quiet_since(self) -> float:
        """Where the trailing silence of the utterance under way starts counting (its last
        voiced frame, moved on by time forgiven: `forgive`)."""
        return self._turn.quiet_since

    def forgive(self, seconds: float) -> None:
        """The process stood still for `seconds` during the utterance's trailing silence: no
        silence to end it on (its frames come late, in a burst)."""
        if self._state is _State.SPEAKING:
            self._turn.forgive(seconds)

    @property
    def voiced_s(self) -> float:
        """Voiced time in the utterance being formed or under way (0.0 outside one)."""
        return 0.0 if self._state is _State.IDLE else self._voiced_s

    @property
    def candidate_start(self) -> float | None:
        """First voiced frame of the utterance being formed or under way, if any."""
        return None if self._state is _State.IDLE else self._first_voiced

    @property
    def silence_needed_s(self) -> float:
        """Trailing silence that would end the utterance under way now."""
        return self._turn.silence_needed_s

    def note_completeness(self, completeness: Completeness) -> None:
        """What was heard so far does (not) answer the question: shortens (or keeps) the wait."""
        if self._state is not _State.IDLE:
            self._turn.note_completeness(completeness)

    def note_holding(self, holding: Holding) -> None:
        """The speech before the pause sounds (un)finished: keeps (or lifts) the longer wait."""
        if self._state is not _State.IDLE:
            self._turn.note_holding(holding)

    def on_frame(self, voiced: bool, now: float) -> VadEvent | None:
        self._advance_clock(now)
        if voiced:
            return self._on_voiced(now)
        return self._on_unvoiced(now)

    def on_time(self, now: float) -> SpeechEnded | None:
        """The clock moved with no frame: trailing silence can end the utterance."""
        self._advance_clock(now)
        event = self._on_unvoiced(now)
        return event if isinstance(event, SpeechEnded) else None

    def flush(self) -> SpeechEnded | None:
        """End the utterance under way now (end of stream); forget a pending start."""
        if self._state is _State.SPEAKING:
            return self._end(truncated=False)
        self.reset()
        return None

    def reset(self) -> None:
        self._state = _State.IDLE
        self._voiced_s = 0.0

    def _advance_clock(self, now: float) -> None:
        if now < self._last_now:
            raise ValueError(f"time went backwards: {now} < {self._last_now}")
        self._last_now = now

    def _on_voiced(self, now: float) -> VadEvent | None:
        if self._state is _State.IDLE:
            self._state = _State.PENDING
            self._first_voiced = now
            self._voiced_s = 0.0
            self._turn.begin(now)
        self._turn.on_frame(True, now)
        self._last_voiced = now
        self._voiced_s += FRAME_S
        if self._state is _State.PENDING and self._voiced_s >= self._min_speech_s - _EPS_S:
            self._state = _State.SPEAKING
            return SpeechStarted(at=self._first_voiced)
        if self._too_long(now):
            return self._end(truncated=True)
        return None

    def _on_unvoiced(self, now: float) -> SpeechEnded | None:
        quiet_s = now - self._last_voiced
        if self._too_long(now):
            return self._end(truncated=True)
        if self._state is _State.PENDING and quiet_s >= self._start_gap_s - _EPS_S:
            self._state = _State.IDLE  # a click or a cough, not speech
        elif self._state is _State.SPEAKING and self._turn.on_time(now):
            return self._end(truncated=False)
        return None

    def _too_long(self, now: float) -> bool:
        return (
            self._state is _State.SPEAKING
            and now - self._first_voiced >= self._max_speech_s - _EPS_S
        )

    def _end(self, truncated: bool) -> SpeechEnded:
        event = SpeechEnded(
            started_at=self._first_voiced, at=self._last_voiced, truncated=truncated
        )
        self.reset()
        return event
