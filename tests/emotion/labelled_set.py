"""The labelled emotion set: fixture WAVs, their features, and simulated calls built from them."""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion.agitation import AgitationReading, AgitationTracker
from emotion.features import ProsodyFeatures, extract_features
from emotion.settings import EmotionSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emotion"
TAKES_PER_SPEAKER = 6


@dataclass(frozen=True)
class SpeakerTakes:
    id: str
    language: str
    split: str
    calm: tuple[ProsodyFeatures, ...]
    agitated: tuple[ProsodyFeatures, ...]


@dataclass(frozen=True)
class SimulatedCall:
    speaker: str
    split: str
    agitated: bool
    baseline: tuple[ProsodyFeatures, ...]
    turns: tuple[ProsodyFeatures, ...]


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as source:
        if (source.getnchannels(), source.getsampwidth(), source.getframerate()) != (1, 2, 8000):
            raise ValueError(f"{path} is not 8 kHz mono 16-bit")
        return np.frombuffer(source.readframes(source.getnframes()), dtype="<i2").astype(np.int16)


def load_speakers() -> list[SpeakerTakes]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    return [
        SpeakerTakes(
            id=entry["id"],
            language=entry["language"],
            split=entry["split"],
            calm=tuple(extract_features(read_wav(FIXTURES / rel)) for rel in entry["calm"]),
            agitated=tuple(extract_features(read_wav(FIXTURES / rel)) for rel in entry["agitated"]),
        )
        for entry in manifest["speakers"]
    ]


def simulate_calls(speakers: list[SpeakerTakes], baseline_turns: int) -> list[SimulatedCall]:
    """Per speaker and rotation: `baseline_turns` calm takes, then the other takes, calm or angry.

    Rotating which takes form the baseline gives every take a turn as a test item while a
    test turn is never also in its own call's baseline.
    """
    calls = []
    for speaker in speakers:
        for start in range(TAKES_PER_SPEAKER):
            order = [(start + step) % TAKES_PER_SPEAKER for step in range(TAKES_PER_SPEAKER)]
            base, rest = order[:baseline_turns], order[baseline_turns:]
            for agitated in (False, True):
                source = speaker.agitated if agitated else speaker.calm
                calls.append(
                    SimulatedCall(
                        speaker=speaker.id,
                        split=speaker.split,
                        agitated=agitated,
                        baseline=tuple(speaker.calm[i] for i in base),
                        turns=tuple(source[i] for i in rest),
                    )
                )
    return calls


def run_call(call: SimulatedCall, settings: EmotionSettings) -> list[AgitationReading]:
    """All readings of one call, baseline turns first."""
    tracker = AgitationTracker(settings)
    return [tracker.update(features) for features in (*call.baseline, *call.turns)]
