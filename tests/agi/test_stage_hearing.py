"""Hearing alone: real Vosk, frames and floors fed in directly (no sockets, no session)."""

from __future__ import annotations

import numpy as np
import pytest

from agi.call.events import Floor, Heard, NoInput, TurnSoFar
from agi.call.hearing import Hearing
from agi.call.turntaking import AsrEndOfTurn, EndOfTurnPolicy, echo_aware_barge_in
from dialog import Listen, Say
from tests.agi.stages import GRAMMAR, fixture_pcm, frames_at, silence
from voice.asr import AsrEngine
from voice.settings import BargeInSettings, EndOfTurnSettings
from voice.tts import TtsEngine

SILENT = Floor(prompt=None, queued=False)
TALKING = Floor(prompt=Say("Your order is ready.", "read_order"), queued=False)
NOTICE = Floor(prompt=Say("This call may be recorded.", "identification", False), queued=False)


@pytest.fixture
async def asr(engines: tuple[AsrEngine, TtsEngine]) -> AsrEngine:
    return engines[0]


async def _hearing(
    asr: AsrEngine, policy: EndOfTurnPolicy | None = None, half_duplex: bool = False
) -> Hearing:
    session = asr.session(GRAMMAR)
    turns = (policy or AsrEndOfTurn(), echo_aware_barge_in(BargeInSettings()))
    return Hearing(session, turns, half_duplex=half_duplex, now=0.0)


async def _say_yes(hearing: Hearing, floor: Floor, start: float = 0.0) -> list[object]:
    """ "네" and a second of silence after it, frame by frame; what hearing made of it."""
    events: list[object] = []
    for frame, at in frames_at(fixture_pcm("ko_yes_1") + silence(1.0), start):
        event = await hearing.on_audio(frame, at, floor)
        if event is not None:
            events.append(event)
    return events


async def test_an_answer_is_heard_once_the_caller_has_finished(asr: AsrEngine) -> None:
    hearing = await _hearing(asr)
    events = await _say_yes(hearing, SILENT)
    assert len(events) == 1 and isinstance(events[0], Heard)
    assert events[0].final.phrase == "네"
    assert events[0].ready_at == events[0].final.endpoint_at
    await hearing.close()


async def test_a_complete_answer_ends_the_turn_after_the_short_wait(asr: AsrEngine) -> None:
    """The default end of turn is the ASR's adaptive one: "네" is a whole grammar phrase."""
    hearing = await _hearing(asr)
    (heard,) = await _say_yes(hearing, SILENT)
    assert isinstance(heard, Heard)
    waited = heard.final.endpoint_at - heard.final.speech_end
    assert waited < EndOfTurnSettings().incomplete_silence_ms / 1000
    await hearing.close()


@pytest.mark.parametrize("half_duplex", [False, True])
async def test_a_half_duplex_line_never_barges_in_while_the_bot_talks(
    asr: AsrEngine, half_duplex: bool
) -> None:
    barge_in = echo_aware_barge_in(BargeInSettings())
    turns = (AsrEndOfTurn(), barge_in)
    hearing = Hearing(asr.session(GRAMMAR), turns, half_duplex=half_duplex, now=0.0)
    barge_in.prompt(TALKING.prompt.barge_in_min_ms if TALKING.prompt else None)
    speech = frames_at(fixture_pcm("ko_yes_1"), 0.0)
    fired = any(hearing.barges_in(frame, None, TALKING) for frame, _ in speech)
    assert fired is not half_duplex  # full duplex: the same "네" stops the bot
    await hearing.close()


async def test_an_answer_over_a_legal_notice_waits_until_the_notice_is_over(
    asr: AsrEngine,
) -> None:
    hearing = await _hearing(asr)
    events = await _say_yes(hearing, NOTICE)
    assert not [e for e in events if isinstance(e, Heard)]
    assert hearing.release(NOTICE, 5.0) is None  # still playing
    released = hearing.release(SILENT, 6.0)
    assert released is not None and released.final.phrase == "네"
    assert released.ready_at == 6.0  # acted on from the notice's end, not the answer's
    assert hearing.release(SILENT, 6.1) is None
    await hearing.close()


