"""The wire measurements (pbxsim.wire) on synthetic frame timelines with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pbxsim.audiosocket import BotFrame
from pbxsim.records import CallRecord, Said
from pbxsim.wire import audible_times, bargein_cut_s, measure, prompts, response_s

LOUD = (np.full(160, 2000, np.int16)).tobytes()  # about 6 % of full scale
QUIET = (np.full(160, 200, np.int16)).tobytes()  # 0.6 %: line noise, not the bot talking


def frames(start: float, end: float, payload: bytes = LOUD) -> list[BotFrame]:
    """One 20 ms bot frame every 20 ms from `start` to before `end`."""
    return [BotFrame(t, payload) for t in np.arange(start, end - 1e-9, 0.02)]


def record(bot: list[BotFrame], *said: Said) -> CallRecord:
    rec = CallRecord(
        action_id=None, channel="Local/x;1", number="1", customer="c", outcome="answer"
    )
    rec.bot_frames = bot
    rec.said = list(said)
    return rec


def test_quiet_frames_are_not_audible() -> None:
    bot = frames(0.0, 0.1, QUIET) + frames(0.1, 0.2)
    assert audible_times(bot) == pytest.approx([0.10, 0.12, 0.14, 0.16, 0.18])


def test_response_is_last_voiced_frame_to_first_audible_frame() -> None:
    # Comfort noise arrives at once; the bot's voice 0.43 s after the answer ended.
    bot = frames(0.0, 1.0) + frames(1.5, 2.43, QUIET) + frames(2.43, 3.0)
    rec = record(bot, Said("answer/expected", 1.6, 2.0))
    timings = measure(rec)
    assert timings.responses["answer/expected"] == pytest.approx([0.43])
    assert response_s(audible_times(bot), 2.0) == pytest.approx(0.43)


def test_no_response_counted_when_the_bot_talked_during_the_answer() -> None:
    rec = record(frames(0.0, 3.0), Said("answer/expected", 1.0, 1.5))
    assert measure(rec).responses == {}


def test_bargein_cut_runs_to_the_last_frame_before_a_200ms_gap() -> None:
    # The bot keeps talking 0.31 s into the interruption, pauses 0.1 s (not a stop), then talks
    # 0.1 s more, then is quiet for 0.5 s.
    audible = audible_times(frames(0.0, 1.31) + frames(1.41, 1.51) + frames(2.01, 3.0))
    assert bargein_cut_s(audible, 1.0) == pytest.approx(1.49 - 1.0)


def test_no_bargein_when_the_bot_was_quiet() -> None:
    audible = audible_times(frames(0.0, 1.0))
    assert bargein_cut_s(audible, 1.5) is None
    assert bargein_cut_s(audible, -0.5) is None


def test_greeting_from_end_of_hello() -> None:
    rec = record(frames(2.25, 3.0), Said("hello", 0.8, 1.3))
    assert measure(rec).greeting == pytest.approx([0.95])


def test_hesitant_turn_without_cutin_is_one_response_from_its_end() -> None:
    bot = frames(0.0, 1.0) + frames(3.5, 4.0)
    rec = record(bot, Said("pause", 1.5, 1.8), Said("answer/hesitant", 2.4, 2.9))
    timings = measure(rec)
    assert (timings.hesitant_turns, timings.false_cutins) == (1, 0)
    assert timings.responses["answer/hesitant"] == pytest.approx([0.6])


def test_bot_talking_in_the_pause_is_a_false_cutin() -> None:
    bot = frames(0.0, 1.0) + frames(2.3, 3.5)
    rec = record(bot, Said("pause", 1.5, 1.8), Said("answer/hesitant", 2.4, 2.9))
    timings = measure(rec)
    assert (timings.hesitant_turns, timings.false_cutins) == (1, 1)
    assert timings.responses == {}


def test_prompts_are_runs_split_by_200ms() -> None:
    audible = audible_times(frames(0.0, 1.0) + frames(1.1, 1.5) + frames(1.8, 2.0))
    assert prompts(audible) == 2


def test_unspoken_and_unmarked_utterances_are_ignored() -> None:
    rec = record(frames(0.0, 1.0), Said("answer/x"), Said(None, 1.2, 1.3))
    timings = measure(rec)
    assert timings.responses == {} and timings.greeting == []


def test_an_utterance_the_bot_was_audible_during_is_talked_over() -> None:
    # The bot pauses 0.5 s inside a prompt; the customer answers into the pause and the prompt
    # goes on over the answer. The next answer comes after the bot has finished.
    bot = frames(0.0, 1.0) + frames(1.5, 2.5)
    rec = record(bot, Said("answer/expected", 1.1, 1.8), Said("answer/expected", 3.0, 3.4))
    assert measure(rec).talked_over == 1
