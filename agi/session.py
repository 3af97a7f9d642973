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
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agi import faults, metrics
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
    PauseLead,
    Say,
    Script,
    SetVariable,
    Silence,
    Transfer,
    Unrecognized,
    Utterance,
)
from dialog.actions import Action
from dialog.grading import CallFacts, grade_call
from dialog.templates import is_static, render
from emotion.agitation import AgitationReading, AgitationTracker, LexicalCues
from emotion.features import ProsodyFeatures, WordTiming, extract_features
from store.turns import TurnRecord
from voice.ahead import AheadSynthesis
from voice.asr import AsrFinal, AsrPartial, AsrSession, AsrStarted
from voice.bargein import BargeIn
from voice.silero import SileroFrames
from voice.tts import split_first_clause

log = logging.getLogger(__name__)

# The loop wakes at least this often to run wall-clock timers (endpointing, no-input).
TICK_S = 0.05
COMPLAINT_INTENTS = frozenset({"complaint"})
STOP_INTENTS = frozenset({"opt_out"})
REPEAT_INTENTS = frozenset({"repeat"})
# How long a failed call's apology or goodbye may take to play before the call moves on.
FALLBACK_SPEECH_TIMEOUT_S = 15.0
# The session's own dispositions beyond the script's: a bot failure (retried later) and a
# customer who hung up during the opening identification (retried too: never really reached).
ERROR_DISPOSITION = "error"
EARLY_HANGUP_DISPOSITION = "early-hangup"


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
    # Where the PBX records the call (MIXMONITOR_FILENAME), when the campaign records.
    recording_path: str | None = None


@dataclass
class CallOutcome:
    # completed, transferred, abandoned, machine, failed, error, early-hangup
    disposition: str = "completed"
    outcome: str | None = None
    success: bool = False
    transfer: Transfer | None = None
    last_intent: str | None = None
    agitation: float = 0.0
    hangup_side: str = "bot"
    greeting_latency_ms: float | None = None
    turns: int = 0
    opted_out: bool = False
    # Where the call failed (a label of outdial_call_failures_total), None if it did not.
    failure_stage: str | None = None
    agitation_peak: float = 0.0
    # The lead's grade from the script's `grading:` rules, and what the call captured
    # (a promised date, an amount) for the follow-up message.
    grade: str | None = None
    grade_reason: str | None = None
    captured: dict[str, str] = field(default_factory=dict)


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


class MediaProtocolError(RuntimeError):
    """The PBX sent this call's media something that is not AudioSocket."""


