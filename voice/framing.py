"""Audio as a PBX frames it, re-framed into the fixed 20 ms 8 kHz frames the VAD, the ASR and
the emotion features want.

A real Asterisk sends audio messages of any even length: the last frame of every file playback
is partial (152, 102, 134 bytes in tests/fixtures/asterisk-captures), and transcoded or bridged
sources send whatever their codec framed. Wideband kinds (slin12 ... slin192) carry other
sample rates. `Reframer` takes each message as it came, resamples it to 8 kHz with soxr when
needed, and hands on whole 320-byte frames; the remainder waits for the next message or for
`flush` (the source went quiet), which pads it with silence.
"""

from __future__ import annotations

import numpy as np
import soxr

from voice.audio import FRAME_BYTES, SAMPLE_RATE, bytes_to_int16

# soxr's high quality filters the band above 4 kHz out before it folds into speech; its
# latency (under 100 ms of audio) is paid only on wideband lines and emptied by `flush`.
_RESAMPLE_QUALITY = "HQ"


class Reframer:
    """One call's inbound audio at one sample rate -> 320-byte frames of 8 kHz slin."""

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.rate = rate
        self._resampler = (
            None
            if rate == SAMPLE_RATE
            else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16", quality=_RESAMPLE_QUALITY)
        )
        self._pending = bytearray()
        self._fed = False  # audio came in since the last flush

    @property
    def holding(self) -> bool:
        """Audio may be waiting for more before it makes a whole frame (or for `flush`)."""
        return self._fed

    def feed(self, pcm: bytes) -> list[bytes]:
        """The whole frames that `pcm` (slin at this reframer's rate) completes."""
        samples = bytes_to_int16(pcm)  # an odd byte count raises AudioFormatError
        self._fed = True
        if self._resampler is None:
            self._pending += pcm
        else:
            self._pending += self._resampler.resample_chunk(samples).astype("<i2").tobytes()
        return self._whole_frames()

    def flush(self) -> list[bytes]:
        """Everything held, the last frame padded with silence; then ready for new audio."""
        self._fed = False
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            self._pending += tail.astype("<i2").tobytes()
            self._resampler.clear()
        frames = self._whole_frames()
        if self._pending:
            frames.append(bytes(self._pending).ljust(FRAME_BYTES, b"\x00"))
            self._pending.clear()
        return frames

    def _whole_frames(self) -> list[bytes]:
        whole = len(self._pending) // FRAME_BYTES * FRAME_BYTES
        if not whole:
            return []
        chunk = bytes(self._pending[:whole])
        del self._pending[:whole]
        return [chunk[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]
