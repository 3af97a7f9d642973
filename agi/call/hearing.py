"""Hearing: the caller's audio to utterances, and the clocks that run while the bot listens.

Every frame goes first to the barge-in decision (with what the bot played meanwhile), then
to the ASR; what comes out is `Heard` once an utterance is over, and `NoInput` when the caller says
nothing for the question's timeout. Utterances heard during a legal notice wait until it has
been played through. A frame the barge-in decision judged the bot's own echo is not speech to
the ASR's endpointer (a VAD hears the echo as the speech it is): the echo of a prompt neither
starts an utterance nor runs into the caller's answer. Every timer runs on the wall clock because
the far end may send nothing while the caller is silent, less the time the process stood still
(`forgive_stall`).
"""

from __future__ import annotations

from collections import deque

from agi import metrics
from agi.call.events import Floor, Heard, NoInput, TurnSoFar
from agi.call.turntaking import BargeInPolicy, EndOfTurnPolicy
from dialog import Listen
from voice.asr import AsrFinal, AsrPartial, AsrSession, AsrStarted

# Waking this much after a decision is due keeps float rounding from waking just before it.
_DUE_SLACK_S = 0.001


class NoInputClock:
    """Runs from when the bot falls silent after a question; stops when the caller talks."""

    def __init__(self) -> None:
        self._listen: Listen | None = None
        self._since: float | None = None

    def arm(self, listen: Listen, now: float, floor: Floor) -> None:
        self._listen = listen
        # Prompts still queued: the clock starts when the last of them ends.
        self._since = None if floor.queued else now

    def restart(self, now: float) -> None:
        if self._listen is not None:
            self._since = now

    def stop(self) -> None:
        self._since = None

    def forgive(self, seconds: float) -> None:
        if self._since is not None:
            self._since += seconds

    def disarm(self) -> None:
        self._listen = None

    def expired(self, now: float, floor: Floor, caller_talking: bool) -> NoInput | None:
        listen, since = self._listen, self._since
        if listen is None or since is None or not floor.bot_silent or caller_talking:
            return None
        if now - since < listen.timeout_ms / 1000:
            return None
        self._since = None
        return NoInput(int((now - since) * 1000))


class Hearing:
    def __init__(
        self,
        asr: AsrSession,
        turns: tuple[EndOfTurnPolicy, BargeInPolicy],
        *,
        half_duplex: bool,
        now: float,
    ) -> None:
        self._asr = asr
        self._end_of_turn, self._barge_in = turns
        # EAGI: the caller's audio during a prompt is the prompt's echo path.
        self._half_duplex = half_duplex
        # Frames wait in the queue while the clock ticks on: never hand the ASR an older time.
        self._now = now
        self._partial = ""
        self._deferred: deque[AsrFinal] = deque()
        self._no_input = NoInputClock()
        self._frame_echo: bool | None = None  # the barge-in decision on the frame being heard

    def barges_in(self, pcm: bytes, played: bytes | None, floor: Floor) -> bool:
        """A heard frame, before the ASR sees it (a barge-in must not wait behind a decode),
        with the frame the bot played meanwhile: True when the caller's speech stops the
        prompt."""
        self._frame_echo = None
        if self._half_duplex and floor.prompt is not None:
            return False
        fired = self._barge_in.on_frame(pcm, played)
        self._frame_echo = self._barge_in.heard_echo
        return fired

    async def on_audio(self, pcm: bytes, at: float, floor: Floor) -> Heard | None:
        if self._half_duplex and floor.prompt is not None:
            return None
        self._now = max(self._now, at)
        echo = self._frame_echo is True
        if echo:
            metrics.ECHO_FRAMES.inc()
        event = await self._asr.feed(pcm, self._now, echo=echo)
        match event:
            case AsrStarted() | AsrPartial():
                self._partial = event.text if isinstance(event, AsrPartial) else ""
                self._no_input.stop()
                return None
            case AsrFinal():
                return self._on_final(event, floor)
        return await self._maybe_end_turn(floor)

    def barged_in(self, now: float) -> None:
        """The caller stopped the bot: wait for their answer from now (a cough that the ASR
        makes nothing of must not leave the call silent)."""
        self._no_input.restart(now)

    def release(self, floor: Floor, now: float) -> Heard | None:
        """The next utterance that waited behind a legal notice, once the notice is over."""
        if not self._deferred or floor.holds_answers:
            return None
        return Heard(self._deferred.popleft(), ready_at=now)

    async def tick(self, now: float, floor: Floor) -> Heard | None:
        """Trailing silence without frames may end the utterance under way."""
        self._now = max(self._now, now)
        final = await self._asr.tick(self._now)
        if final is not None:
            return self._on_final(final, floor)
        return await self._maybe_end_turn(floor)

    def forgive_stall(self, seconds: float) -> None:
        """The process stood still for `seconds`: the caller's frames of that time are still on
        their way (read late, in a burst), so it is neither the pause that ends their turn nor
        time they kept quiet after a question."""
        self._asr.forgive_stall(seconds)
        self._no_input.forgive(seconds)

    def wait_s(self, now: float, tick_s: float) -> float:
        """How long the call may wait for the next frame: `tick_s`, or less when the end of
        turn has a decision due sooner (a 50 ms tick would end a turn up to 50 ms late on a
        line that sends nothing in silence)."""
        due = self._asr.next_due()
        if due is None or due <= now:
            return tick_s
        return min(tick_s, due - now + _DUE_SLACK_S)

    def no_input(self, now: float, floor: Floor) -> NoInput | None:
        return self._no_input.expired(now, floor, self._asr.in_speech)

    def listen(
        self, listen: Listen, grammar: tuple[str, ...] | None, now: float, floor: Floor
    ) -> None:
        """A question was asked: expect these phrases and start waiting for an answer."""
        self._no_input.arm(listen, now, floor)
        self._asr.set_grammar(grammar)

    def bot_fell_silent(self, now: float) -> None:
        self._no_input.restart(now)

    def stop_listening(self) -> None:
        self._no_input.disarm()

    async def flush(self, now: float) -> AsrFinal | None:
        """The line ended: the utterance under way, finished now."""
        return await self._asr.flush(max(self._now, now))

    async def close(self) -> None:
        await self._asr.close()

    async def _maybe_end_turn(self, floor: Floor) -> Heard | None:
        asr, now = self._asr, self._now
        if not asr.in_speech:
            return None
        turn = TurnSoFar(
            now=now,
            speech_ms=asr.speech_duration(now) * 1000,
            silence_ms=asr.silence_duration(now) * 1000,
            partial=self._partial,
            grammar=asr.grammar,
        )
        if not self._end_of_turn.turn_over(turn):
            return None
        final = await asr.flush(now)
        return self._on_final(final, floor) if final is not None else None

    def _on_final(self, final: AsrFinal, floor: Floor) -> Heard | None:
        self._partial = ""
        metrics.WORD_TIMES_CLAMPED.inc(final.clamped_words)
        if floor.holds_answers:
            self._deferred.append(final)
            return None
        return Heard(final, ready_at=final.endpoint_at)
