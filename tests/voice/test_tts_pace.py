"""A slower pace (an adapted call) is other audio: longer, and cached under its own key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voice.settings import TtsSettings
from voice.tts import TtsEngine

TEXT = "Starting Monday, okay?"
# Piper draws each phoneme's length at random (noise_w): the same text at the same pace varied
# by up to 10 % between renderings, as much as a slower pace adds. Without that noise the
# lengths are fixed, and pace 1.3 gives about 1.17 times the audio (the pauses around the
# words do not stretch).
LONGER = 1.1


@pytest.fixture
async def steady_tts(tmp_path: Path) -> AsyncIterator[TtsEngine]:
    engine = await TtsEngine.load(TtsSettings(cache_dir=tmp_path / "cache", noise_w_scale=0.0))
    yield engine
    engine.shutdown()


async def test_a_slower_pace_renders_longer_audio_under_its_own_cache_key(
    steady_tts: TtsEngine,
) -> None:
    tts = steady_tts
    normal = await tts.render(TEXT)
    slower = await tts.render(TEXT, pace=1.3)
    assert tts.cache_path(TEXT) != tts.cache_path(TEXT, 1.3)
    assert len(slower) > len(normal) * LONGER  # Piper's length_scale stretches the speech
    made = tts.sentences_synthesized
    assert await tts.render(TEXT, pace=1.3) == slower  # from its own cache file
    assert await tts.render(TEXT) == normal  # the normal rendering is not replaced
    assert tts.sentences_synthesized == made


async def test_a_streamed_text_at_a_slower_pace_never_reads_the_normal_cache(
    steady_tts: TtsEngine,
) -> None:
    normal = await steady_tts.render(TEXT)
    streamed = b"".join([pcm async for pcm in steady_tts.stream(TEXT, pace=1.3)])
    assert len(streamed) > len(normal) * LONGER
