"""Voice fixtures: the real Vosk model and Piper voice, loaded once per test session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voice.asr import AsrEngine
from voice.settings import AsrSettings, TtsSettings
from voice.tts import TtsEngine


@pytest.fixture(scope="session")
async def asr_engine() -> AsyncIterator[AsrEngine]:
    engine = await AsrEngine.load(AsrSettings(executor_threads=2))
    yield engine
    engine.shutdown()


@pytest.fixture
async def tts(tmp_path: Path) -> AsyncIterator[TtsEngine]:
    """A fresh engine with an empty cache; the Piper voice itself is loaded once per process."""
    engine = await TtsEngine.load(TtsSettings(cache_dir=tmp_path / "cache"))
    yield engine
    engine.shutdown()
