"""Deciding alone: the shipped order script's engine fed typed events; actions out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agi.call.deciding import Deciding
from agi.call.events import Heard, NoInput, Understood
from compliance.words import default_word_filter
from dialog import End, Listen, Say, Transfer, load_script
from dialog.actions import Action
from emotion.agitation import AgitationReading, LexicalCues
from emotion.features import extract_features
from nlu.classifier import NluResult
from tests.agi.stages import fixture_pcm
from voice.asr import AsrFinal

REPO = Path(__file__).resolve().parents[2]
SCRIPT = load_script(REPO / "scripts" / "order_confirmation_en.yaml").script
LEAD = {"customer_name": "Alex", "order_number": "A-1001", "item": "a kettle", "address": "Oak St"}


def _started() -> Deciding:
    deciding = Deciding(SCRIPT, LEAD, None, default_word_filter())
    actions = deciding.start()
    assert isinstance(actions[-1], Listen) and deciding.node == "confirm_identity"
    return deciding


def _heard(text: str) -> Heard:
    final = AsrFinal(text, text, 0.9, (), False, None, 1.0, 1.4, 1.9, 2.0, False)
    return Heard(final, ready_at=1.9)


def _answer(text: str, intent: str | None, reading: AgitationReading | None = None) -> Understood:
    return Understood(_heard(text), text, NluResult(text, intent, 0.9, intent), reading)


def _reading(score: float) -> AgitationReading:
    pcm = np.frombuffer(fixture_pcm("en_agitated_us"), dtype=np.int16)
    features = extract_features(pcm, 8000, None)  # real prosody; the score is set here
    return AgitationReading(score, "agitated", {}, features, LexicalCues(), 3)


def _said(actions: list[Action]) -> list[str]:
    return [a.node for a in actions if isinstance(a, Say)]


def test_an_answer_moves_the_call_on() -> None:
    deciding = _started()
    actions = deciding.on_understood(_answer("yes", "affirm"), bot_silent=True)
    assert _said(actions) == ["read_order", "confirm_order"]
    assert deciding.node == "confirm_order"


def test_an_answer_nothing_was_made_of_is_a_no_match_only_while_the_bot_listens() -> None:
    deciding = _started()
    nothing = Understood(_heard(""), "", None, None)
    assert deciding.on_understood(nothing, bot_silent=False) == []  # a noise over a prompt
    actions = deciding.on_understood(nothing, bot_silent=True)
    assert _said(actions) == ["confirm_identity"] and isinstance(actions[-1], Listen)


def test_agitation_is_answered_before_what_was_said() -> None:
    deciding = _started()
    calm = deciding.on_understood(_answer("yes", "affirm", _reading(0.7)), bot_silent=True)
    # The calming words, then the answer still moves the call on.
    assert [a.text for a in calm if isinstance(a, Say)][0] == "I understand, I'll keep this quick."
    assert "read_order" in _said(calm)
    upset = deciding.on_understood(_answer("yes", "affirm", _reading(0.9)), bot_silent=True)
    assert [type(a) for a in upset] == [Transfer]  # handed over: the answer is not acted on


def test_silence_keys_and_hang_ups_reach_the_engine() -> None:
    deciding = _started()
    retry = deciding.on_no_input(NoInput(5000))
    assert any("press 1" in a.text for a in retry if isinstance(a, Say))
    assert "read_order" in _said(deciding.on_dtmf("1"))
    assert deciding.on_hangup() == [End("hangup", "customer_hangup", False)]


def test_a_lead_without_a_required_variable_cannot_be_called() -> None:
    with pytest.raises(ValueError, match="customer_name"):
        Deciding(SCRIPT, {"order_number": "A-1"}, None, default_word_filter())


def test_an_adaptation_on_an_utterance_nothing_was_made_of_still_answers_it() -> None:
    """The adapt rule only says its apology and offer: the no-match path still re-asks."""
    survey = load_script(REPO / "scripts" / "library" / "survey_en.yaml").script
    deciding = Deciding(survey, {"customer_name": "Alex"}, None, default_word_filter())
    deciding.start()
    deciding.on_understood(_answer("sure", "affirm"), bot_silent=True)
    assert deciding.node == "ask_score"
    nothing = Understood(_heard(""), "", None, _reading(0.6))
    actions = deciding.on_understood(nothing, bot_silent=True)
    said = [a.text for a in actions if isinstance(a, Say)]
    assert said[0] == "Sorry, I'll be quick." and said[-1] == "Please say a number from 1 to 5."
    assert isinstance(actions[-1], Listen) and {a.pace for a in actions if isinstance(a, Say)} == {
        1.1
    }
