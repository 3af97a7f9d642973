"""Hearing alone: real Vosk, frames and floors fed in directly (no sockets, no session)."""

from __future__ import annotations

import pytest

from agi.call.events import CallerSpeech, Floor, Heard, NoInput, TurnSoFar
from agi.call.hearing import Hearing
from agi.call.turntaking import EndOfTurnPolicy, EndpointerSilence
from dialog import Listen, Say
from tests.agi.stages import GRAMMAR, fixture_pcm, frames_at, silence
from voice.asr import AsrEngine
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
    return Hearing(session, policy or EndpointerSilence(), half_duplex=half_duplex, now=0.0)


async def _say_yes(hearing: Hearing, floor: Floor, start: float = 0.0) -> list[object]:
    """ "네" and a second of silence after it, frame by frame; what hearing made of it."""
    events: list[object] = []
    for frame, at in frames_at(fixture_pcm("ko_yes_1") + silence(1.0), start):
        event = await hearing.on_audio(frame, at, floor)
        if event is not None:
            events.append(event)
    return events


async def test_an_answer_is_heard_after_the_caller_speech_that_carries_it(asr: AsrEngine) -> None:
    hearing = await _hearing(asr)
    events = await _say_yes(hearing, SILENT)
    speech = [e for e in events if isinstance(e, CallerSpeech)]
    heard = [e for e in events if isinstance(e, Heard)]
    assert speech and len(heard) == 1 and events[-1] is heard[0]
    # The barge-in input grows as the caller goes on talking.
    assert [s.speech_ms for s in speech] == sorted(s.speech_ms for s in speech)
    assert heard[0].final.phrase == "네"
    assert heard[0].ready_at == heard[0].final.endpoint_at
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
    """An end-of-turn decision that ends a turn after 100 ms of silence."""

    def __init__(self) -> None:
        self.seen: list[TurnSoFar] = []

    def turn_over(self, turn: TurnSoFar) -> bool:
        self.seen.append(turn)
        return turn.silence_ms >= 100


async def test_the_end_of_turn_decision_is_one_replaceable_object(asr: AsrEngine) -> None:
    default = await _hearing(asr)
    slow = [e for e in await _say_yes(default, SILENT) if isinstance(e, Heard)][0].final
    await default.close()
    policy = _QuickTurns()
    quick_hearing = await _hearing(asr, policy)
    quick = [e for e in await _say_yes(quick_hearing, SILENT) if isinstance(e, Heard)][0].final
    await quick_hearing.close()
    assert quick.phrase == slow.phrase == "네"
    # The default waits the endpointer's 500 ms of silence; the policy ended it at 100 ms.
    assert quick.endpoint_at - quick.speech_end < 0.2 <= slow.endpoint_at - slow.speech_end
    assert policy.seen and all(t.grammar == GRAMMAR for t in policy.seen)
    assert max(t.speech_ms for t in policy.seen) > 0
