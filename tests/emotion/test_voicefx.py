"""pbxsim.voicefx: the agitated and other-speaker transforms do what they claim."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from emotion.features import extract_features
from pbxsim.voicefx import agitate, raise_voice, vary_speaker

RATE = 8000


def _vowel(f0: float = 140.0, seconds: float = 1.0, level: float = 0.1) -> np.ndarray:
    time = np.arange(int(RATE * seconds)) / RATE
    wave = sum(np.sin(2 * np.pi * f0 * k * time) / k for k in range(1, 8))
    return np.round(wave / np.max(np.abs(wave)) * level * 32767).astype(np.int16)


def _median_f0(pcm: np.ndarray) -> float:
    f0 = librosa.yin(pcm.astype(np.float32) / 32768, fmin=65, fmax=500, sr=RATE, frame_length=512)
    return float(np.median(f0))


def _rms_db(pcm: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean((pcm.astype(np.float64) / 32768) ** 2))))


def test_agitate_raises_pitch_loudness_and_tempo() -> None:
    calm = _vowel()
    angry = agitate(calm, RATE, pitch_semitones=4.0, gain_db=6.0, tempo=1.25)
    assert angry.dtype == np.int16
    assert 12 * np.log2(_median_f0(angry) / _median_f0(calm)) == pytest.approx(4.0, abs=0.3)
    # The phase vocoder loses a little level; most of the gain must remain.
    assert _rms_db(angry) - _rms_db(calm) > 4.5
    assert angry.size == pytest.approx(calm.size / 1.25, rel=0.02)


def test_gain_alone_is_exact_below_the_soft_clip_knee() -> None:
    calm = _vowel(level=0.1)
    louder = agitate(calm, RATE, pitch_semitones=0.0, gain_db=6.0, tempo=1.0)
    assert _rms_db(louder) - _rms_db(calm) == pytest.approx(6.0, abs=0.05)
    assert louder.size == calm.size


def test_agitate_is_deterministic() -> None:
    calm = _vowel()
    params = {"pitch_semitones": 2.5, "gain_db": 3.0, "tempo": 1.1}
    assert np.array_equal(agitate(calm, RATE, **params), agitate(calm, RATE, **params))


def test_large_gain_saturates_softly_instead_of_wrapping() -> None:
    loud = agitate(_vowel(level=0.9), RATE, pitch_semitones=0.0, gain_db=20.0, tempo=1.0)
    reference = _vowel(level=0.9)
    # Wrap-around would flip signs; soft clipping keeps each sample's sign and stays in range.
    nonzero = reference != 0
    assert np.all(np.sign(loud[nonzero]) == np.sign(reference[nonzero]))
    assert np.abs(loud.astype(np.int32)).max() <= 32767


def test_vary_speaker_moves_pitch_but_keeps_duration() -> None:
    calm = _vowel(f0=200.0)
    other = vary_speaker(calm, RATE, semitones=-3.0)
    assert 12 * np.log2(_median_f0(other) / _median_f0(calm)) == pytest.approx(-3.0, abs=0.3)
    assert other.size == pytest.approx(calm.size, rel=0.02)
    assert _rms_db(other) == pytest.approx(_rms_db(calm), abs=0.5)


def test_empty_input_gives_empty_output() -> None:
    empty = np.zeros(0, dtype=np.int16)
    assert agitate(empty, RATE, pitch_semitones=3.0, gain_db=3.0, tempo=1.2).size == 0


@pytest.mark.parametrize(
    ("pcm", "rate", "params", "message"),
    [
        (np.zeros(800, dtype=np.float32), RATE, {}, "int16"),
        (np.zeros((2, 800), dtype=np.int16), RATE, {}, "one-dimensional"),
        (np.zeros(800, dtype=np.int16), 0, {}, "rate"),
        (np.zeros(800, dtype=np.int16), 8000.0, {}, "rate"),
        (np.zeros(800, dtype=np.int16), RATE, {"tempo": 3.0}, "tempo"),
        (np.zeros(800, dtype=np.int16), RATE, {"pitch_semitones": 20.0}, "semitones"),
        (np.zeros(800, dtype=np.int16), RATE, {"gain_db": float("nan")}, "gain"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(
    pcm: np.ndarray, rate: int, params: dict[str, float], message: str
) -> None:
    arguments = {"pitch_semitones": 2.0, "gain_db": 3.0, "tempo": 1.1, **params}
    with pytest.raises(ValueError, match=message):
        agitate(pcm, rate, **arguments)


def _glide(seconds: float = 1.0) -> np.ndarray:
    """A vowel-like tone whose pitch rises and falls, like an intonation contour."""
    time = np.arange(int(RATE * seconds)) / RATE
    f0 = 140.0 * 2 ** (0.2 * np.sin(2 * np.pi * time))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 24))
    return np.round(wave / np.max(np.abs(wave)) * 0.1 * 32767).astype(np.int16)


def test_raise_voice_moves_pitch_and_widens_its_range_with_psola() -> None:
    calm = _glide()
    raised = raise_voice(calm, RATE, cents=300.0, range_factor=1.5)
    calm_f, raised_f = extract_features(calm), extract_features(raised)
    assert raised_f.f0_median_st - calm_f.f0_median_st == pytest.approx(3.0, abs=0.6)
    assert raised_f.f0_range_st > 1.3 * calm_f.f0_range_st
    assert raised.size == pytest.approx(calm.size, rel=0.02)


def test_raise_voice_effort_flattens_the_tilt_and_tempo_shortens() -> None:
    calm = _glide()
    strained = raise_voice(calm, RATE, cents=0.0, effort_db=6.0, tempo=1.25)
    calm_f, strained_f = extract_features(calm), extract_features(strained)
    assert strained_f.energy_median_dbfs - calm_f.energy_median_dbfs > 5.0
    assert calm_f.spectral_tilt_db - strained_f.spectral_tilt_db > 2.0
    assert strained.size == pytest.approx(calm.size / 1.25, rel=0.05)


def test_raise_voice_refuses_a_range_factor_out_of_bounds() -> None:
    with pytest.raises(ValueError, match="range_factor"):
        raise_voice(_glide(), RATE, cents=100.0, range_factor=5.0)


def test_raise_voice_is_deterministic() -> None:
    params = {"cents": 200.0, "range_factor": 1.3, "effort_db": 3.0, "tempo": 1.1}
    assert np.array_equal(
        raise_voice(_glide(), RATE, **params), raise_voice(_glide(), RATE, **params)
    )
