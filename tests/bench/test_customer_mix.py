"""One call of each kind of customer bench/calls.py runs (issue 16), against `outdial run` in
its own process: what the bot does for each, measured on pbxsim's side of the wire. Figures
are the benchmark's; this asserts behaviour only."""

from __future__ import annotations

import asyncio

import pytest

from bench import calls

pytestmark = [pytest.mark.slow, pytest.mark.realtime, pytest.mark.timeout(600)]

KINDS = ["barges_in", "echo_line", "expected", "hesitant", "unexpected", "who_is_this"]


@pytest.fixture(scope="module")
def mix() -> dict:
    return asyncio.run(calls.run(3, 300.0, "grammar", "random", calls=len(KINDS)))


def test_every_kind_of_customer_had_a_call_and_none_failed(mix: dict) -> None:
    assert mix["customer_kinds"] == KINDS
    assert mix["calls"] == len(KINDS)
    assert mix["failed_calls"] == 0
    assert mix["counts"]["greetings"] == len(KINDS)  # every "hello" was followed by the bot


def test_who_is_this_is_answered_with_the_leads_order(mix: dict) -> None:
    assert mix["behaviour"]["who_is_this_heard"] == 1
    assert mix["behaviour"]["who_is_this_answered_with_order"] == 1
    assert mix["counts"]["responses"]["answer/who_is_this"] == 1


def test_an_unexpected_answer_gets_the_no_match_reprompt(mix: dict) -> None:
    assert mix["behaviour"]["unexpected_reprompted"] == 1


def test_the_bot_stops_for_a_customer_who_talks_over_it(mix: dict) -> None:
    assert mix["counts"]["bargeins"] == 1


def test_the_hesitant_customer_pauses_inside_the_answer(mix: dict) -> None:
    assert mix["counts"]["hesitant_turns"] == 1


def test_echo_and_line_noise_do_not_stop_the_bot(mix: dict) -> None:
    assert mix["behaviour"]["echo_line_calls"] == 1
    assert mix["counts"]["echo_line_prompts"] > 0
    # A stop while the customer talked over the bot (an answer begun in a pause of a prompt
    # whose synthesis fell behind) is not the echo's.
    assert mix["behaviour"]["echo_line_false_stops"] == 0
