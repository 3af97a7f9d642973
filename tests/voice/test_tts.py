"""Piper synthesis to 8 kHz slin, sentence streaming and the prompt cache (real voice)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from voice.ahead import AheadSynthesis
from voice.audio import duration_s, rms_dbfs
from voice.settings import TtsSettings
from voice.threads import BACKGROUND_NICE
from voice.tts import TtsEngine, TtsError

THREE_SENTENCES = (
    "Hello, this is Anna from Acme Energy. I am calling about your contract. Do you have a minute?"
)


async def test_render_gives_8_khz_slin_speech(tts: TtsEngine) -> None:
    audio = await tts.render("Thank you for your time.")
    assert len(audio) % 2 == 0
    # A short sentence at 8 kHz: about a second and a half of audible audio.
    assert 0.8 < duration_s(audio) < 4.0
    assert rms_dbfs(audio) > -30.0
    assert tts.sentences_synthesized == 1


async def test_each_sentence_is_audible_in_its_first_frames(tts: TtsEngine) -> None:
    """Piper put 20-80 ms of near silence before each sentence, which the caller waited
    through before every reply was heard (issue 16): the audio starts at its onset now."""
    chunks = [chunk async for chunk in tts.stream(THREE_SENTENCES)]
    assert len(chunks) == 3
    for chunk in chunks:
        frames = [chunk[at : at + 320] for at in range(0, 320 * 3, 320)]
        # Audible as the caller's side of the wire counts it: RMS >= 1 % of full scale.
        assert max(rms_dbfs(frame) for frame in frames[:2]) >= -40.0, chunk[:16]


async def test_synthesis_gives_its_memory_back_rather_than_growing_an_arena(
    tts: TtsEngine,
) -> None:
    """onnxruntime's CPU arena kept every tensor it held and grew by doubling under a soak's
    concurrent long sentences (issue 17): the voice's session runs without it."""
    await tts.render(THREE_SENTENCES)
    assert tts._voice.session.get_session_options().enable_cpu_mem_arena is False


async def test_second_render_is_a_cache_hit(tts: TtsEngine) -> None:
    text = "Your appointment is confirmed."
    first = await tts.render(text)
    path = tts.cache_path(text)
    assert path.is_file() and path.read_bytes() == first
    assert tts.sentences_synthesized == 1

    second = await tts.render(text)
    assert second == first
    assert tts.sentences_synthesized == 1
    assert list(tts.cache_dir.glob(".tmp-*")) == []  # atomic write left nothing behind


async def test_cache_survives_a_new_engine(tts: TtsEngine) -> None:
    text = "Goodbye."
    audio = await tts.render(text)
    fresh = await TtsEngine.load(tts.settings)
    try:
        assert fresh.is_cached(text)
        assert await fresh.render(text) == audio
        assert fresh.sentences_synthesized == 0
    finally:
        fresh.shutdown()


async def test_prerender_renders_each_static_prompt_once(tts: TtsEngine) -> None:
    prompts = ["Hello.", "Is this a good time?", "Hello.", "  Is this a good   time? "]
    assert await tts.prerender(prompts) == 2
    synthesized = tts.sentences_synthesized
    assert await tts.prerender(prompts) == 0
    for prompt in prompts:
        assert await tts.render(prompt)
    assert tts.sentences_synthesized == synthesized


async def test_stream_yields_the_first_sentence_before_the_rest_is_made(
    tts: TtsEngine,
) -> None:
    chunks = []
    synthesized_when_yielded = []
    async for chunk in tts.stream(THREE_SENTENCES):
        chunks.append(chunk)
        synthesized_when_yielded.append(tts.sentences_synthesized)
    assert synthesized_when_yielded == [1, 2, 3]
    assert all(duration_s(c) > 0.5 for c in chunks)
    # Streamed text may hold personal data: it is not written to the cache.
    assert not tts.is_cached(THREE_SENTENCES)


async def test_stream_of_a_cached_prompt_is_one_chunk(tts: TtsEngine) -> None:
    audio = await tts.render(THREE_SENTENCES)
    synthesized = tts.sentences_synthesized
    chunks = [c async for c in tts.stream(THREE_SENTENCES)]
    assert chunks == [audio]
    assert tts.sentences_synthesized == synthesized


async def test_synthesis_options_change_the_cache_key(tmp_path: Path) -> None:
    normal = await TtsEngine.load(TtsSettings(cache_dir=tmp_path))
    slow = await TtsEngine.load(TtsSettings(cache_dir=tmp_path, length_scale=1.6))
    try:
        text = "Please hold the line."
        assert normal.cache_path(text) != slow.cache_path(text)
        fast_audio, slow_audio = await normal.render(text), await slow.render(text)
        assert duration_s(slow_audio) > duration_s(fast_audio) * 1.2
    finally:
        normal.shutdown()
        slow.shutdown()


@pytest.mark.parametrize("text", ["", "   \n", "...", "-"])
async def test_unspeakable_text_is_an_error(tts: TtsEngine, text: str) -> None:
    with pytest.raises(TtsError):
        await tts.render(text)
    with pytest.raises(TtsError):
        [c async for c in tts.stream(text)]
    assert list(tts.cache_dir.iterdir()) == []


async def test_a_missing_voice_is_a_clear_error(tmp_path: Path) -> None:
    settings = TtsSettings(model_path=tmp_path / "nope.onnx", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        await TtsEngine.load(settings)


async def test_stream_reads_cached_sentences_and_synthesises_only_the_rest(
    tts: TtsEngine,
) -> None:
    goodbye = await tts.render("Thank you, goodbye.")
    synthesized = tts.sentences_synthesized
    text = "Your order A-77 ships on Friday. Thank you, goodbye."
    chunks = [c async for c in tts.stream(text)]
    assert tts.sentences_synthesized == synthesized + 1  # only the sentence with the order
    assert len(chunks) == 2 and chunks[1] == goodbye
    assert not tts.is_cached(text) and not tts.is_cached("Your order A-77 ships on Friday.")


async def test_synthesis_ahead_is_followed_as_it_is_made(tts: TtsEngine) -> None:
    ahead = AheadSynthesis(tts, THREE_SENTENCES)
    followed = [c async for c in ahead.follow()]
    # One chunk per sentence, as stream() gives them (Piper's noise makes each run differ).
    assert len(followed) == 3 and ahead.started
    assert all(duration_s(c) > 0.5 for c in followed)
    assert tts.sentences_synthesized == 3


async def test_a_failed_synthesis_ahead_surfaces_to_whoever_follows_it(tts: TtsEngine) -> None:
    ahead = AheadSynthesis(tts, "   ")
    with pytest.raises(TtsError):
        [c async for c in ahead.follow()]
    assert not ahead.started  # a session synthesises that reply afresh instead


async def test_background_lane_runs_at_a_lower_priority(tts: TtsEngine) -> None:
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    loop = asyncio.get_running_loop()
    urgent = await loop.run_in_executor(tts._executor, nice)
    background = await loop.run_in_executor(tts._background, nice)
    assert background >= BACKGROUND_NICE > urgent
