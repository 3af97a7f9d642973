"""pbxsim.phoneline: the telephone channel does what a line does, and refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pbxsim.phoneline import PACKET_SAMPLES, LineSettings, conceal_lost_packets, g711, through_line

RATE = 8000


def _tone(hz: float, seconds: float = 1.0, rate: int = RATE, level: float = 0.3) -> np.ndarray:
    time = np.arange(int(rate * seconds)) / rate
    return np.round(np.sin(2 * np.pi * hz * time) * level * 32767).astype(np.int16)


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768) ** 2)))


def test_the_line_keeps_the_voice_band_and_removes_what_lies_outside() -> None:
    line = LineSettings(noise_dbfs=-90.0)
    inside = through_line(_tone(1000.0, rate=16000), 16000, line, np.random.default_rng(1))
    hum = through_line(_tone(60.0, rate=16000), 16000, line, np.random.default_rng(1))
    assert inside.dtype == np.int16 and inside.size == RATE
    assert _rms(inside) == pytest.approx(_rms(_tone(1000.0)), rel=0.05)
    assert _rms(hum) < 0.01 * _rms(inside)


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_g711_companding_keeps_quiet_and_loud_speech_at_about_35_db_snr(codec: str) -> None:
    for level in (0.01, 0.5):
        signal = np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE) * level
        error = g711(signal, codec) - signal  # type: ignore[arg-type]
        snr = 10 * np.log10(np.mean(signal**2) / np.mean(error**2))
        assert 25.0 < snr < 45.0, (codec, level, snr)


def test_lost_packets_are_concealed_with_the_last_one_faded_not_silence() -> None:
    signal = np.sin(2 * np.pi * 200 * np.arange(RATE) / RATE) * 0.5
    concealed = conceal_lost_packets(signal, 0.3, np.random.default_rng(5))
    packets = concealed.reshape(-1, PACKET_SAMPLES)
    changed = [
        i
        for i in range(packets.shape[0])
        if not np.allclose(packets[i], signal.reshape(-1, PACKET_SAMPLES)[i])
    ]
    assert 0.15 * packets.shape[0] < len(changed) < 0.45 * packets.shape[0]
    assert all(np.abs(packets[i]).max() > 0.05 for i in changed if i > 0)
    assert concealed.size == signal.size


def test_the_same_generator_seed_gives_the_same_line() -> None:
    line = LineSettings(codec="alaw", noise_dbfs=-40.0, loss=0.05)
    first = through_line(_tone(500.0), RATE, line, np.random.default_rng(9))
    again = through_line(_tone(500.0), RATE, line, np.random.default_rng(9))
    assert np.array_equal(first, again)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"codec": "gsm"}, "codec"),
        ({"noise_dbfs": 0.0}, "noise_dbfs"),
        ({"noise_dbfs": float("nan")}, "noise_dbfs"),
        ({"loss": 0.7}, "loss"),
    ],
)
def test_bad_line_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LineSettings(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pcm", "rate", "message"),
    [
        (np.zeros(800, dtype=np.float32), RATE, "int16"),
        (np.zeros((2, 800), dtype=np.int16), RATE, "one-dimensional"),
        (np.zeros(800, dtype=np.int16), 4000, "rate"),
        (np.zeros(800, dtype=np.int16), 8000.0, "rate"),
    ],
)
def test_bad_audio_is_refused(pcm: np.ndarray, rate: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        through_line(pcm, rate, LineSettings(), np.random.default_rng(0))