class SpeechFailed(RuntimeError):
    """A prompt's audio could not be made (the synthesiser failed)."""


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
    # A dispute in a collections script: stop calling the lead in this campaign, tell the CRM.
    pause_lead: Callable[[CallContext, str], None]


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
        self._unusable: ValueError | None = None
        try:
            self.engine = DialogEngine(
                runtime.script,
                context.variables,
                None if variant == BASE_VARIANT else variant,
                word_filter=services.word_filter,
            )
        except ValueError as exc:  # the lead lacks a variable the script requires
            self._unusable = exc
        self._asr: AsrSession | None = None  # opened in run(), off the event loop
        self._barge: BargeIn | None = None  # made in run(): the first loads Silero's model
        self.tracker = AgitationTracker(services.settings.emotion)
        self.outcome = CallOutcome()
        self._seq = 0
        self._speech: deque[_Speech] = deque()
        self._current: _Speech | None = None
        self._timers = _Timers()
        self._pending_reply: _PendingReply | None = None
        self._deferred: deque[tuple[AsrFinal, bytes]] = deque()
        self._ahead: dict[str, AheadSynthesis] = {}  # reply text -> its audio
        self._barged_in = False
        self._finishing: Transfer | End | None = None
        self._connected_at = time.monotonic()
        self._asr_now = self._connected_at
        self._campaign_label = context.campaign or "none"
        self._stage = "setup"
        self._failed_stage: str | None = None
        self._speech_failure: BaseException | None = None
        self._customer_gone = False
        self._customer_heard = False  # a customer turn (speech or DTMF) was logged
        self._greeting_done = False  # the opening identification was played through
        self._variant_label = variant or BASE_VARIANT
        self._heard_intents: set[str] = set()
        self._heard_entities: set[str] = set()

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        """The call from greeting to hang-up; a failure anywhere ends in the script's fallback
        (`_recover`), never in silence."""
        metrics.ACTIVE_CALLS.labels(self._campaign_label).inc()
        metrics.PACK_CALLS.labels(self.runtime.pack.name, self.runtime.name).inc()
        try:
            try:
                await self._converse()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._recover(exc)
        finally:
            metrics.ACTIVE_CALLS.labels(self._campaign_label).dec()
            await self._stop_speech()
            if self._asr is not None:
                await self._asr.close()
            await self.media.close()
        self._grade(time.monotonic() - self._connected_at)
        return self.outcome

    async def _converse(self) -> None:
        with self._in_stage("setup"):
            if self._unusable is not None:
                raise self._unusable
            # A new recognizer takes ~80 ms to build when the pool is empty: not on the loop.
            self._asr = await asyncio.to_thread(self.runtime.pack.asr.session)
            vad = await asyncio.to_thread(SileroFrames)
            self._barge = BargeIn(self.runtime.pack.asr.settings.vad.barge_in, vad)
        with self._in_stage("greeting"):
            await self._perform(self.engine.start())
        while not self.media.closed.is_set() or not self.media.events.empty():
            if self._speech_failure is not None:
                with self._in_stage("speaking"):
                    raise SpeechFailed("a prompt could not be synthesised") from (
                        self._speech_failure
                    )
            if self._finishing is not None and self._speech_idle():
                break
            event = await self._next_media_event()
            if event is not None:
                await self._on_media(event)
                if isinstance(event, HangupIn):
                    break
            with self._in_stage("hearing"):
                await self._on_clock(time.monotonic())

    @property
    def asr(self) -> AsrSession:
        """The call's recognizer session (open from the start of `run`)."""
        if self._asr is None:
            raise RuntimeError("the ASR session is not open yet")
        return self._asr

    @contextlib.contextmanager
    def _in_stage(self, stage: str) -> Iterator[None]:
        """Name what the call is doing; a failure inside is counted under that name."""
        outer, self._stage = self._stage, stage
        try:
            yield
        except Exception:
            if self._failed_stage is None:
                self._failed_stage = stage
            raise
        finally:
            self._stage = outer

    def _grade(self, duration_s: float) -> None:
        """The script's grading rules on what this call heard (dialog/grading.py)."""
        outcome = self.outcome
        facts = CallFacts(
            outcome=outcome.outcome,
            disposition=outcome.disposition,
            success=outcome.success,
            intents=frozenset(self._heard_intents),
            entities=frozenset(self._heard_entities),
            agitation_peak=outcome.agitation_peak,
            duration_s=duration_s,
        )
        result = grade_call(self.runtime.script.grading, facts)
        if result is not None:
            outcome.grade, outcome.grade_reason = result.grade, result.reason
            metrics.GRADES.labels(self.runtime.name, self._variant_label, result.grade).inc()

    async def _next_media_event(self) -> AudioIn | DtmfIn | HangupIn | None:
        try:
            return await asyncio.wait_for(self.media.events.get(), timeout=TICK_S)
        except TimeoutError:
            return None

    async def _on_media(self, event: AudioIn | DtmfIn | HangupIn) -> None:
        match event:
            case AudioIn(pcm=pcm, at=at):
                with self._in_stage("hearing"):
                    await self._on_audio(pcm, at)
            case DtmfIn(digit=digit):
                self._customer_heard = True
                self._log_turn("customer", dtmf=digit, node=self.engine.node)
                with self._in_stage("deciding"):
                    await self._perform(self.engine.handle(Dtmf(digit)))
            case HangupIn(protocol_error=True, reason=reason):
                with self._in_stage("media"):
                    raise MediaProtocolError(f"the PBX broke the AudioSocket protocol: {reason}")
            case HangupIn():
                self._customer_gone = True
                if self._finishing is None:
                    await self._customer_hung_up()

    async def _customer_hung_up(self) -> None:
        early = not self._greeting_done and not self._customer_heard
        self.outcome.hangup_side = "customer"
        final = await self.asr.flush(max(self._asr_now, time.monotonic()))
        if final is not None:
            self._log_customer(final, None, None)
        self._finish_from(self.engine.handle(Hangup()))
        if early:  # gone before hearing who called: not reached, so not done
            self.outcome.disposition = EARLY_HANGUP_DISPOSITION

    async def _on_clock(self, now: float) -> None:
        self._advance_speech(now)
        playing = self._current
        if playing is not None and playing.playback.first_frame_at is not None:
            with self._in_stage("speaking"):
                faults.hit(faults.PROMPT, node=playing.say.node, campaign=self.context.campaign)
        self._asr_now = max(self._asr_now, now)
        while self._deferred and not self._deferring():
            await self._understand(self._deferred.popleft(), ready_at=now)
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
        # Judged on this very frame, before the recogniser: the bot stops within one VAD window.
        if self._barge is not None and self._barge.on_frame(pcm, self.media.last_played):
            self._barge_in()
        # Frames wait in the queue while the clock ticks on: never hand the ASR an older time.
        self._asr_now = max(self._asr_now, at)
        event = await self.asr.feed(pcm, self._asr_now)
        match event:
            case AsrStarted() | AsrPartial():
                self._timers.listen_since = None
            case AsrFinal():
                await self._on_final(event)

    def _deferring(self) -> bool:
        """A prompt that may not be interrupted (a legal notice) is playing."""
        return self._current is not None and not self._current.say.interruptible

    def _barge_in(self) -> None:
        """The caller talks over the bot: stop sending now and drop what was queued."""
        speech = self._current
        if speech is None or not speech.say.interruptible:
            return
        self._barged_in = True
        self.media.stop_playback()
        self._drop_queued_speech()
        if self._timers.listen is not None:  # a cough may never become an utterance
            self._timers.listen_since = time.monotonic()
        log.debug("call %s: barge-in at node %s", self.context.call_id, speech.say.node)

    async def _on_final(self, final: AsrFinal) -> None:
        metrics.WORD_TIMES_CLAMPED.inc(final.clamped_words)
        if self._deferring():
            # Heard during a legal notice: answered once the notice has been played through.
            self._deferred.append(final)
            return
        with self._in_stage("understanding"):
            await self._understand(final)

    async def _understand(self, final: AsrFinal, ready_at: float | None = None) -> None:
        self._customer_heard = True
        text = self._heard_text(final)
        if not text:
            await self._unrecognized(final)
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
        features = self._voice_features(final)
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
        if nlu.intent:
            self._heard_intents.add(nlu.intent)
        self._heard_entities.update(e.label for e in nlu.entities)
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

    async def _unrecognized(self, final: AsrFinal) -> None:
        """Speech nothing could be made of: a customer turn all the same, which still counts
        for agitation (shouting is often exactly what a closed-question grammar fails to
        recognise) and, heard while the bot listens, takes the node's no-match path."""
        reading = await self._agitation(self._voice_features(final), None)
        self._log_customer(final, None, reading)
        actions = self.engine.handle(EmotionScore(reading.score)) if reading else []
        if not actions and self._speech_idle():
            speech_ms = round((final.speech_end - final.speech_start) * 1000 + 20)
            actions = self.engine.handle(Unrecognized(speech_ms, final.raw_confidence))
        await self._perform(actions)  # a calming prompt, a hand-over or the no-match prompt

    def _heard_text(self, final: AsrFinal) -> str:
        """The utterance in the script's language: grammar answers go through phrase_map."""
        heard = final.phrase if final.grammar_mode else final.text
        if not heard:
            return ""
        phrase_map = self.services.settings.session.phrase_map
        return phrase_map.get(self.runtime.script.language, {}).get(heard, heard)

    def _voice_features(self, final: AsrFinal) -> asyncio.Future[ProsodyFeatures] | None:
        """Pitch, energy and rate of the utterance, started in the CPU executor (None when
        emotion is off or the utterance is too short to measure). The audio is the ASR's own,
        so the word times are offsets into it."""
        if not self.services.settings.emotion.enabled or len(final.audio) < 3200:
            return None
        pcm = np.frombuffer(final.audio, dtype=np.int16)
        words = [WordTiming(w.start_s, w.end_s) for w in final.words if w.end_s > w.start_s]
        where = (self.engine.node, self.context.campaign)
        return asyncio.ensure_future(self.services.run_cpu(_prosody, pcm, words or None, where))

    async def _agitation(
        self, pending: asyncio.Future[ProsodyFeatures] | None, intent: str | None
    ) -> AgitationReading | None:
        """The agitation reading, or None: an optional signal never ends a call, so a
        failure here is logged and counted and the call goes on without it."""
        if pending is None:
            return None
        try:
            features = await pending
            cues = LexicalCues(
                complaint=intent in COMPLAINT_INTENTS,
                stop=intent in STOP_INTENTS,
                repeat=intent in REPEAT_INTENTS,
            )
            reading = self.tracker.update(features, cues)
        except Exception as exc:
            metrics.SIGNAL_FAILURES.labels("emotion").inc()
            log.warning("call %s: no emotion reading (%s: %s)", self.context.call_id,
                        type(exc).__name__, exc)  # fmt: skip
            return None
        self.outcome.agitation = reading.score
        self.outcome.agitation_peak = max(self.outcome.agitation_peak, reading.score)
        metrics.AGITATION.observe(reading.score)
        return reading

    # --- failing well -----------------------------------------------------------------------

    async def _recover(self, exc: Exception) -> None:
        """The call failed: an apology while the line still carries audio, then the script's
        fallback (a hand-over to people, else a goodbye). Settled `error`: the lead is
        called again later."""
        stage = self._failed_stage or "session"
        log.error("call %s failed while %s: %s", self.context.call_id, stage, exc, exc_info=exc)
        metrics.CALL_FAILURES.labels(stage).inc()
        outcome = self.outcome
        outcome.disposition, outcome.failure_stage = ERROR_DISPOSITION, stage
        outcome.outcome, outcome.success, outcome.transfer = None, False, None
        if self._current is not None:  # the prompt it failed in, if it had reached the wire
            self._note_first_frame(self._current)
        self.media.stop_playback()
        await self._stop_speech()
        script = self.runtime.script
        await self._say_fallback(script.error_apology())
        transfer = fallback_transfer(script, stage) if self._line_open() else None
        if transfer is not None:
            outcome.transfer = transfer
            metrics.TRANSFERS.labels(self._campaign_label, transfer.reason).inc()
        else:
            await self._say_fallback(script.error_goodbye())

    def _line_open(self) -> bool:
        """The customer is still there and our audio still reaches them."""
        return not self._customer_gone and not self.media.closed.is_set()

    async def _say_fallback(self, template: str) -> None:
        """Speak one fallback text and wait until it has been played (bounded); a failure
        here is logged and the call moves on."""
        if not self._line_open():
            return
        values = defaultdict(str, self.context.variables)
        if self._unusable is None:
            values.update(self.engine.variables)
        text = render(template, values)
        try:
            async with asyncio.timeout(FALLBACK_SPEECH_TIMEOUT_S):
                if is_static(template):  # pre-rendered when the script loaded
                    audio = await self._tts.render(text)
                else:  # lead data: streamed, never cached on disk
                    audio = b"".join([pcm async for pcm in self._tts.stream(text)])
                playback = Playback(interruptible=False)
                playback.feed(audio)
                playback.finish()
                self.media.start_playback(playback)
                played = await playback.done
        except Exception as exc:  # noqa: BLE001 - nothing more can be said on this call
            log.warning("call %s: fallback speech failed: %s", self.context.call_id, exc)
            return
        if played:
            self._log_turn("bot", text=text, node="on_error")

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
                case SetVariable(name=name, value=value):
                    self.outcome.captured[name] = value
                case OptOut():
                    self.outcome.opted_out = True
                    self.recorder.opt_out(self.context)
                    metrics.COMPLIANCE_HITS.labels("opt_out", "customer").inc()
                case ComplianceHit():
                    self.recorder.record_compliance(self.context, action)
                    metrics.COMPLIANCE_HITS.labels(action.category, action.source).inc()
                case PauseLead():
                    self.recorder.pause_lead(self.context, action.reason)

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
        speech.producer.add_done_callback(self._produced)
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

    def _produced(self, producer: asyncio.Task[None]) -> None:
        """A prompt whose audio could not be made fails the call (the loop raises it): the
        customer must not be left listening to a prompt that never comes."""
        if producer.cancelled() or self._speech_failure is not None:
            return
        self._speech_failure = producer.exception()

    async def _produce(self, speech: _Speech) -> None:
        started = time.monotonic()
        if self._cacheable(speech.say):
            speech.playback.feed(await self._tts.render(speech.say.text))
            faults.hit(faults.SYNTHESIS, node=speech.say.node, campaign=self.context.campaign)
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

    async def _play(self, speech: _Speech, chunks: AsyncIterator[bytes], started: float) -> None:
        """Feed the prompt's audio to its playback as it comes; time the first chunk."""
        first = True
        async for pcm in chunks:
            speech.playback.feed(pcm)
            if first:
                metrics.TTS_SECONDS.observe(time.monotonic() - started)
                first = False
                faults.hit(faults.SYNTHESIS, node=speech.say.node, campaign=self.context.campaign)
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
            if current.say.node == "identification" and current.playback.done.result():
                self._greeting_done = True  # played through, not cut off by a hang-up
            if self._timers.listen is not None and not self._speech:
                self._timers.listen_since = now
        if self._speech:
            self._current = speech = self._speech.popleft()
            self.media.start_playback(speech.playback)
            if self._barge is not None:
                floor = speech.say.barge_in_min_ms if speech.say.interruptible else None
                self._barge.prompt(floor)

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
        duration_ms = round((final.speech_end - final.speech_start) * 1000 + 20)
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
            # Nothing kept: what the recogniser thought of what it heard.
            asr_confidence=final.confidence if final.words else final.raw_confidence,
            intent=nlu.intent if nlu else None,
            intent_confidence=nlu.confidence if nlu else None,
            entities={"items": [e.to_dict() for e in nlu.entities]} if nlu else {},
            emotion=dict(reading.z) if reading else {},
            agitation=reading.score if reading else None,
            barge_in=barge_in,
            timings={k: round(v - self._connected_at, 4) for k, v in timings.items()}
            | {"speech_ms": duration_ms},
        )


def _prosody(
    pcm: np.ndarray, words: list[WordTiming] | None, where: tuple[str | None, str | None]
) -> ProsodyFeatures:
    """The utterance's prosody (CPU executor); a test may make it fail here (agi/faults.py)."""
    node, campaign = where
    faults.hit(faults.EMOTION, node=node, campaign=campaign)
    return extract_features(pcm, 8000, words)


def fallback_transfer(script: Script, stage: str) -> Transfer | None:
    """The hand-over to people a failed call gets, when its script names one (`on_error`)."""
    on_error = script.on_error
    if on_error.target is None:
        return None
    summary = f"script {script.name}; reason: {on_error.reason}; failed while {stage}"
    return Transfer(on_error.target, on_error.reason, summary)


def failed_outcome(script: Script | None, stage: str, **facts: Any) -> CallOutcome:
    """A call that failed before a session could speak: counted, settled `error` (retried),
    and handed to people when the script has someone to take it."""
    metrics.CALL_FAILURES.labels(stage).inc()
    transfer = fallback_transfer(script, stage) if script is not None else None
    return CallOutcome(
        disposition=ERROR_DISPOSITION, failure_stage=stage, transfer=transfer, **facts
    )
