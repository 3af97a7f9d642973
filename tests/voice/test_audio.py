"""Frames, conversions, resampling and WAV files."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.voice.helpers import FIXTURES
from voice.audio import (
    FRAME_BYTES,
    SAMPLE_RATE,
    SILENCE_DBFS,
    AudioFormatError,
    bytes_to_int16,
    duration_s,
    float32_to_int16,
    int16_to_bytes,
    int16_to_float32,
    iter_frames,
    read_wav,
    resample,
    rms_dbfs,
    silence,
    write_wav,
)


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


def test_a_frame_is_20_ms_of_8_khz_slin() -> None:
    assert FRAME_BYTES == 320
    assert duration_s(b"\x00" * FRAME_BYTES) == pytest.approx(0.020)


def test_iter_frames_pads_the_last_frame_with_silence() -> None:
    pcm = bytes(range(256)) * 2 + b"\x01\x02" * 5  # 522 bytes
    frames = list(iter_frames(pcm))
    assert [len(f) for f in frames] == [FRAME_BYTES, FRAME_BYTES]
    assert b"".join(frames)[: len(pcm)] == pcm
    assert frames[1][len(pcm) - FRAME_BYTES :] == bytes(2 * FRAME_BYTES - len(pcm))


def test_odd_byte_counts_are_rejected() -> None:
    with pytest.raises(AudioFormatError, match="even byte count"):
        list(iter_frames(b"\x00" * 321))
    with pytest.raises(AudioFormatError):
        bytes_to_int16(b"\x01")


def test_int16_and_float_conversions_round_trip_and_clip() -> None:
    samples = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert int16_to_bytes(samples) == b"\x00\x80\xff\xff\x00\x00\x01\x00\xff\x7f"
    assert np.array_equal(bytes_to_int16(int16_to_bytes(samples)), samples)
    assert np.array_equal(float32_to_int16(int16_to_float32(samples)), samples)
    clipped = float32_to_int16(np.array([1.5, -1.5], dtype=np.float32))
    assert clipped.tolist() == [32767, -32768]
    with pytest.raises(AudioFormatError, match="int16"):
        int16_to_bytes(np.zeros(4, dtype=np.float32))


def test_resample_keeps_pitch_and_duration() -> None:
    tone = sine(440.0, 22050, 1.0)
    out = resample(tone, 22050, SAMPLE_RATE)
    assert out.dtype == np.float32
    assert out.size == pytest.approx(SAMPLE_RATE, abs=2)
    assert peak_hz(out, SAMPLE_RATE) == pytest.approx(440.0, abs=2.0)


def test_resample_rejects_bad_rates_and_stereo() -> None:
    with pytest.raises(AudioFormatError, match="positive"):
        resample(np.zeros(10, dtype=np.float32), 0, SAMPLE_RATE)
    with pytest.raises(AudioFormatError, match="mono"):
        resample(np.zeros((10, 2), dtype=np.float32), 16000, SAMPLE_RATE)


def test_rms_dbfs() -> None:
    full_square = int16_to_bytes(np.array([32767, -32768] * 80, dtype=np.int16))
    assert rms_dbfs(full_square) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs(silence(20)) == SILENCE_DBFS
    assert rms_dbfs(b"") == SILENCE_DBFS
    half_sine = int16_to_bytes(float32_to_int16(sine(400.0, SAMPLE_RATE, 0.1, amplitude=0.5)))
    assert rms_dbfs(half_sine) == pytest.approx(-9.03, abs=0.1)  # 0.5 / sqrt(2)


def test_silence_length() -> None:
    assert len(silence(500)) == 8000
    with pytest.raises(AudioFormatError):
        silence(-1)


def _write_raw_wav(path: Path, raw: bytes, rate: int, width: int, channels: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(raw)


def test_read_wav_converts_44k_stereo_24_bit(tmp_path: Path) -> None:
    left = sine(300.0, 44100, 0.5)
    right = sine(300.0, 44100, 0.5)
    ints = (np.stack([left, right], axis=1).reshape(-1) * (1 << 23)).astype(np.int32)
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    path = tmp_path / "stereo24.wav"
    _write_raw_wav(path, raw, 44100, 3, 2)

    pcm = read_wav(path)
    samples = bytes_to_int16(pcm)
    assert duration_s(pcm) == pytest.approx(0.5, abs=0.001)
    assert peak_hz(samples, SAMPLE_RATE) == pytest.approx(300.0, abs=2.0)
    assert np.max(np.abs(samples)) == pytest.approx(0.5 * 32768, rel=0.02)


def test_read_wav_converts_unsigned_8_bit(tmp_path: Path) -> None:
    raw = (sine(500.0, 16000, 0.25) * 127 + 128).astype(np.uint8).tobytes()
    path = tmp_path / "u8.wav"
    _write_raw_wav(path, raw, 16000, 1, 1)
    samples = bytes_to_int16(read_wav(path))
    assert samples.size == pytest.approx(2000, abs=2)
    assert peak_hz(samples, SAMPLE_RATE) == pytest.approx(500.0, abs=4.0)


def test_write_then_read_is_lossless_at_8_khz(tmp_path: Path) -> None:
    pcm = int16_to_bytes(float32_to_int16(sine(1000.0, SAMPLE_RATE, 0.3)))
    write_wav(tmp_path / "a.wav", pcm)
    assert read_wav(tmp_path / "a.wav") == pcm


def test_read_wav_rejects_what_is_not_a_pcm_wav(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    with pytest.raises(AudioFormatError, match="not a readable PCM WAV"):
        read_wav(junk)
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


def test_write_wav_rejects_odd_byte_counts(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError):
        write_wav(tmp_path / "odd.wav", b"\x00\x00\x00")


def test_every_fixture_is_8_khz_mono_16_bit() -> None:
    wavs = sorted(FIXTURES.glob("*.wav"))
    assert len(wavs) >= 20
    for path in wavs:
        with wave.open(str(path), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)


def test_the_fixture_readme_lists_every_wav() -> None:
    listed: set[str] = set()
    for name in re.findall(r"`([a-z0-9_{},]+\.wav)`", (FIXTURES / "README.md").read_text()):
        group = re.search(r"\{([a-z0-9,]+)\}", name)
        variants = group.group(1).split(",") if group else [""]
        listed |= {re.sub(r"\{[a-z0-9,]+\}", v, name) for v in variants}
    assert listed == {p.name for p in FIXTURES.glob("*.wav")}
