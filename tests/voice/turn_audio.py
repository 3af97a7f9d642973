"""Turn-taking audio for tests and bench/turn_models.py: the Piper (joe) fixtures of
tests/fixtures/audio/turn_*.wav mixed with the bot's own echo and numpy line noise, 8 kHz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice.audio import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    bytes_to_int16,
    int16_to_bytes,
    read_wav,
    rms_dbfs,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
ECHO_DB = -20.0
# The echo path's delay: the bot's frame comes back this many frames later.
ECHO_DELAY_FRAMES = 3
# A frame at least this loud (RMS dBFS) in a clean clip is speech: the ground truth.
LOUD_DBFS = -40.0


def clip(name: str) -> np.ndarray:
    """A turn fixture's samples (float64, int16 scale): yes, hesitant, prompt, interrupt."""
    return bytes_to_int16(read_wav(FIXTURES / f"turn_{name}.wav")).astype(np.float64)


def frames_of(samples: np.ndarray) -> list[bytes]:
    """Whole 20 ms slin frames (clipped to int16)."""
    whole = samples[: samples.size // FRAME_SAMPLES * FRAME_SAMPLES]
    pcm = int16_to_bytes(np.clip(np.round(whole), -32768, 32767).astype(np.int16))
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def noise(size: int, dbfs: float, seed: int) -> np.ndarray:
    """White line noise at `dbfs` RMS."""
    return np.random.default_rng(seed).normal(0.0, 10 ** (dbfs / 20) * 32768, size)


def loud_frames(samples: np.ndarray) -> list[int]:
    """Indices of the frames that are speech in a clean clip."""
    return [i for i, f in enumerate(frames_of(samples)) if rms_dbfs(f) >= LOUD_DBFS]


def echo_of(prompt: np.ndarray) -> np.ndarray:
    """The prompt as the line returns it: ECHO_DELAY_FRAMES late, ECHO_DB down."""
    echo = np.zeros_like(prompt)
    delay = ECHO_DELAY_FRAMES * FRAME_SAMPLES
    echo[delay:] = prompt[:-delay] * 10 ** (ECHO_DB / 20)
    return echo


@dataclass(frozen=True)
class Trial:
    """What the bot played and heard, frame by frame, while its prompt was playing."""

    heard: list[bytes]
    played: list[bytes]
    onset: int | None  # the frame the caller's speech starts on; None: no caller


def barge_in_trial(noise_dbfs: float, seed: int, onset_at: int | None) -> Trial:
    """The prompt playing, its echo and line noise heard back, and the caller's "Wait, stop,
    ..." starting at frame `onset_at` (None: nobody talks over it)."""
    prompt = clip("prompt")
    heard = echo_of(prompt) + noise(prompt.size, noise_dbfs, seed)
    onset = None
    if onset_at is not None:
        caller = clip("interrupt")
        start = onset_at * FRAME_SAMPLES
        end = min(prompt.size, start + caller.size)
        heard[start:end] += caller[: end - start]
        onset = onset_at + loud_frames(caller)[0]
    return Trial(frames_of(heard), frames_of(prompt), onset)
