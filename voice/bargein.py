"""Barge-in within one VAD window: the caller's speech over a prompt, not the prompt's echo.

`BargeIn` is fed each heard 20 ms frame together with the frame the bot played at that moment.
A heard frame is the caller's speech when the frame VAD calls it speech, it is above the line's
noise floor (`speech_floor_dbfs`) and it is louder than the echo the bot's recent frames could
explain: lines return the bot's voice 20 dB or more
down, so a frame within `echo_margin_db` of the loudest frame played in the last
`echo_window_ms` is taken for echo. The prompt's floor (`barge_in_min_ms`) of such frames in a
row fires it. Pure: no clock, no sockets; tests assert the frame index it fires on.

Each frame heard while the bot's audio could be echoing in it (it played within
`ECHO_TAIL_FRAMES`) is also judged, fired or not, interruptible or not (`heard_echo`): the ASR
hears the echo as speech too, and an utterance made only of echo is no answer.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from voice.audio import FRAME_MS, rms_dbfs
from voice.settings import BargeInSettings

# How long after the bot's last played frame its echo may still arrive: the line's delay (tens
# of ms) and a frame of framing either way.
ECHO_TAIL_FRAMES = 5


class SpeechFrames(Protocol):
    """A per-frame speech decision (voice.vad.FrameVad)."""

    def is_speech(self, frame: bytes) -> bool: ...


class BargeIn:
    """Decides, frame by frame, when the caller has interrupted the prompt playing.

    `prompt(floor_ms)` at the start of each prompt (None: not interruptible, a legal notice),
    then `on_frame(heard, played)` for every heard frame; it returns True once, on the frame
    the caller's speech reaches the floor.
    """

    def __init__(self, settings: BargeInSettings, vad: SpeechFrames) -> None:
        self._vad = vad
        self._margin_db = settings.echo_margin_db
        self._floor_dbfs = settings.speech_floor_dbfs
        self._played_dbfs: deque[float] = deque(maxlen=max(1, settings.echo_window_ms // FRAME_MS))
        self._floor_frames: int | None = None
        self._run = 0
        self._fired = False
        self._since_played = ECHO_TAIL_FRAMES
        self._heard_echo: bool | None = None

    def prompt(self, floor_ms: int | None) -> None:
        """A prompt starts: `floor_ms` of the caller's speech interrupts it (None: nothing does)."""
        self._floor_frames = None if floor_ms is None else max(1, math.ceil(floor_ms / FRAME_MS))
        self._run = 0
        self._fired = False

    @property
    def heard_echo(self) -> bool | None:
        """The last heard frame: True when it can only be the bot's own echo (or noise under
        it), False when it was the caller's speech over the bot's audio, None when the bot's
        audio could not be in it."""
        return self._heard_echo

    def on_frame(self, heard: bytes, played: bytes | None) -> bool:
        """One heard frame and the frame played meanwhile (None: nothing was played)."""
        self._played_dbfs.append(rms_dbfs(played) if played else -math.inf)
        self._since_played = 0 if played else self._since_played + 1
        listening = self._floor_frames is not None and not self._fired
        if self._since_played >= ECHO_TAIL_FRAMES and not listening:
            self._heard_echo = None
            return False
        # Judged once: the model keeps state from frame to frame.
        speech = self.is_caller_speech(heard)
        self._heard_echo = None if self._since_played >= ECHO_TAIL_FRAMES else not speech
        if not listening:
            return False
        assert self._floor_frames is not None
        self._run = self._run + 1 if speech else 0
        self._fired = self._run >= self._floor_frames
        return self._fired

    def is_caller_speech(self, heard: bytes) -> bool:
        """Speech louder than the line's noise and than the echo of what was just played."""
        echo_ceiling = max(self._played_dbfs, default=-math.inf) - self._margin_db
        # The model sees only frames that could be the caller's: fed the echo as well, it
        # primes on it and then takes noise in the prompt's pauses for speech (measured).
        return rms_dbfs(heard) > max(echo_ceiling, self._floor_dbfs) and self._vad.is_speech(heard)
