"""The live call: greet, listen, understand, check, decide, speak, and log every turn.

One `CallSession` per answered call, driven by one task over one AudioSocket connection.
Blocking engines (Vosk, Piper, spaCy, librosa) run in executors; the dialog engine is pure.
The session is a small loop of steps: media event -> ASR event -> (NLU, emotion) -> dialog
actions -> speech. Every timer runs on the wall clock because the far end may send nothing
while the customer is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agi import metrics
from agi.audiosocket import AudioIn, DtmfIn, HangupIn, MediaConnection, Playback
from agi.runtime import CallServices, ScriptRuntime
from compliance.redact import redact
from dialog import (
    BASE_VARIANT,
    ComplianceHit,
    DialogEngine,
    Dtmf,
    EmotionScore,
    End,
    Hangup,
    Listen,
    OptOut,
    Say,
    Silence,
    Transfer,
    Utterance,
)
from dialog.actions import Action
from emotion.agitation import AgitationReading, AgitationTracker, LexicalCues
from emotion.features import ProsodyFeatures, WordTiming, extract_features
from store.turns import TurnRecord
from voice.ahead import AheadSynthesis
from voice.asr import AsrFinal, AsrPartial, AsrSession, AsrStarted
from voice.tts import split_first_clause

log = logging.getLogger(__name__)

# The loop wakes at least this often to run wall-clock timers (endpointing, no-input).
TICK_S = 0.05
COMPLAINT_INTENTS = frozenset({"complaint"})
STOP_INTENTS = frozenset({"opt_out"})
REPEAT_INTENTS = frozenset({"repeat"})


@dataclass(frozen=True)
class CallContext:
    """Who is being called, from the dialer's records (numbers never reach the logs)."""

    call_id: str
    campaign: str | None
    campaign_id: int | None
    script_name: str | None
    lead_id: int | None
    phone_e164: str | None
    timezone: str | None
    variables: dict[str, Any]
    amd_status: str | None = None


@dataclass
class CallOutcome:
    disposition: str = "completed"  # completed, transferred, abandoned, machine, failed
    outcome: str | None = None
    success: bool = False
    transfer: Transfer | None = None
    last_intent: str | None = None
    agitation: float = 0.0
    hangup_side: str = "bot"
    greeting_latency_ms: float | None = None
    turns: int = 0
    opted_out: bool = False


@dataclass
class _PendingReply:
    """Timing of the customer turn whose reply has not been heard yet."""

    speech_end: float
    endpoint_at: float


@dataclass
class _Speech:
    say: Say
    playback: Playback
    producer: asyncio.Task[None] | None = None
    latency_measured: bool = False
    ahead: AheadSynthesis | None = None  # its audio, synthesised ahead


@dataclass
class _Timers:
    listen: Listen | None = None
    listen_since: float | None = None  # when the last prompt ended (no-input clock)


@dataclass
class CallRecorder:
    """Writes the call's side effects: turns, compliance events, DNC entries."""

    write_turn: Callable[[TurnRecord], None]
    record_compliance: Callable[[CallContext, ComplianceHit | dict[str, Any]], None]
    opt_out: Callable[[CallContext], None]


