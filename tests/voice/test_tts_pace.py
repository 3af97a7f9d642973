"""A slower pace (an adapted call) is other audio: longer, and cached under its own key."""

from __future__ import annotations

from voice.tts import TtsEngine

TEXT = "Starting Monday, okay?"


async def test_a_slower_pace_renders_longer_audio_under_its_own_cache_key(tts: TtsEngine) -> None:
    normal = await tts.render(TEXT)
    slower = await tts.render(TEXT, pace=1.3)
    assert tts.cache_path(TEXT) != tts.cache_path(TEXT, 1.3)
    assert len(slower) > len(normal) * 1.15  # Piper's length_scale stretches the speech
    made = tts.sentences_synthesized
    assert await tts.render(TEXT, pace=1.3) == slower  # from its own cache file
    assert await tts.render(TEXT) == normal  # the normal rendering is not replaced
    assert tts.sentences_synthesized == made


async def test_a_streamed_text_at_a_slower_pace_never_reads_the_normal_cache(
    tts: TtsEngine,
) -> None:
    normal = await tts.render(TEXT)
    streamed = b"".join([pcm async for pcm in tts.stream(TEXT, pace=1.3)])
    assert len(streamed) > len(normal) * 1.15
