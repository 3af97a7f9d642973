"""Deterministic voice effects for simulated callers: agitated and other-speaker variants.

Pitch is shifted by resampling (which also scales the formants, like a different vocal tract)
and the duration is set independently with a phase-vocoder time stretch, so pitch and tempo are
two separate knobs. Everything is plain DSP: the same input and parameters give the same output.
"""

from __future__ import annotations

import librosa
import numpy as np
import soxr

_INT16_FULL_SCALE = 32768.0
# Short analysis windows suit 8 kHz telephone speech: 64 ms keeps the phase vocoder's smearing
# of consonants small (librosa's default 2048 samples would be 256 ms at 8 kHz).
_STRETCH_N_FFT = 512
# Soft clipping starts at half scale: below it the gain is exactly linear.
_SOFT_CLIP_KNEE = 0.5

MAX_PITCH_SEMITONES = 12.0
MIN_TEMPO = 0.5
MAX_TEMPO = 2.0
MAX_GAIN_DB = 30.0


def agitate(
    pcm: np.ndarray,
    rate: int,
    *,
    pitch_semitones: float,
    gain_db: float,
    tempo: float,
) -> np.ndarray:
    """Make an utterance sound agitated: higher pitch, louder (soft-clipped) and faster.

    ``pcm`` is mono int16 at ``rate`` Hz; ``tempo`` > 1 speaks faster (1.2 = 20 % shorter).
    Returns int16 at the same rate.
    """
    return _transform(pcm, rate, semitones=pitch_semitones, gain_db=gain_db, tempo=tempo)


def vary_speaker(
    pcm: np.ndarray,
    rate: int,
    *,
    semitones: float,
    tempo: float = 1.0,
    gain_db: float = 0.0,
) -> np.ndarray:
    """Make a calm variant that sounds like another speaker.

    Shifting by resampling moves pitch and formants together, which is heard as a different
    (larger or smaller) voice rather than as the same voice getting excited; small ``tempo`` and
    ``gain_db`` changes add ordinary between-speaker variation.
    """
    return _transform(pcm, rate, semitones=semitones, gain_db=gain_db, tempo=tempo)


def _transform(
    pcm: np.ndarray, rate: int, *, semitones: float, gain_db: float, tempo: float
) -> np.ndarray:
    _validate(pcm, rate, semitones=semitones, gain_db=gain_db, tempo=tempo)
    if pcm.size == 0:
        return pcm.copy()
    signal = pcm.astype(np.float32) / _INT16_FULL_SCALE
    ratio = 2.0 ** (semitones / 12.0)
    # Resampling to rate/ratio and playing back at rate raises pitch by `ratio` and shortens by
    # `ratio`; stretching first by tempo/ratio leaves a net duration change of 1/tempo.
    stretch = tempo / ratio
    if not np.isclose(stretch, 1.0):
        signal = librosa.effects.time_stretch(
            signal, rate=stretch, n_fft=_STRETCH_N_FFT, hop_length=_STRETCH_N_FFT // 4
        )
    if not np.isclose(ratio, 1.0):
        signal = soxr.resample(signal, rate * ratio, rate, quality="HQ")
    signal = _soft_clip(signal * np.float32(10.0 ** (gain_db / 20.0)))
    return np.round(signal * (_INT16_FULL_SCALE - 1)).astype(np.int16)


def _soft_clip(signal: np.ndarray) -> np.ndarray:
    """Linear below the knee, tanh above it: loud peaks saturate smoothly, never wrap around."""
    magnitude = np.abs(signal)
    headroom = 1.0 - _SOFT_CLIP_KNEE
    compressed = _SOFT_CLIP_KNEE + headroom * np.tanh((magnitude - _SOFT_CLIP_KNEE) / headroom)
    return np.where(magnitude > _SOFT_CLIP_KNEE, np.sign(signal) * compressed, signal).astype(
        np.float32
    )


def _validate(
    pcm: np.ndarray, rate: int, *, semitones: float, gain_db: float, tempo: float
) -> None:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError("pcm must be a one-dimensional int16 numpy array (mono PCM)")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"rate must be a positive integer sample rate in Hz, got {rate!r}")
    if not np.isfinite(semitones) or abs(semitones) > MAX_PITCH_SEMITONES:
        raise ValueError(
            f"pitch shift must be within ±{MAX_PITCH_SEMITONES} semitones, got {semitones}"
        )
    if not np.isfinite(gain_db) or abs(gain_db) > MAX_GAIN_DB:
        raise ValueError(f"gain must be within ±{MAX_GAIN_DB} dB, got {gain_db}")
    if not np.isfinite(tempo) or not MIN_TEMPO <= tempo <= MAX_TEMPO:
        raise ValueError(f"tempo must be within [{MIN_TEMPO}, {MAX_TEMPO}], got {tempo}")
