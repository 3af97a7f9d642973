"""Turn-holding prosody: does the speech before a pause sound finished?

A speaker who pauses mid-answer marks it: the pitch at the end of the part before the pause is
level or rises (continuation intonation) instead of falling. `end_prosody` measures the end's
pitch slope on the last few hundred ms of audio before the pause; `holds_turn` weighs it. The
end of turn (voice/turn.py) then waits the longer silence even after a complete grammar phrase.
Final lengthening is not used: Korean words voiced throughout ("아니요", 500 ms) outlast a
drawn-out "네" (350 ms), so without syllable timing a length says nothing (docs/benchmarks.md).
Pitch comes from Praat's autocorrelation tracker (parselmouth), which also decides voicing: p50
1.4 ms, p95 16 ms per decision at load average 11 on 2 cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import parselmouth

from voice.audio import SAMPLE_RATE, bytes_to_int16
from voice.settings import EndOfTurnSettings

# Praat pitch analysis: 10 ms steps, a range that covers low male to high female voices.
_STEP_S = 0.01
_FLOOR_HZ = 60.0
_CEILING_HZ = 500.0
# Fewer voiced pitch frames than this in the end window: no slope (too little to judge).
_MIN_SLOPE_FRAMES = 4
# Voiced runs shorter than this (frames) are the tracker's blips in the silence after the words.
_MIN_RUN_FRAMES = 3


@dataclass(frozen=True)
class EndProsody:
    """Prosody of the end of the speech before a pause."""

    # Pitch slope over the last voiced `holding_slope_ms`, semitones per second (None: too few
    # voiced frames to fit one). Semitones make it the same for a low and a high voice.
    slope_st_per_s: float | None


def end_prosody(pcm: bytes, settings: EndOfTurnSettings) -> EndProsody:
    """Measure `pcm` (8 kHz slin, ending at the last voiced frame before the pause)."""
    samples = bytes_to_int16(pcm).astype(np.float64) / 32768.0
    if len(samples) < int(3 * SAMPLE_RATE / _FLOOR_HZ):  # Praat needs three periods
        return EndProsody(slope_st_per_s=None)
    pitch = parselmouth.Sound(samples, sampling_frequency=SAMPLE_RATE).to_pitch_ac(
        time_step=_STEP_S, pitch_floor=_FLOOR_HZ, pitch_ceiling=_CEILING_HZ
    )
    hz = pitch.selected_array["frequency"]
    times = pitch.xs()
    voiced = _without_blips(np.flatnonzero(hz > 0))
    if voiced.size == 0:
        return EndProsody(slope_st_per_s=None)
    return EndProsody(
        slope_st_per_s=_end_slope(times[voiced], hz[voiced], settings.holding_slope_ms / 1000)
    )


def holds_turn(prosody: EndProsody, settings: EndOfTurnSettings) -> bool:
    """A level or rising end: the speaker holds the turn."""
    return (
        prosody.slope_st_per_s is not None
        and prosody.slope_st_per_s >= settings.holding_min_slope_st_per_s
    )


def _end_slope(times: np.ndarray, hz: np.ndarray, span_s: float) -> float | None:
    end = times >= times[-1] - span_s
    if int(end.sum()) < _MIN_SLOPE_FRAMES:
        return None
    semitones = 12 * np.log2(hz[end] / np.median(hz[end]))
    slope = float(np.polyfit(times[end], semitones, 1)[0])
    return slope if math.isfinite(slope) else None


def _runs(voiced: np.ndarray) -> list[np.ndarray]:
    """Consecutive voiced frame indices, run by run."""
    return np.split(voiced, np.flatnonzero(np.diff(voiced) > 1) + 1)


def _without_blips(voiced: np.ndarray) -> np.ndarray:
    kept = [run for run in _runs(voiced) if run.size >= _MIN_RUN_FRAMES]
    return np.concatenate(kept) if kept else voiced[:0]
