"""The live call: the order of its stages and its lifetime, from greeting to hang-up.

One `CallSession` per answered call, driven by one task over one AudioSocket connection. The
work is done by stages (agi/call/) that know nothing of each other; the session hands each
one's events to the next: media -> hearing -> understanding -> deciding -> speaking, with
recording told what was heard and said. A failure anywhere ends in the script's fallback
(an apology, then a hand-over or a goodbye), never in silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from agi import metrics
from agi.audiosocket import AudioIn, DtmfIn, HangupIn, MediaClock, MediaConnection
from agi.call.deciding import Deciding
from agi.call.events import BargedIn, Heard, PromptEnded, PromptOnWire, SpeakingEvent
from agi.call.fallback import Fallback
from agi.call.hearing import Hearing
from agi.call.outcome import CallContext, CallOutcome, CallRecorder
from agi.call.recording import Recording
from agi.call.speaking import Speaking
from agi.call.synthesis import PromptSynthesis
from agi.call.turntaking import TurnTaking, echo_aware_barge_in
from agi.call.understanding import Understanding
from agi.runtime import CallServices, ScriptRuntime
from dialog import BASE_VARIANT, End, Listen, Say, Transfer
from dialog.actions import Action

log = logging.getLogger(__name__)

# The loop wakes at least this often to run wall-clock timers (endpointing, no-input).
TICK_S = 0.05


class MediaProtocolError(RuntimeError):
    """The PBX sent this call's media something that is not AudioSocket."""


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
        turn_taking: TurnTaking | None = None,
        clock: MediaClock | None = None,
    ) -> None:
        self.media, self.services, self.runtime, self.context = media, services, runtime, context
        self._half_duplex = half_duplex
        self._turn_taking = turn_taking or TurnTaking()
        self._connected_at = time.monotonic()
        # The media clock knows when the event loop stood still; its stalls are no silence.
        self._clock = clock
        self._stalls_seen_to = self._connected_at
        self._unusable: ValueError | None = None
        try:
            self._deciding = Deciding(
                runtime.script, context.variables, variant, services.word_filter
            )
        except ValueError as exc:  # the lead lacks a variable the script requires
            self._unusable = exc
        settings = services.settings
        self._recording = Recording(
            context,
            recorder,
            keep_raw=settings.compliance.keep_raw_transcripts,
            variant=variant or BASE_VARIANT,
            connected_at=self._connected_at,
        )
        self._understanding = Understanding(services, runtime, context.call_id)
        synthesis = PromptSynthesis(runtime.pack.tts, runtime.default_opening, context.campaign)
        where = (context.call_id, context.campaign)
        barge_in = self._turn_taking.barge_in or echo_aware_barge_in(
            runtime.pack.asr.settings.vad.barge_in
        )
        self._barge_in = barge_in
        self._speaking = Speaking(media, synthesis, barge_in, self._on_speaking, where)
        self._hearing: Hearing | None = None  # its recognizer is opened in run()
        self._finishing: Transfer | End | None = None
        self._failed_stage: str | None = None
        self._customer_gone = False

    async def run(self) -> CallOutcome:
        campaign = self.context.campaign or "none"
        metrics.ACTIVE_CALLS.labels(campaign).inc()
        metrics.PACK_CALLS.labels(self.runtime.pack.name, self.runtime.name).inc()
        try:
            try:
                await self._converse()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._recover(exc)
        finally:
            metrics.ACTIVE_CALLS.labels(campaign).dec()
            await self._speaking.stop()
            if self._hearing is not None:
                await self._hearing.close()
            await self.media.close()
        return self._recording.close(self.runtime.script, time.monotonic() - self._connected_at)

    async def _converse(self) -> None:
        with self._in_stage("setup"):
            if self._unusable is not None:
                raise self._unusable
            # Its recognizers are fetched off the loop when its first question is asked.
            asr = self.runtime.pack.asr.session()
            asr.judge_free_text_by(self._understanding.intent_confidence)
            turns = (self._turn_taking.end_of_turn, self._barge_in)
            hearing = Hearing(asr, turns, half_duplex=self._half_duplex, now=self._connected_at)
            self._hearing = hearing
        with self._in_stage("greeting"):
            await self._perform(self._deciding.start())
        while not self.media.closed.is_set() or not self.media.events.empty():
            if self._finishing is not None and self._speaking.floor().bot_silent:
                break
            try:
                wait_s = hearing.wait_s(time.monotonic(), TICK_S)
                event = await asyncio.wait_for(self.media.events.get(), timeout=wait_s)
            except TimeoutError:
                event = None
            self._forgive_stalls(hearing)
            if isinstance(event, HangupIn) and not event.protocol_error:
                await self._customer_hung_up(hearing)
                break
            if event is not None:
                await self._on_media(event, hearing)
            # Frames still queued are the caller's audio of the time that passed while the
            # session was busy (a slow decode): no silence can be judged on the clock before
            # they are heard, or one answer is cut in two.
            self._forgive_stalls(hearing)
            await self._on_clock(time.monotonic(), hearing, self.media.events.empty())

    def _forgive_stalls(self, hearing: Hearing) -> None:
        """Time the whole process stood still since the last look is no silence of the
        caller's: their frames of that time are still in the socket (read late, in a burst),
        and a pause timed across the stall would end their turn mid-answer."""
        if self._clock is None:
            return
        now = time.monotonic()
        stalled = self._clock.stalled_s(self._stalls_seen_to, now)
        self._stalls_seen_to = now
        if stalled > 0:
            metrics.STALLS_FORGIVEN.inc(stalled)
            hearing.forgive_stall(stalled)

    @contextlib.contextmanager
    def _in_stage(self, stage: str) -> Iterator[None]:
        """Name what the call is doing; a failure inside is counted under the innermost name."""
        try:
            yield
        except Exception:
            self._failed_stage = self._failed_stage or stage
            raise

    async def _on_media(self, event: AudioIn | DtmfIn | HangupIn, hearing: Hearing) -> None:
        match event:
            case AudioIn(pcm=pcm, at=at):
                with self._in_stage("hearing"):
                    if hearing.barges_in(pcm, self.media.last_played, self._speaking.floor()):
                        self._speaking.cut_off()
                    heard = await hearing.on_audio(pcm, at, self._speaking.floor())
                if heard is not None:
                    await self._understand(heard)
            case DtmfIn(digit=digit):
                self._recording.dtmf_turn(digit, self._deciding.node)
                with self._in_stage("deciding"):
                    await self._perform(self._deciding.on_dtmf(digit))
            case HangupIn(reason=reason):
                with self._in_stage("media"):
                    raise MediaProtocolError(f"the PBX broke the AudioSocket protocol: {reason}")

    async def _on_clock(self, now: float, hearing: Hearing, heard_all: bool) -> None:
        """The wall-clock timers; the silence ones only once every frame that came is heard."""
        speaking = self._speaking
        with self._in_stage("speaking"):
            speaking.on_clock(now)
        with self._in_stage("hearing"):
            while (heard := hearing.release(speaking.floor(), now)) is not None:
                await self._understand(heard)
            if not heard_all:
                return
            if (heard := await hearing.tick(now, speaking.floor())) is not None:
                await self._understand(heard)
            if (silent := hearing.no_input(now, speaking.floor())) is not None:
                await self._perform(self._deciding.on_no_input(silent))

    async def _understand(self, heard: Heard) -> None:
        with self._in_stage("understanding"):
            if self._understanding.text_of(heard.final):
                # A whole answer spoken over a prompt is a barge-in even when it was too short
                # to trigger one while it was being spoken ("yes" is about 300 ms).
                self._speaking.cut_off()
                self._recording.answer_heard(heard)
            where = (self._deciding.node, self.context.campaign)
            understood = await self._understanding.understand(heard, where)
            self._recording.customer_turn(understood, self._deciding.node)
            bot_silent = self._speaking.floor().bot_silent
            await self._perform(self._deciding.on_understood(understood, bot_silent))

    async def _customer_hung_up(self, hearing: Hearing) -> None:
        self._customer_gone = True
        if self._finishing is not None:
            return
        early = not self._recording.reached()
        final = await hearing.flush(time.monotonic())
        if final is not None:
            text = self._understanding.text_of(final)
            self._recording.unheard_turn(final, self._deciding.node, text)
        await self._perform(self._deciding.on_hangup())
        self._recording.customer_hung_up(early)

    async def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Say():
                    self._speaking.say(action)
                case Listen():
                    self._listen(action)
                case Transfer() | End():
                    self._finishing = action
                    self._recording.finishing(action)
                    if self._hearing is not None:
                        self._hearing.stop_listening()
                case _:
                    self._recording.side_effect(action)

    def _listen(self, listen: Listen) -> None:
        grammar = self.services.grammar_for(self.runtime, listen)
        assert self._hearing is not None  # a question is asked only once the call is set up
        self._hearing.listen(listen, grammar, time.monotonic(), self._speaking.floor())
        if self.services.settings.session.synthesize_ahead:
            self._speaking.expect(self._deciding.likely_replies())

    def _on_speaking(self, event: SpeakingEvent) -> None:
        match event:
            case PromptOnWire():
                self._recording.bot_turn(event)
            case PromptEnded():
                self._recording.prompt_ended(event)
                if event.last and self._hearing is not None:
                    self._hearing.bot_fell_silent(event.at)
            case BargedIn():
                self._recording.barged_in()
                if self._hearing is not None:
                    self._hearing.barged_in(time.monotonic())

    async def _recover(self, exc: Exception) -> None:
        stage = self._failed_stage or "session"
        log.error("call %s failed while %s: %s", self.context.call_id, stage, exc, exc_info=exc)
        variables = dict(self.context.variables)
        if self._unusable is None:
            variables.update(self._deciding.variables)
        fallback = Fallback(self.runtime.script, self._speaking, self._recording, self._line_open)
        await fallback.run(stage, variables)

    def _line_open(self) -> bool:
        """The customer is still there and our audio still reaches them."""
        return not self._customer_gone and not self.media.closed.is_set()
