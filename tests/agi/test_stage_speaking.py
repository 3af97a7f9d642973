"""Speaking alone: real Piper, a real MediaConnection whose audio goes down a pipe, the media
clock's ticks and the caller's speech fed in directly (no sockets, no session)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from prometheus_client import REGISTRY

from agi import faults
from agi.audiosocket import MediaConnection, Playback
from agi.call.events import (
    BargedIn,
    CallerSpeech,
    Floor,
    PromptEnded,
    PromptOnWire,
    SpeakingEvent,
)
from agi.call.speaking import Speaking, SpeechFailed
from agi.call.synthesis import PromptSynthesis
from agi.call.turntaking import BargeInPolicy, MinimumSpeech
from dialog import Say
from tests.agi.stages import piped_media
from voice.asr import AsrEngine
from voice.tts import TtsEngine

CAMPAIGN = "speaking-unit"
QUESTION = Say("Shall we ship it?", "confirm_order", static=True)
THANKS = Say("Thanks.", "read_order", static=True)
NOTICE = Say("This call may be recorded.", "identification", interruptible=False, static=True)


@dataclass
class Line:
    media: MediaConnection
    speaking: Speaking
    events: list[SpeakingEvent] = field(default_factory=list)
    now: float = 0.0

    async def play_until(self, done: Callable[[], bool], limit: int = 5000) -> None:
        """Tick the media clock (20 ms of line time a tick) until `done`."""
        for _ in range(limit):
            if done():
                return
            self.now += 0.02
            self.media.tick(self.now)
            self.speaking.on_clock(self.now)
            await asyncio.sleep(0.001)  # synthesis runs in its executor meanwhile
        raise AssertionError(f"not done after {limit} ticks: {self.events}")

    def of(self, kind: type) -> list[SpeakingEvent]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def _line(tts: TtsEngine, policy: BargeInPolicy) -> AsyncIterator[Line]:
    async with piped_media() as media:
        events: list[SpeakingEvent] = []
        synthesis = PromptSynthesis(tts, None, CAMPAIGN)
        speaking = Speaking(media, synthesis, policy, events.append, ("unit", CAMPAIGN))
        try:
            yield Line(media, speaking, events)
        finally:
            await speaking.stop()


@pytest.fixture
async def line(engines: tuple[AsrEngine, TtsEngine]) -> AsyncIterator[Line]:
    async with _line(engines[1], MinimumSpeech()) as made:
        yield made


async def test_prompts_play_one_after_another_and_each_is_told(line: Line) -> None:
    line.speaking.say(THANKS)
    line.speaking.say(QUESTION)
    assert line.speaking.floor() == Floor(THANKS, queued=True)
    await line.play_until(lambda: len(line.of(PromptEnded)) == 2)
    assert [type(e) for e in line.events] == [PromptOnWire, PromptEnded] * 2
    ended = line.of(PromptEnded)
    assert [(e.say, e.played, e.last) for e in ended] == [
        (THANKS, True, False),
        (QUESTION, True, True),
    ]
    assert line.speaking.floor().bot_silent and line.media.frames_out > 0


async def test_the_caller_talking_over_a_prompt_stops_it_and_drops_the_queue(line: Line) -> None:
    line.speaking.say(QUESTION)
    line.speaking.say(THANKS)
    await line.play_until(lambda: bool(line.of(PromptOnWire)))
    line.speaking.on_caller_speech(CallerSpeech(line.now, QUESTION.barge_in_min_ms - 20))
    assert not line.of(BargedIn)  # shorter than the prompt's floor: a cough, not an answer
    line.speaking.on_caller_speech(CallerSpeech(line.now, QUESTION.barge_in_min_ms))
    assert line.of(BargedIn) == [BargedIn("confirm_order")]
    assert line.media.playback is None and line.speaking.floor().bot_silent
    frames_out = line.media.frames_out
    ticks = iter(range(50))
    await line.play_until(lambda: next(ticks, None) is None)  # a second of line time
    assert not line.of(PromptEnded)  # the dropped prompt never plays
    assert line.media.frames_out == frames_out


async def test_a_legal_notice_is_never_cut_off(line: Line) -> None:
    line.speaking.say(NOTICE)
    await line.play_until(lambda: bool(line.of(PromptOnWire)))
    assert line.speaking.floor().holds_answers
    line.speaking.on_caller_speech(CallerSpeech(line.now, 5000))
    line.speaking.cut_off()
    assert not line.of(BargedIn)
    await line.play_until(lambda: bool(line.of(PromptEnded)))
    assert line.of(PromptEnded)[0].played


class _AnyVoice:
    """A barge-in decision that stops the bot at the first sound of the caller."""

    def __init__(self) -> None:
        self.asked: list[tuple[Say, CallerSpeech]] = []

    def interrupts(self, prompt: Say, speech: CallerSpeech) -> bool:
        self.asked.append((prompt, speech))
        return True


async def test_the_barge_in_decision_is_one_replaceable_object(
    engines: tuple[AsrEngine, TtsEngine],
) -> None:
    policy = _AnyVoice()
    async with _line(engines[1], policy) as line:
        line.speaking.on_caller_speech(CallerSpeech(0.0, 20))  # nothing playing: not asked
        line.speaking.say(NOTICE)
        line.speaking.say(QUESTION)
        await line.play_until(lambda: len(line.of(PromptOnWire)) == 1)
        line.speaking.on_caller_speech(CallerSpeech(line.now, 20))  # a notice: not asked
        await line.play_until(lambda: len(line.of(PromptOnWire)) == 2)
        line.speaking.on_caller_speech(CallerSpeech(line.now, 20))
        assert policy.asked == [(QUESTION, CallerSpeech(line.now, 20))]
        assert line.of(BargedIn) == [BargedIn("confirm_order")]


def _ahead(disposition: str) -> float:
    labels = {"disposition": disposition}
    return REGISTRY.get_sample_value("outdial_replies_ahead_total", labels) or 0.0


async def test_a_reply_synthesised_ahead_is_played_from_what_was_made(
    engines: tuple[AsrEngine, TtsEngine],
) -> None:
    synthesis = PromptSynthesis(engines[1], None, CAMPAIGN)
    reply = Say("Great, your kettle ships to Oak Street on Friday.", "confirmed")
    used, unused = _ahead("used"), _ahead("unused")
    synthesis.expect([reply, Say("Okay, I will cancel the kettle.", "confirm_cancel")])
    ahead = synthesis.claim(reply)  # the caller's answer led here
    assert ahead is not None and synthesis.claim(reply) is None
    for _ in range(600):  # while the caller was still talking
        if ahead.started:
            break
        await asyncio.sleep(0.05)
    playback = Playback()
    await synthesis.produce(reply, playback, ahead)
    assert playback.complete and len(playback.buffer) > 8000  # over half a second of audio
    assert _ahead("used") == used + 1
    synthesis.expect([])  # the next question: the reply nobody needed is dropped
    assert _ahead("unused") == unused + 1


async def test_a_prompt_whose_audio_cannot_be_made_fails_the_call(line: Line) -> None:
    with faults.armed(faults.SYNTHESIS, campaign=CAMPAIGN) as fault:
        line.speaking.say(THANKS)
        with pytest.raises(SpeechFailed):
            await line.play_until(lambda: False)
    assert fault.hits == 1
