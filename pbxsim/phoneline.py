"""A telephone line for simulated callers: band limit, G.711 companding, line noise, lost packets.

The order follows a real call: the handset's microphone band (300-3400 Hz), noise picked up on
the line, 8-bit µ-law or A-law coding, then 20 ms packets that never arrive and are concealed
by the receiver (the last good packet repeated and faded, as simple jitter buffers do).
Everything is deterministic for a given `numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.signal
import soxr

RATE = 8000
PACKET_SAMPLES = 160  # 20 ms, one RTP packet of G.711
_BAND_HZ = (300.0, 3400.0)
_BAND_ORDER = 4
_MU = 255.0
_A = 87.6
# Each further packet concealed in a row is this much quieter, so a long gap fades out.
_CONCEALMENT_FADE = 0.5

Codec = Literal["ulaw", "alaw"]


@dataclass(frozen=True, slots=True)
class LineSettings:
    """One line's character. `noise_dbfs` is the level of the added white noise; `loss` is the
    share of 20 ms packets lost (and concealed)."""

    codec: Codec = "ulaw"
    noise_dbfs: float = -60.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if self.codec not in ("ulaw", "alaw"):
            raise ValueError(f"codec must be 'ulaw' or 'alaw', got {self.codec!r}")
        if not np.isfinite(self.noise_dbfs) or self.noise_dbfs > -10.0:
            raise ValueError(f"noise_dbfs must be at most -10 dBFS, got {self.noise_dbfs}")
        if not 0.0 <= self.loss < 0.5:
            raise ValueError(f"loss must be a share in [0, 0.5), got {self.loss}")


def through_line(
    pcm: np.ndarray, rate: int, line: LineSettings, rng: np.random.Generator
) -> np.ndarray:
    """`pcm` (mono int16 at `rate` Hz) as heard at the far end of `line`: int16 at 8 kHz."""
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError("pcm must be a one-dimensional int16 numpy array (mono PCM)")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < RATE:
        raise ValueError(f"rate must be an integer sample rate of at least {RATE} Hz, got {rate!r}")
    signal = pcm.astype(np.float64) / 32768.0
    if rate != RATE:
        signal = soxr.resample(signal, rate, RATE)
    sos = scipy.signal.butter(_BAND_ORDER, _BAND_HZ, btype="bandpass", fs=RATE, output="sos")
    signal = scipy.signal.sosfilt(sos, signal)
    signal = signal + rng.standard_normal(signal.size) * 10.0 ** (line.noise_dbfs / 20.0)
    signal = g711(np.clip(signal, -1.0, 1.0), line.codec)
    signal = conceal_lost_packets(signal, line.loss, rng)
    return np.round(np.clip(signal, -1.0, 1.0) * 32767.0).astype(np.int16)


def g711(signal: np.ndarray, codec: Codec) -> np.ndarray:
    """Encode to 8 bits with the codec's logarithmic companding and decode again."""
    magnitude = np.abs(signal)
    if codec == "ulaw":
        compressed = np.log1p(_MU * magnitude) / np.log1p(_MU)
    else:
        small = magnitude < 1.0 / _A
        with np.errstate(divide="ignore"):
            large_part = (1.0 + np.log(np.maximum(magnitude, 1e-12) * _A)) / (1.0 + np.log(_A))
        compressed = np.where(small, _A * magnitude / (1.0 + np.log(_A)), large_part)
    # 7 bits of magnitude plus the sign bit.
    quantised = np.round(compressed * 127.0) / 127.0
    if codec == "ulaw":
        expanded = np.expm1(quantised * np.log1p(_MU)) / _MU
    else:
        threshold = 1.0 / (1.0 + np.log(_A))
        expanded = np.where(
            quantised < threshold,
            quantised * (1.0 + np.log(_A)) / _A,
            np.exp(quantised * (1.0 + np.log(_A)) - 1.0) / _A,
        )
    return np.sign(signal) * expanded


def conceal_lost_packets(signal: np.ndarray, loss: float, rng: np.random.Generator) -> np.ndarray:
    """Drop each 20 ms packet with probability `loss`; fill it with the last packet, faded."""
    out = signal.copy()
    last = np.zeros(PACKET_SAMPLES)
    gain = 1.0
    for start in range(0, out.size, PACKET_SAMPLES):
        packet = out[start : start + PACKET_SAMPLES]
        if rng.random() < loss:
            gain *= _CONCEALMENT_FADE
            packet[:] = last[: packet.size] * gain
        else:
            gain = 1.0
            last = np.pad(packet, (0, PACKET_SAMPLES - packet.size))
    return out