async def test_a_half_duplex_line_hears_nothing_while_the_bot_talks(asr: AsrEngine) -> None:
    hearing = await _hearing(asr, half_duplex=True)
    assert await _say_yes(hearing, TALKING) == []
    heard = [e for e in await _say_yes(hearing, SILENT, start=10.0) if isinstance(e, Heard)]
    assert len(heard) == 1
    await hearing.close()


async def test_no_input_runs_from_when_the_bot_falls_silent(asr: AsrEngine) -> None:
    hearing = await _hearing(asr)
    question = Listen("confirm_identity", timeout_ms=1000)
    hearing.listen(question, None, now=0.0, floor=Floor(TALKING.prompt, queued=True))
    assert hearing.no_input(5.0, SILENT) is None  # prompts were queued: not started yet
    hearing.bot_fell_silent(6.0)
    assert hearing.no_input(6.9, SILENT) is None
    assert hearing.no_input(7.5, TALKING) is None  # the bot talks again
    assert hearing.no_input(7.5, SILENT) == NoInput(1500)
    assert hearing.no_input(9.0, SILENT) is None  # told once
    hearing.bot_fell_silent(10.0)
    await _say_yes(hearing, SILENT, start=10.0)  # the caller talks: the clock stops
    assert hearing.no_input(20.0, SILENT) is None
    hearing.bot_fell_silent(30.0)
    hearing.stop_listening()  # the call is ending
    assert hearing.no_input(40.0, SILENT) is None
    await hearing.close()


class _QuickTurns:
    """An end-of-turn decision that ends a turn after 60 ms of silence."""

    def __init__(self) -> None:
        self.seen: list[TurnSoFar] = []

    def turn_over(self, turn: TurnSoFar) -> bool:
        self.seen.append(turn)
        return turn.silence_ms >= 60


async def test_the_end_of_turn_decision_is_one_replaceable_object(asr: AsrEngine) -> None:
    default = await _hearing(asr)
    slow = [e for e in await _say_yes(default, SILENT) if isinstance(e, Heard)][0].final
    await default.close()
    policy = _QuickTurns()
    quick_hearing = await _hearing(asr, policy)
    quick = [e for e in await _say_yes(quick_hearing, SILENT) if isinstance(e, Heard)][0].final
    await quick_hearing.close()
    assert quick.phrase == slow.phrase == "네"
    # The default waits the endpointer's short wait after a whole answer; the policy ended it
    # sooner.
    assert quick.endpoint_at - quick.speech_end < slow.endpoint_at - slow.speech_end
    assert policy.seen and all(t.grammar == GRAMMAR for t in policy.seen)
    assert max(t.speech_ms for t in policy.seen) > 0


def _echo_of(pcm: bytes, delay_frames: int = 2) -> bytes:
    """`pcm` as a line returns it: 20 dB down, `delay_frames` of 20 ms late."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) * 0.1
    return bytes(delay_frames * 320) + samples.astype("<i2").tobytes()


@pytest.mark.parametrize("bot_playing", [True, False])
async def test_an_utterance_made_only_of_the_bots_echo_is_not_heard(
    asr: AsrEngine, bot_playing: bool
) -> None:
    """The ASR's VAD hears the bot's own prompt echoed back as speech; the barge-in decision
    knows it for echo, so it is not the caller's. The same audio with nothing played is."""
    played_pcm = fixture_pcm("ko_yes_1")
    heard_pcm = _echo_of(played_pcm) + silence(1.0)
    played = [frame for frame, _ in frames_at(played_pcm, 0.0)]
    barge_in = echo_aware_barge_in(BargeInSettings())
    hearing = Hearing(asr.session(GRAMMAR), (AsrEndOfTurn(), barge_in), half_duplex=False, now=0.0)
    barge_in.prompt(None)  # a prompt nothing interrupts: only the echo judgement is at work
    events = []
    for i, (frame, at) in enumerate(frames_at(heard_pcm, 0.0)):
        now_playing = played[i] if bot_playing and i < len(played) else None
        floor = TALKING if now_playing else SILENT
        hearing.barges_in(frame, now_playing, floor)
        if (event := await hearing.on_audio(frame, at, floor)) is not None:
            events.append(event)
    events += [e for e in [await hearing.tick(at + 1.0, SILENT)] if e is not None]
    await hearing.close()
    assert bool(events) is not bot_playing


