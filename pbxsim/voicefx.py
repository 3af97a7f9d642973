"""Deterministic voice effects for simulated callers: agitated and other-speaker variants.

Pitch is shifted by resampling (which also scales the formants, like a different vocal tract)
and the duration is set independently with a phase-vocoder time stretch, so pitch and tempo are
two separate knobs. `raise_voice` is a second, independent way to make a voice impatient
(Praat's PSOLA keeps the formants, plus vocal effort), so a detector tuned on one can be judged
on the other. Everything is plain DSP: the same input and parameters give the same output.
"""

from __future__ import annotations

import zlib

import librosa
import numpy as np
import parselmouth
import soxr
from parselmouth.praat import call

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
# Pitch search range of Praat's manipulation (PSOLA) for `raise_voice`.
_PSOLA_FLOOR_HZ = 60.0
_PSOLA_CEILING_HZ = 500.0


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


def raise_voice(
    pcm: np.ndarray,
    rate: int,
    *,
    cents: float,
    range_factor: float = 1.0,
    effort_db: float = 0.0,
    tempo: float = 1.0,
) -> np.ndarray:
    """Impatience made a second, independent way: Praat's PSOLA instead of resampling.

    Pitch moves by `cents` and its excursions around the utterance's mean are stretched by
    `range_factor` (in log frequency) while the formants stay put, as in one speaker getting
    tense; `effort_db` adds vocal effort: that much louder, and half as much more above 1 kHz
    (raised effort flattens the spectral tilt). `tempo` > 1 shortens the durations with PSOLA.
    """
    _validate(pcm, rate, semitones=cents / 100.0, gain_db=effort_db, tempo=tempo)
    if not 0.5 <= range_factor <= 3.0:
        raise ValueError(f"range_factor must be within [0.5, 3.0], got {range_factor}")
    if pcm.size == 0:
        return pcm.copy()
    signal = _psola(pcm.astype(np.float64) / _INT16_FULL_SCALE, rate, cents, range_factor, tempo)
    signal = _effort(signal, rate, effort_db)
    return np.round(_soft_clip(signal.astype(np.float32)) * (_INT16_FULL_SCALE - 1)).astype(
        np.int16
    )


def _psola(
    signal: np.ndarray, rate: int, cents: float, range_factor: float, tempo: float
) -> np.ndarray:
    # Praat's resynthesis draws random numbers: seed them from the input, so the same input
    # and parameters give the same output like the rest of this module.
    seed = zlib.crc32(signal.tobytes()) % 2**31
    parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
    sound = parselmouth.Sound(signal, sampling_frequency=rate)
    manipulation = call(sound, "To Manipulation", 0.01, _PSOLA_FLOOR_HZ, _PSOLA_CEILING_HZ)
    tier = call(manipulation, "Extract pitch tier")
    if call(tier, "Get number of points") > 0:
        mean_hz = call(tier, "Get mean (points)", 0, 0)
        factor = 2.0 ** (cents / 1200.0)
        call(tier, "Formula", f"{mean_hz * factor} * (self / {mean_hz}) ^ {range_factor}")
        call([tier, manipulation], "Replace pitch tier")
    durations = call("Create DurationTier", "tempo", sound.xmin, sound.xmax)
    call(durations, "Add point", sound.xmin, 1.0 / tempo)
    call([manipulation, durations], "Replace duration tier")
    result = call(manipulation, "Get resynthesis (overlap-add)")
    return np.asarray(result.values[0], dtype=np.float64)


def _effort(signal: np.ndarray, rate: int, effort_db: float) -> np.ndarray:
    """Gain plus a smooth high shelf centred on 1 kHz, applied in the frequency domain."""
    spectrum = np.fft.rfft(signal)
    hz = np.fft.rfftfreq(signal.size, 1.0 / rate)
    shelf_db = 0.5 * effort_db / (1.0 + np.exp(-(hz - 1000.0) / 250.0))
    gain = 10.0 ** ((effort_db + shelf_db) / 20.0)
    return np.fft.irfft(spectrum * gain, n=signal.size)
