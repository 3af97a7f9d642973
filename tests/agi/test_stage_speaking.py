"""Speaking alone: real Piper, a real MediaConnection whose audio goes down a pipe, the media
clock's ticks and the caller's speech fed in directly (no sockets, no session)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from prometheus_client import REGISTRY

from agi import faults
from agi.audiosocket import MediaConnection, Playback
from agi.call.events import BargedIn, Floor, PromptEnded, PromptOnWire, SpeakingEvent
from agi.call.hearing import Hearing
from agi.call.speaking import Speaking, SpeechFailed
from agi.call.synthesis import PromptSynthesis
from agi.call.turntaking import AsrEndOfTurn, BargeInPolicy, echo_aware_barge_in
from dialog import Say
from tests.agi.stages import GRAMMAR, piped_media
from tests.voice.turn_audio import ECHO_DB, ECHO_DELAY_FRAMES, clip, frames_of, loud_frames, noise
from voice.asr import AsrEngine
from voice.audio import FRAME_BYTES, FRAME_SAMPLES, bytes_to_int16
from voice.settings import BargeInSettings
from voice.tts import TtsEngine

CAMPAIGN = "speaking-unit"
QUESTION = Say("Shall we ship it?", "confirm_order", static=True)
THANKS = Say("Thanks.", "read_order", static=True)
NOTICE = Say("This call may be recorded.", "identification", interruptible=False, static=True)
LONG = Say(
    "Your order of one blue kettle will be shipped to Oak Street on Friday morning, "
    "and the courier will call you half an hour before arriving.",
    "read_order",
    static=True,
)
# Barge-in's decision comes within ~100 ms of the caller's speech onset (voice/bargein.py).
MAX_FRAMES_AFTER_ONSET = 4
LINE_NOISE_DBFS = -45.0


@dataclass
class Line:
    media: MediaConnection
    speaking: Speaking
    hearing: Hearing
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
async def _line(engines: tuple[AsrEngine, TtsEngine], policy: BargeInPolicy) -> AsyncIterator[Line]:
    """Speaking, and hearing for the frames heard back, sharing one barge-in decision."""
    async with piped_media() as media:
        events: list[SpeakingEvent] = []
        synthesis = PromptSynthesis(engines[1], None, CAMPAIGN)
        speaking = Speaking(media, synthesis, policy, events.append, ("unit", CAMPAIGN))
        asr = engines[0].session(GRAMMAR)
        hearing = Hearing(asr, (AsrEndOfTurn(), policy), half_duplex=False, now=0.0)
        try:
            yield Line(media, speaking, hearing, events)
        finally:
            await speaking.stop()
            await hearing.close()


@pytest.fixture
async def line(engines: tuple[AsrEngine, TtsEngine]) -> AsyncIterator[Line]:
    async with _line(engines, echo_aware_barge_in(BargeInSettings())) as made:
        yield made


async def _synthesised(line: Line, say: Say) -> None:
    """Queue `say` and wait until its audio is all made, so that no played frame is starved."""
    line.speaking.say(say)
    playback = line.media.playback
    assert playback is not None
    for _ in range(1500):  # Piper on a loaded box: up to half a minute
        if playback.complete:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{say.text!r} was not synthesised")


async def _talk_over(line: Line, caller_from: int | None, frames: int) -> tuple[int | None, int]:
    """Play `frames` ticks of the line. Each tick hearing gets back what the bot played, as a
    line returns it (its echo 20 dB down, 60 ms late, over line noise), plus the caller's
    "Wait, stop, ..." from tick `caller_from` on (None: nobody talks). Returns the tick the
    bot was stopped on (None: it never was) and how many ticks played audio."""
    echo_gain = 10 ** (ECHO_DB / 20)
    quiet = bytes(FRAME_BYTES)
    played_back = [quiet] * ECHO_DELAY_FRAMES
    caller = frames_of(clip("interrupt")) if caller_from is not None else []
    hiss = frames_of(noise(frames * FRAME_SAMPLES, LINE_NOISE_DBFS, seed=3))
    playing = 0
    for tick in range(frames):
        line.now += 0.02
        line.media.tick(line.now)
        line.speaking.on_clock(line.now)
        played = line.media.last_played
        playing += played is not None
        played_back.append(played or quiet)
        heard = bytes_to_int16(played_back.pop(0)).astype(np.float64) * echo_gain
        heard += bytes_to_int16(hiss[tick]).astype(np.float64)
        if caller_from is not None and 0 <= tick - caller_from < len(caller):
            heard += bytes_to_int16(caller[tick - caller_from]).astype(np.float64)
        (frame,) = frames_of(heard)
        if line.hearing.barges_in(frame, played, line.speaking.floor()):
            line.speaking.cut_off()
        if line.of(BargedIn):
            return tick, playing
        await asyncio.sleep(0)
    return None, playing


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


async def test_the_prompts_own_echo_and_line_noise_do_not_stop_it(line: Line) -> None:
    await _synthesised(line, LONG)
    stopped, playing = await _talk_over(line, None, frames=150)
    assert stopped is None and not line.of(BargedIn)
    assert playing == 150  # the bot talked all along: there was an echo to be fooled by
    assert line.speaking.floor().prompt == LONG


async def test_the_caller_talking_over_a_prompt_stops_it_and_drops_the_queue(line: Line) -> None:
    await _synthesised(line, LONG)
    line.speaking.say(THANKS)
    caller_from = 60
    onset = caller_from + loud_frames(clip("interrupt"))[0]
    stopped, _ = await _talk_over(line, caller_from, frames=150)
    # Within a few frames of the caller's speech onset, over the echo and the noise.
    assert stopped is not None and onset <= stopped <= onset + MAX_FRAMES_AFTER_ONSET
    assert line.of(BargedIn) == [BargedIn("read_order")]
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
    stopped, _ = await _talk_over(line, 0, frames=40)
    assert stopped is None
    line.speaking.cut_off()
    assert not line.of(BargedIn)
    await line.play_until(lambda: bool(line.of(PromptEnded)))
    assert line.of(PromptEnded)[0].played


class _AnyFrame:
    """A barge-in decision that stops an interruptible prompt on the first frame heard."""

    def __init__(self) -> None:
        self.floors: list[int | None] = []
        self.frames = 0

    def prompt(self, floor_ms: int | None) -> None:
        self.floors.append(floor_ms)

    def on_frame(self, heard: bytes, played: bytes | None) -> bool:
        self.frames += 1
        return self.floors[-1] is not None

    @property
    def heard_echo(self) -> bool | None:
        return None


async def test_the_barge_in_decision_is_one_replaceable_object(
    engines: tuple[AsrEngine, TtsEngine],
) -> None:
    policy = _AnyFrame()
    async with _line(engines, policy) as line:
        line.speaking.say(NOTICE)
        line.speaking.say(QUESTION)
        assert policy.floors == [None]  # the notice is current: nothing interrupts it
        await line.play_until(lambda: len(line.of(PromptOnWire)) == 2)
        assert policy.floors == [None, QUESTION.barge_in_min_ms]
        quiet = bytes(FRAME_BYTES)
        assert line.hearing.barges_in(quiet, line.media.last_played, line.speaking.floor())
        line.speaking.cut_off()
        assert line.of(BargedIn) == [BargedIn("confirm_order")]
        assert policy.floors[-1] is None and policy.frames == 1  # told the bot fell silent


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
