"""Speaking: the prompt queue, paced onto the line one prompt after another, and barge-in.

Each queued prompt's audio is made at once (agi/call/synthesis.py) while the one before it
plays; the media clock sends it frame by frame. What happens on the line is told as events:
a prompt's first frame went out, a prompt ended, the caller barged in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agi import faults, metrics
from agi.audiosocket import MediaConnection, Playback
from agi.call.events import (
    BargedIn,
    Floor,
    PromptEnded,
    PromptOnWire,
    SpeakingEvent,
)
from agi.call.synthesis import PromptSynthesis
from agi.call.turntaking import BargeInPolicy
from dialog import Say
from voice.ahead import AheadSynthesis

log = logging.getLogger(__name__)

# How long a failed call's apology or goodbye may take to play before the call moves on.
FALLBACK_SPEECH_TIMEOUT_S = 15.0


class SpeechFailed(RuntimeError):
    """A prompt's audio could not be made (the synthesiser failed)."""


@dataclass
class _Speech:
    say: Say
    playback: Playback
    producer: asyncio.Task[None] | None = None
    on_wire: bool = False  # its first frame was reported
    ahead: AheadSynthesis | None = None  # its audio, synthesised ahead


class Speaking:
    def __init__(
        self,
        media: MediaConnection,
        synthesis: PromptSynthesis,
        barge_in: BargeInPolicy,
        emit: Callable[[SpeakingEvent], None],
        where: tuple[str, str | None],
    ) -> None:
        """`where` is the call id (for the logs) and campaign (for the fault points)."""
        self._media = media
        self._synthesis = synthesis
        self._barge_in = barge_in
        self._emit = emit
        self._call_id, self._campaign = where
        self._queue: deque[_Speech] = deque()
        self._current: _Speech | None = None
        self._failure: BaseException | None = None

    def floor(self) -> Floor:
        current = self._current
        return Floor(current.say if current else None, bool(self._queue))

    def say(self, say: Say) -> None:
        playback = Playback(interruptible=say.interruptible)
        speech = _Speech(say, playback, ahead=self._synthesis.claim(say))
        speech.producer = asyncio.get_running_loop().create_task(
            self._synthesis.produce(say, playback, speech.ahead)
        )
        speech.producer.add_done_callback(self._produced)
        playback.done.add_done_callback(lambda _: self._prompt_ended(playback))
        self._queue.append(speech)
        self.advance(time.monotonic())

    def expect(self, replies: list[Say]) -> None:
        """A question was asked: start on the replies its expected answers lead to."""
        self._synthesis.expect(replies)

    def cut_off(self) -> None:
        """The caller talks over the bot: stop sending now and drop what was queued (a legal
        notice plays on)."""
        current = self._current
        if current is None or not current.say.interruptible:
            return
        self._media.stop_playback()
        self._drop_queued()
        log.debug("call %s: barge-in at node %s", self._call_id, current.say.node)
        self._emit(BargedIn(current.say.node))

    def on_clock(self, now: float) -> None:
        """Start the next prompt when the current one ends; fail the call if a prompt's audio
        could not be made (the customer must not be left waiting for it)."""
        self.advance(now)
        if self._failure is not None:
            raise SpeechFailed("a prompt could not be synthesised") from self._failure
        playing = self._current
        if playing is not None and playing.playback.first_frame_at is not None:
            faults.hit(faults.PROMPT, node=playing.say.node, campaign=self._campaign)

    def advance(self, now: float) -> None:
        """Start the next queued prompt when the current one has finished playing."""
        current = self._current
        if current is not None:
            self._report_on_wire(current)
            if not current.playback.done.done():
                return
            self._current = None
            self._emit(
                PromptEnded(current.say, current.playback.done.result(), now, not self._queue)
            )
        if self._queue:
            self._current = self._queue.popleft()
            self._media.start_playback(self._current.playback)
        if self._current is not current:
            self._barge_in.prompt(self._floor_ms(self._current))

    async def abandon(self) -> None:
        """The call failed: the prompt under way is reported if it reached the line, then
        everything stops."""
        if self._current is not None:
            self._report_on_wire(self._current)
        self._media.stop_playback()
        await self.stop()

    async def stop(self) -> None:
        self._synthesis.drop_all()
        producers = [s.producer for s in (*self._queue, self._current) if s and s.producer]
        self._drop_queued()
        for producer in producers:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer

    async def say_now(self, text: str, *, cached: bool) -> bool:
        """Speak one text past the queue and wait until it has been played (bounded); False
        when it could not be (a failure here is logged and the call moves on)."""
        try:
            async with asyncio.timeout(FALLBACK_SPEECH_TIMEOUT_S):
                audio = await self._synthesis.whole(text, cached)
                playback = Playback(interruptible=False)
                playback.feed(audio)
                playback.finish()
                self._media.start_playback(playback)
                return await playback.done
        except Exception as exc:  # noqa: BLE001 - nothing more can be said on this call
            log.warning("call %s: fallback speech failed: %s", self._call_id, exc)
            return False

    def _produced(self, producer: asyncio.Task[None]) -> None:
        if producer.cancelled() or self._failure is not None:
            return
        self._failure = producer.exception()

    def _prompt_ended(self, playback: Playback) -> None:
        if playback.starved_frames:
            metrics.STARVED_FRAMES.inc(playback.starved_frames)
        # The next prompt starts on the clock tick after this one ends, not when the session
        # loop next wakes (up to a tick later): back-to-back prompts play without a gap.
        self.advance(time.monotonic())

    @staticmethod
    def _floor_ms(speech: _Speech | None) -> int | None:
        """How long the caller must talk over the prompt on the line to stop it (None: they
        cannot, a legal notice or nothing playing)."""
        if speech is None or not speech.say.interruptible:
            return None
        return speech.say.barge_in_min_ms

    def _report_on_wire(self, speech: _Speech) -> None:
        """A prompt dropped unheard is not a turn: only one that reached the line is told."""
        first = speech.playback.first_frame_at
        if first is None or speech.on_wire:
            return
        speech.on_wire = True
        self._emit(PromptOnWire(speech.say, first))

    def _drop_queued(self) -> None:
        for speech in (*self._queue, self._current):
            if speech is None:
                continue
            for work in (speech.producer, speech.ahead):
                if work is not None:
                    work.cancel()
        self._queue.clear()
        self._current = None
        self._barge_in.prompt(None)
