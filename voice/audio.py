"""8 kHz signed 16-bit little-endian mono ("slin") helpers: frames, conversions, WAV files.

AudioSocket carries 320-byte frames, 20 ms of slin each; everything in `voice` speaks that.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
FRAME_S = FRAME_MS / 1000

_INT16_SCALE = 32768.0
# dBFS reported for digital silence (log of zero).
SILENCE_DBFS = -120.0


class AudioFormatError(ValueError):
    """Audio that is not what it claims to be (odd byte count, unsupported WAV...)."""


def bytes_to_int16(pcm: bytes) -> np.ndarray:
    """slin bytes as int16 samples (a copy-free view)."""
    if len(pcm) % SAMPLE_WIDTH:
        raise AudioFormatError(f"16-bit audio needs an even byte count, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2")


def int16_to_bytes(samples: np.ndarray) -> bytes:
    if samples.dtype != np.int16:
        raise AudioFormatError(f"expected int16 samples, got {samples.dtype}")
    return samples.astype("<i2", copy=False).tobytes()


def int16_to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 samples scaled to [-1, 1)."""
    return samples.astype(np.float32) / _INT16_SCALE


def float32_to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16, clipping what overshoots (resampling can)."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32) * _INT16_SCALE, -32768, 32767)
    return scaled.astype(np.int16)


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample mono float32 or int16 samples with soxr; the dtype is kept."""
    if from_rate <= 0 or to_rate <= 0:
        raise AudioFormatError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if samples.ndim != 1:
        raise AudioFormatError(f"expected mono samples, got shape {samples.shape}")
    if from_rate == to_rate or samples.size == 0:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="HQ")


def duration_s(pcm: bytes) -> float:
    """Seconds of 8 kHz slin in `pcm`."""
    return len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)


def rms_dbfs(pcm: bytes) -> float:
    """RMS level of slin audio in dBFS (SILENCE_DBFS for digital silence or no audio)."""
    samples = bytes_to_int16(pcm)
    if samples.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms == 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms / _INT16_SCALE))


def iter_frames(pcm: bytes) -> Iterator[bytes]:
    """Split slin into 320-byte frames; the last one is padded with silence."""
    bytes_to_int16(pcm)  # validates the byte count
    for start in range(0, len(pcm), FRAME_BYTES):
        frame = pcm[start : start + FRAME_BYTES]
        yield frame.ljust(FRAME_BYTES, b"\x00")


def silence(ms: int) -> bytes:
    """`ms` milliseconds of digital silence, rounded down to whole samples."""
    if ms < 0:
        raise AudioFormatError(f"duration must not be negative, got {ms} ms")
    return bytes(SAMPLE_RATE * ms // 1000 * SAMPLE_WIDTH)


def _decode_samples(raw: bytes, width: int) -> np.ndarray:
    """Integer PCM of any WAV width as float32 in [-1, 1)."""
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / _INT16_SCALE
    if width == 3:
        triplets = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = triplets[:, 0] | (triplets[:, 1] << 8) | (triplets[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return values.astype(np.float32) / float(1 << 23)
    if width == 4:
        return (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(
            np.float32
        )
    raise AudioFormatError(f"unsupported WAV sample width: {width} bytes")


def read_wav(path: Path | str) -> bytes:
    """Any integer-PCM WAV (rate, width, channels) as 8 kHz mono slin bytes."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path}: not a readable PCM WAV file ({exc})") from exc
    samples = _decode_samples(raw, width)
    if channels > 1:
        samples = samples[: samples.size - samples.size % channels].reshape(-1, channels)
        samples = samples.mean(axis=1, dtype=np.float32)
    if rate != SAMPLE_RATE:
        samples = resample(samples, rate, SAMPLE_RATE)
    return int16_to_bytes(float32_to_int16(samples))


def write_wav(path: Path | str, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
    """Write slin bytes as a mono 16-bit WAV file."""
    bytes_to_int16(pcm)  # validates the byte count
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(rate)
        wav.writeframes(pcm)