class CallSession:
    def __init__(
        self,
        media: MediaConnection,
        services: CallServices,
        runtime: ScriptRuntime,
        context: CallContext,
        recorder: CallRecorder,
        *,
        variant: str | None = None,
        half_duplex: bool = False,
    ) -> None:
        self.media = media
        self.services = services
        self.runtime = runtime
        # The voice of the script's language pack (its recognizer is opened in run()).
        self._tts = runtime.pack.tts
        self.context = context
        self.recorder = recorder
        self.half_duplex = half_duplex
        self.engine = DialogEngine(
            runtime.script,
            context.variables,
            None if variant == BASE_VARIANT else variant,
            word_filter=services.word_filter,
        )
        self.asr: AsrSession  # opened in run(), off the event loop
        self.tracker = AgitationTracker(services.settings.emotion)
        self.outcome = CallOutcome()
        self._seq = 0
        self._speech: deque[_Speech] = deque()
        self._current: _Speech | None = None
        self._timers = _Timers()
        self._pending_reply: _PendingReply | None = None
        self._utterance_audio: list[bytes] = []
        self._deferred: deque[tuple[AsrFinal, bytes]] = deque()
        self._ahead: dict[str, AheadSynthesis] = {}  # reply text -> its audio
        self._barged_in = False
        self._finishing: Transfer | End | None = None
        self._connected_at = time.monotonic()
        self._asr_now = self._connected_at
        self._campaign_label = context.campaign or "none"

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        # A new recognizer takes ~80 ms to build when the pool is empty: not on the loop.
        self.asr = await asyncio.to_thread(self.runtime.pack.asr.session)
        metrics.ACTIVE_CALLS.labels(self._campaign_label).inc()
        metrics.PACK_CALLS.labels(self.runtime.pack.name, self.runtime.name).inc()
        try:
            await self._perform(self.engine.start())
            while not self.media.closed.is_set() or not self.media.events.empty():
                if self._finishing is not None and self._speech_idle():
                    break
                event = await self._next_media_event()
                if event is not None:
                    await self._on_media(event)
                    if isinstance(event, HangupIn):
                        break
                await self._on_clock(time.monotonic())
        finally:
            metrics.ACTIVE_CALLS.labels(self._campaign_label).dec()
            await self._stop_speech()
            await self.asr.close()
            await self.media.close()
        return self.outcome

    async def _next_media_event(self) -> AudioIn | DtmfIn | HangupIn | None:
        try:
            return await asyncio.wait_for(self.media.events.get(), timeout=TICK_S)
        except TimeoutError:
            return None

    async def _on_media(self, event: AudioIn | DtmfIn | HangupIn) -> None:
        match event:
            case AudioIn(pcm=pcm, at=at):
                await self._on_audio(pcm, at)
            case DtmfIn(digit=digit):
                self._log_turn("customer", dtmf=digit, node=self.engine.node)
                await self._perform(self.engine.handle(Dtmf(digit)))
            case HangupIn():
                if self._finishing is None:
                    self.outcome.hangup_side = "customer"
                    final = await self.asr.flush(max(self._asr_now, time.monotonic()))
                    if final is not None:
                        self._log_customer(final, None, None)
                    self._finish_from(self.engine.handle(Hangup()))

    async def _on_clock(self, now: float) -> None:
        self._advance_speech(now)
        self._asr_now = max(self._asr_now, now)
        if self.asr.in_speech:
            self._maybe_barge_in(self._asr_now)
        while self._deferred and not self._deferring():
            final, audio = self._deferred.popleft()
            await self._understand(final, audio, ready_at=now)
        final = await self.asr.tick(self._asr_now)
        if final is not None:
            await self._on_final(final)
        timers = self._timers
        if (
            timers.listen is not None
            and timers.listen_since is not None
            and self._speech_idle()
            and not self.asr.in_speech
            and now - timers.listen_since >= timers.listen.timeout_ms / 1000
        ):
            waited = int((now - timers.listen_since) * 1000)
            timers.listen_since = None
            await self._perform(self.engine.handle(Silence(waited)))

    # --- hearing ----------------------------------------------------------------------------

    async def _on_audio(self, pcm: bytes, at: float) -> None:
        if self.half_duplex and self._current is not None:
            return  # EAGI: the caller's audio during a prompt is the prompt's echo path
        # Frames wait in the queue while the clock ticks on: never hand the ASR an older time.
        self._asr_now = max(self._asr_now, at)
        event = await self.asr.feed(pcm, self._asr_now)
        if self.asr.in_speech or isinstance(event, AsrFinal):
            self._utterance_audio.append(pcm)
        match event:
            case AsrStarted() | AsrPartial():
                self._timers.listen_since = None
                self._maybe_barge_in(at)
            case AsrFinal():
                await self._on_final(event)

    def _deferring(self) -> bool:
        """A prompt that may not be interrupted (a legal notice) is playing."""
        return self._current is not None and not self._current.say.interruptible

    def _maybe_barge_in(self, now: float) -> None:
        speech = self._current
        if speech is None or not speech.say.interruptible:
            return
        if self.asr.speech_duration(now) * 1000 < speech.say.barge_in_min_ms:
            return
        self._barge_in()

    def _barge_in(self) -> None:
        """The caller talks over the bot: stop sending now and drop what was queued."""
        speech = self._current
        if speech is None or not speech.say.interruptible:
            return
        self._barged_in = True
        self.media.stop_playback()
        self._drop_queued_speech()
        log.debug("call %s: barge-in at node %s", self.context.call_id, speech.say.node)

    async def _on_final(self, final: AsrFinal) -> None:
        audio = b"".join(self._utterance_audio)
        self._utterance_audio.clear()
        if self._deferring():
            # Heard during a legal notice: answered once the notice has been played through.
            self._deferred.append((final, audio))
            return
        await self._understand(final, audio)

    async def _understand(
        self, final: AsrFinal, audio: bytes, ready_at: float | None = None
    ) -> None:
        text = self._heard_text(final)
        if not text:
            await self._unheard(final, audio)
            return
        # A whole answer spoken over a prompt is a barge-in even when it was too short to
        # trigger one while it was being spoken ("yes" is about 300 ms).
        self._barge_in()
        # Processing is timed from when the answer could be acted on: its endpoint, or the end
        # of the legal notice it was deferred behind.
        self._pending_reply = _PendingReply(final.speech_end, ready_at or final.endpoint_at)
        metrics.ASR_RTF.observe(
            max(0.0, final.final_at - final.endpoint_at)
            / max(0.02, final.speech_end - final.speech_start)
        )
        # Voice features and the intent are independent: compute them side by side.
        features = self._voice_features(audio, final)
        nlu = await self.services.classify(self.runtime, text)
        reading = await self._agitation(features, nlu.intent)
        customer_hits = self.services.word_filter.check(text, "customer")
        for hit in customer_hits.hits:
            self.recorder.record_compliance(
                self.context,
                {"direction": "customer", "category": hit.category, "action": hit.action},
            )
            metrics.COMPLIANCE_HITS.labels(hit.category, "customer").inc()
        self.outcome.last_intent = nlu.intent or self.outcome.last_intent
        self._log_customer(final, nlu, reading)
        emotion_actions = (
            self.engine.handle(EmotionScore(reading.score, text, nlu.intent)) if reading else []
        )
        if any(isinstance(a, (Transfer, End)) for a in emotion_actions):
            await self._perform(emotion_actions)
            return
        utterance = Utterance(
            text=text,
            intent=nlu.intent,
            intent_confidence=nlu.confidence,
            entities=nlu.entities,
            asr_confidence=final.confidence,
        )
        await self._perform(emotion_actions + self.engine.handle(utterance))

    async def _unheard(self, final: AsrFinal, audio: bytes) -> None:
        """Speech the ASR could not match still counts for agitation: shouting is often
        exactly what a closed-question grammar fails to recognise."""
        reading = await self._agitation(self._voice_features(audio, final), None)
        actions = self.engine.handle(EmotionScore(reading.score)) if reading else []
        if actions:  # a calming prompt or a hand-over
            self._log_customer(final, None, reading)
            await self._perform(actions)
            return
        self._rearm_no_input()

    def _heard_text(self, final: AsrFinal) -> str:
        """The utterance in the script's language: grammar answers go through phrase_map."""
        heard = final.phrase if final.grammar_mode else final.text
        if not heard:
            return ""
        phrase_map = self.services.settings.session.phrase_map
        return phrase_map.get(self.runtime.script.language, {}).get(heard, heard)

    def _voice_features(
        self, audio: bytes, final: AsrFinal
    ) -> asyncio.Future[ProsodyFeatures] | None:
        """Pitch, energy and rate of the utterance, started in the CPU executor (None when
        emotion is off or the utterance is too short to measure)."""
        if not self.services.settings.emotion.enabled or len(audio) < 3200:
            return None
        pcm = np.frombuffer(audio, dtype=np.int16)
        words = [WordTiming(w.start_s, w.end_s) for w in final.words] or None
        return asyncio.ensure_future(self.services.run_cpu(extract_features, pcm, 8000, words))

    async def _agitation(
        self, pending: asyncio.Future[ProsodyFeatures] | None, intent: str | None
    ) -> AgitationReading | None:
        if pending is None:
            return None
        features = await pending
        cues = LexicalCues(
            complaint=intent in COMPLAINT_INTENTS,
            stop=intent in STOP_INTENTS,
            repeat=intent in REPEAT_INTENTS,
        )
        reading = self.tracker.update(features, cues)
        self.outcome.agitation = reading.score
        metrics.AGITATION.observe(reading.score)
        return reading

    def _rearm_no_input(self) -> None:
        if self._timers.listen is not None and self._speech_idle():
            self._timers.listen_since = time.monotonic()

    # --- deciding ---------------------------------------------------------------------------

    async def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Say():
                    await self._queue_speech(action)
                case Listen():
                    self._listen(action)
                case Transfer() | End():
                    self._finish_from([action])
                case OptOut():
                    self.outcome.opted_out = True
                    self.recorder.opt_out(self.context)
                    metrics.COMPLIANCE_HITS.labels("opt_out", "customer").inc()
                case ComplianceHit():
                    self.recorder.record_compliance(self.context, action)
                    metrics.COMPLIANCE_HITS.labels(action.category, action.source).inc()

    def _listen(self, listen: Listen) -> None:
        self._timers.listen = listen
        self._timers.listen_since = None if self._speech else time.monotonic()
        self.asr.set_grammar(self.services.grammar_for(self.runtime, listen))
        if self.services.settings.session.synthesize_ahead:
            self._speculate()

    def _speculate(self) -> None:
        """Replies to the answers this question expects, synthesised ahead (voice/ahead.py);
        the unused ones are dropped at the next question."""
        wanted = [s.text for s in self.engine.likely_replies() if not self._cacheable(s)]
        for text in [t for t in self._ahead if t not in wanted]:
            self._drop_ahead(self._ahead.pop(text))
        for text in wanted:
            if text not in self._ahead:  # a re-prompt keeps what is under way
                self._ahead[text] = AheadSynthesis(self._tts, text)

    @staticmethod
    def _drop_ahead(ahead: AheadSynthesis, disposition: str = "unused") -> None:
        ahead.cancel()
        metrics.REPLIES_AHEAD.labels(disposition).inc()

    def _finish_from(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transfer):
                self._finishing = action
                self.outcome.disposition = "transferred"
                self.outcome.transfer = action
                metrics.TRANSFERS.labels(self._campaign_label, action.reason).inc()
            elif isinstance(action, End):
                self._finishing = action
                self.outcome.disposition = action.disposition
                self.outcome.outcome = action.outcome
                self.outcome.success = action.success
        self._timers.listen = None

    # --- speaking ---------------------------------------------------------------------------

    async def _queue_speech(self, say: Say) -> None:
        playback = Playback(interruptible=say.interruptible)
        # Claimed now: the question that follows this prompt replaces the replies ahead.
        speech = _Speech(say, playback, ahead=self._ahead.pop(say.text, None))
        speech.producer = asyncio.get_running_loop().create_task(self._produce(speech))
        playback.done.add_done_callback(lambda _: self._prompt_ended(playback))
        self._speech.append(speech)
        self._advance_speech(time.monotonic())

    def _cacheable(self, say: Say) -> bool:
        """Only text made from the script alone goes through the on-disk prompt cache: static
        texts, and the opening as the script's defaults render it. An opening that carries a
        lead's data ("Hi {customer_name}, ...") is streamed and never written to disk."""
        return say.static or (
            say.node == "identification" and say.text == self.runtime.default_opening
        )

    async def _produce(self, speech: _Speech) -> None:
        started = time.monotonic()
        if self._cacheable(speech.say):
            speech.playback.feed(await self._tts.render(speech.say.text))
            metrics.TTS_SECONDS.observe(time.monotonic() - started)
            speech.playback.finish()
            return
        if speech.say.node == "identification":
            # The caller hears nothing before the greeting: all of it on the urgent lane.
            await self._play(speech, self._urgently(speech.say.text), started)
            return
        ahead = speech.ahead
        if ahead is not None and ahead.started:
            metrics.REPLIES_AHEAD.labels("used").inc()
            await self._play(speech, ahead.follow(), started)
            return
        if ahead is not None:  # nothing made yet: the urgent lane below is quicker than waiting
            self._drop_ahead(ahead, "late")
        # A short first clause is synthesised on its own so the reply starts sooner; the
        # rest is synthesised at the same time, in the background lane, and follows it.
        head, tail = split_first_clause(speech.say.text)
        if not head:
            await self._play(speech, self._tts.stream(tail), started)
            return
        rest = AheadSynthesis(self._tts, tail)
        try:
            await self._play(speech, self._head_then_rest(head, rest), started)
        finally:
            rest.cancel()

    async def _urgently(self, text: str) -> AsyncIterator[bytes]:
        """The short first clause, then the rest, both synthesised on the urgent lane."""
        for part in split_first_clause(text):
            if part:
                async for pcm in self._tts.stream(part):
                    yield pcm

    async def _head_then_rest(self, head: str, rest: AheadSynthesis) -> AsyncIterator[bytes]:
        async for pcm in self._tts.stream(head):
            yield pcm
        async for pcm in rest.follow():  # a synthesis error of the rest surfaces here
            yield pcm

    @staticmethod
    async def _play(speech: _Speech, chunks: AsyncIterator[bytes], started: float) -> None:
        """Feed the prompt's audio to its playback as it comes; time the first chunk."""
        first = True
        async for pcm in chunks:
            if first:
                metrics.TTS_SECONDS.observe(time.monotonic() - started)
                first = False
            speech.playback.feed(pcm)
        speech.playback.finish()

    def _prompt_ended(self, playback: Playback) -> None:
        if playback.starved_frames:
            metrics.STARVED_FRAMES.inc(playback.starved_frames)
        # The next prompt starts on the clock tick after this one ends, not when the session
        # loop next wakes (up to a tick later): back-to-back prompts play without a gap.
        self._advance_speech(time.monotonic())

    def _advance_speech(self, now: float) -> None:
        """Start the next queued prompt when the current one has finished playing."""
        current = self._current
        if current is not None:
            self._note_first_frame(current)
            if not current.playback.done.done():
                return
            self._current = None
            if self._timers.listen is not None and not self._speech:
                self._timers.listen_since = now
        if self._speech:
            self._current = self._speech.popleft()
            self.media.start_playback(self._current.playback)

    def _note_first_frame(self, speech: _Speech) -> None:
        """The prompt is on the wire: log its turn (a prompt dropped unheard is not a turn)."""
        first = speech.playback.first_frame_at
        if first is None or speech.latency_measured:
            return
        speech.latency_measured = True
        timings = {"first_audio_out": round(first - self._connected_at, 4)}
        if self.outcome.greeting_latency_ms is None:
            latency = first - self._connected_at
            self.outcome.greeting_latency_ms = latency * 1000
            metrics.GREETING_LATENCY.labels(self._campaign_label).observe(latency)
        elif self._pending_reply is not None:
            pending, self._pending_reply = self._pending_reply, None
            reply, processing = first - pending.speech_end, first - pending.endpoint_at
            metrics.REPLY_LATENCY.labels(self._campaign_label).observe(reply)
            metrics.PROCESSING_LATENCY.labels(self._campaign_label).observe(processing)
            timings |= {
                "reply_ms": round(reply * 1000, 1),
                "processing_ms": round(processing * 1000, 1),
            }
        say = speech.say
        self._log_turn("bot", text=say.text, node=say.node, timings=timings)

    def _speech_idle(self) -> bool:
        return self._current is None and not self._speech

    def _drop_queued_speech(self) -> None:
        for speech in (*self._speech, self._current):
            if speech is None:
                continue
            for work in (speech.producer, speech.ahead):
                if work is not None:
                    work.cancel()
        self._speech.clear()
        self._current = None

    async def _stop_speech(self) -> None:
        for ahead in self._ahead.values():
            self._drop_ahead(ahead)
        self._ahead.clear()
        producers = [s.producer for s in (*self._speech, self._current) if s and s.producer]
        self._drop_queued_speech()
        for producer in producers:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer

    # --- the record -------------------------------------------------------------------------

    def _stored_text(self, text: str) -> str:
        if self.services.settings.compliance.keep_raw_transcripts:
            return text
        return redact(text).text

    def _log_turn(self, speaker: str, *, text: str = "", node: str | None, **extra: Any) -> None:
        self._seq += 1
        self.outcome.turns = self._seq
        self.recorder.write_turn(
            TurnRecord(
                call_id=self.context.call_id,
                seq=self._seq,
                speaker=speaker,  # type: ignore[arg-type]
                node=node,
                text=self._stored_text(text),
                **extra,
            )
        )

    def _log_customer(self, final: AsrFinal, nlu: Any, reading: AgitationReading | None) -> None:
        barge_in, self._barged_in = self._barged_in, False
        timings = {
            "speech_start": final.speech_start,
            "speech_end": final.speech_end,
            "endpoint": final.endpoint_at,
            "asr_final": final.final_at,
            "nlu_done": time.monotonic(),
        }
        self._log_turn(
            "customer",
            text=self._heard_text(final),
            node=self.engine.node,
            asr_confidence=final.confidence,
            intent=nlu.intent if nlu else None,
            intent_confidence=nlu.confidence if nlu else None,
            entities={"items": [e.to_dict() for e in nlu.entities]} if nlu else {},
            emotion=dict(reading.z) if reading else {},
            agitation=reading.score if reading else None,
            barge_in=barge_in,
            timings={k: round(v - self._connected_at, 4) for k, v in timings.items()},
        )