async def test_the_answer_after_a_prompt_is_heard_alone_not_joined_to_the_prompts_echo(
    asr: AsrEngine,
) -> None:
    """A line that echoes the prompt: the caller answers "네" 0.6 s after the bot falls silent.
    The utterance is the answer alone; before, the VAD started it on the echo, the answer was
    joined to it after a long pause, and what came out was not the answer (bench/calls.py's
    echo-line customers: 3-5 s utterances)."""
    played_pcm = fixture_pcm("ko_agent_1") + fixture_pcm("ko_no_1")
    answer_at = len(played_pcm) / 16000 + 0.6
    heard_pcm = _echo_of(played_pcm) + silence(0.6 - 0.04) + fixture_pcm("ko_yes_1") + silence(1.0)
    played = [frame for frame, _ in frames_at(played_pcm, 0.0)]
    barge_in = echo_aware_barge_in(BargeInSettings())
    hearing = Hearing(asr.session(GRAMMAR), (AsrEndOfTurn(), barge_in), half_duplex=False, now=0.0)
    barge_in.prompt(None)  # a prompt nothing interrupts: only the echo judgement is at work
    heard: list[Heard] = []
    for i, (frame, at) in enumerate(frames_at(heard_pcm, 0.0)):
        now_playing = played[i] if i < len(played) else None
        floor = TALKING if now_playing else SILENT
        hearing.barges_in(frame, now_playing, floor)
        if isinstance(event := await hearing.on_audio(frame, at, floor), Heard):
            heard.append(event)
    await hearing.close()
    assert [h.final.phrase for h in heard] == ["네"]
    assert heard[0].final.speech_start >= answer_at - 0.1


def _voiced_part(name: str) -> bytes:
    """A fixture's speech without the silence it carries before and after."""
    pcm = np.frombuffer(fixture_pcm(name), dtype="<i2")
    loud = np.flatnonzero(np.abs(pcm) >= 0.01 * 32768)
    start, end = loud[0] // 160 * 160, (loud[-1] // 160 + 1) * 160
    return pcm[start:end].tobytes()


async def test_a_stall_of_the_process_is_no_pause_in_the_callers_answer(asr: AsrEngine) -> None:
    """The caller says "네", pauses 80 ms and goes on with "아니요". Right after "네" the whole
    process stands still for 0.3 s: the line sends on, and the frames of that time are read
    when it is over, in a burst, all at the same moment. The session tells hearing of the
    stall (CallSession asks the media clock) before its clock or those frames. One answer is
    heard, not "네" cut off on the clock at the end of the stall and "아니요" after it."""
    hearing = await _hearing(asr)
    yes = frames_at(_voiced_part("ko_yes_1"), 0.0)
    rest = [frame for frame, _ in frames_at(silence(0.08) + _voiced_part("ko_no_1"), 0.0)]
    heard: list[Heard] = []
    for frame, at in yes:
        assert await hearing.on_audio(frame, at, SILENT) is None
    stall_start = yes[-1][1]
    stall_end = stall_start + 0.3
    hearing.forgive_stall(0.3 - 0.02)  # the clock's stall runs from its missed tick on
    events = [await hearing.tick(stall_end, SILENT)]
    in_stall = round(0.3 / 0.02)
    events += [await hearing.on_audio(frame, stall_end, SILENT) for frame in rest[:in_stall]]
    later = frames_at(b"".join(rest[in_stall:]) + silence(1.0), stall_end)
    events += [await hearing.on_audio(frame, at, SILENT) for frame, at in later]
    heard = [e for e in events if isinstance(e, Heard)]
    await hearing.close()
    assert len(heard) == 1
    assert heard[0].final.phrase != "네"
    assert heard[0].final.speech_end > stall_end
