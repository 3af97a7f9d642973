"""Recording alone: typed events in, turn rows, side effects, metrics and the outcome out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agi.call.events import Heard, PromptEnded, PromptOnWire, Understood
from agi.call.outcome import CallContext, CallRecorder
from agi.call.recording import BOT_TURN_LOG, Recording
from compliance.words import WordHit
from dialog import ComplianceHit, End, OptOut, PauseLead, Say, SetVariable, Transfer, load_script
from nlu.classifier import NluResult
from store.turns import TurnRecord
from voice.asr import AsrFinal

REPO = Path(__file__).resolve().parents[2]
CAMPAIGN = "recording-unit"
CONTEXT = CallContext("call-rec", CAMPAIGN, 7, "order_confirmation_en", 9, None, None, {})
SCRIPT = load_script(REPO / "scripts" / "order_confirmation_en.yaml").script
OPENING = Say("Hi, this is the Northwind Shop.", "identification", interruptible=False)


class Ledger:
    """Where the recorder's writes land (the call service writes them to PostgreSQL)."""

    def __init__(self) -> None:
        self.turns: list[TurnRecord] = []
        self.compliance: list[Any] = []
        self.opt_outs: list[CallContext] = []
        self.paused: list[str] = []

    def recorder(self) -> CallRecorder:
        return CallRecorder(
            write_turn=self.turns.append,
            record_compliance=lambda _, seq, hit: self.compliance.append((seq, hit)),
            opt_out=self.opt_outs.append,
            pause_lead=lambda _, reason: self.paused.append(reason),
        )


def _recording(ledger: Ledger, keep_raw: bool = False) -> Recording:
    return Recording(
        CONTEXT, ledger.recorder(), keep_raw=keep_raw, variant="base", connected_at=100.0
    )


def _final(text: str, start: float = 101.0, end: float = 102.0) -> AsrFinal:
    return AsrFinal(
        text=text,
        raw_text=text,
        confidence=0.9,
        words=(),
        grammar_mode=False,
        phrase=None,
        speech_start=start,
        speech_end=end,
        endpoint_at=end + 0.5,
        final_at=end + 0.6,
        truncated=False,
        raw_confidence=0.8,
    )


def _understood(text: str, intent: str | None = "affirm") -> Understood:
    nlu = NluResult(text, intent, 0.93, intent)
    return Understood(Heard(_final(text), ready_at=102.5), text, nlu, None)


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_customer_turn_keeps_its_columns_and_no_phone_number() -> None:
    ledger = Ledger()
    recording = _recording(ledger)
    recording.barged_in()
    recording.customer_turn(_understood("call me on 202 555 0101"), "confirm_identity")
    recording.customer_turn(_understood("yes"), "confirm_identity")
    first, second = ledger.turns
    assert (first.seq, first.speaker, first.node) == (1, "customer", "confirm_identity")
    assert "555" not in first.text and "[PHONE]" in first.text
    assert (first.intent, first.intent_confidence, first.asr_confidence) == ("affirm", 0.93, 0.8)
    assert first.barge_in and not second.barge_in  # told once, for the turn it cut in
    assert first.timings["speech_start"] == 1.0 and first.timings["endpoint"] == 2.5
    assert first.timings["speech_ms"] == 1020
    assert {"speech_end", "asr_final", "nlu_done"} <= set(first.timings)


def test_raw_transcripts_are_kept_only_when_the_operator_asks() -> None:
    ledger = Ledger()
    _recording(ledger, keep_raw=True).customer_turn(_understood("202 555 0101"), None)
    assert ledger.turns[0].text == "202 555 0101"


def test_the_customers_sensitive_words_become_compliance_events() -> None:
    ledger = Ledger()
    hit = WordHit("insults", "idiot", "flag", 4, 9)
    understood = _understood("you idiot")
    understood = Understood(understood.heard, understood.text, understood.nlu, None, (hit,))
    _recording(ledger).customer_turn(understood, "confirm_identity")
    event = {"direction": "customer", "category": "insults", "action": "flag"}
    assert ledger.compliance == [(1, event)]


def test_the_calls_compliance_events_are_numbered_in_order_whatever_found_them() -> None:
    """The number is the event's key (`<call_id>:<n>`): a write retried or replayed after a
    database outage stores the event once."""
    ledger = Ledger()
    recording = _recording(ledger)
    said = ComplianceHit("bot", "read_order", "pii", "card number", "mask")
    heard = Understood(
        _understood("you idiot").heard,
        "you idiot",
        None,
        None,
        (WordHit("insults", "idiot", "flag", 4, 9),),
    )
    recording.side_effect(said)
    recording.customer_turn(heard, "read_order")
    recording.side_effect(said)
    assert [seq for seq, _ in ledger.compliance] == [1, 2, 3]
    assert [hit for _, hit in ledger.compliance][1]["category"] == "insults"


def test_greeting_and_reply_latency_are_timed_from_the_line() -> None:
    ledger = Ledger()
    recording = _recording(ledger)
    replies = _sample("outdial_reply_latency_seconds_count", {"campaign": CAMPAIGN})
    recording.bot_turn(PromptOnWire(OPENING, first_frame_at=100.4))
    answer = Heard(_final("yes", start=104.0, end=105.0), ready_at=105.5)
    recording.answer_heard(answer)
    recording.bot_turn(PromptOnWire(Say("Thanks.", "read_order"), first_frame_at=106.0))
    greeting, reply = ledger.turns
    assert greeting.timings == {"first_audio_out": 0.4}
    assert reply.timings == {"first_audio_out": 6.0, "reply_ms": 1000.0, "processing_ms": 500.0}
    assert _sample("outdial_reply_latency_seconds_count", {"campaign": CAMPAIGN}) == replies + 1
    outcome = recording.close(SCRIPT, 9)
    assert outcome.greeting_latency_ms == pytest.approx(400.0)
    assert outcome.turns == 2


def test_each_bot_turn_on_the_line_is_logged_once_by_call_and_seq_without_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The line bench/chaos.py audits the `turns` table against."""
    ledger = Ledger()
    recording = _recording(ledger)
    with caplog.at_level(logging.INFO, logger="agi.call.recording"):
        recording.bot_turn(PromptOnWire(OPENING, first_frame_at=100.4))
        recording.customer_turn(_understood("yes, call me on 415 555 0100"), "read_order")
        recording.fallback_turn("Sorry, something went wrong.")
    logged = [r.getMessage() for r in caplog.records if r.name == "agi.call.recording"]
    bot_seqs = [t.seq for t in ledger.turns if t.speaker == "bot"]
    assert bot_seqs == [1, 3]
    assert logged == [BOT_TURN_LOG % ("call-rec", seq) for seq in bot_seqs]
    assert not any("Northwind" in line or "415" in line for line in logged)


def test_what_the_script_asks_for_reaches_the_recorder() -> None:
    ledger = Ledger()
    recording = _recording(ledger)
    hit = ComplianceHit("customer", "confirm_order", "dispute", "not my debt", "pause")
    for action in (SetVariable("promised_date", "Friday"), OptOut(), hit, PauseLead("x")):
        recording.side_effect(action)
    recording.finishing(End("completed", "opt_out", False))
    outcome = recording.close(SCRIPT, 30.0)
    assert ledger.opt_outs == [CONTEXT] and ledger.compliance == [(1, hit)]
    assert ledger.paused == ["dispute"]
    assert outcome.captured == {"promised_date": "Friday"} and outcome.opted_out
    assert (outcome.outcome, outcome.grade) == ("opt_out", "F")  # the script's grading rules


def test_a_hang_up_before_the_greeting_was_heard_is_early() -> None:
    recording = _recording(Ledger())
    recording.prompt_ended(PromptEnded(OPENING, played=False, at=101.0, last=True))
    assert not recording.reached()
    recording.finishing(End("hangup", "customer_hangup", False))
    recording.customer_hung_up(early=not recording.reached())
    outcome = recording.close(SCRIPT, 1.0)
    assert (outcome.disposition, outcome.hangup_side) == ("early-hangup", "customer")


def test_a_hang_up_after_the_greeting_is_the_scripts_ending() -> None:
    recording = _recording(Ledger())
    recording.prompt_ended(PromptEnded(OPENING, played=True, at=104.0, last=True))
    assert recording.reached()
    recording.finishing(End("hangup", "customer_hangup", False))
    recording.customer_hung_up(early=not recording.reached())
    outcome = recording.close(SCRIPT, 5)
    assert (outcome.disposition, outcome.hangup_side) == ("hangup", "customer")


def test_a_failed_call_is_settled_error_and_counted_where_it_failed() -> None:
    recording = _recording(Ledger())
    failures = _sample("outdial_call_failures_total", {"stage": "speaking"})
    transfers = _sample("outdial_transfers_total", {"campaign": CAMPAIGN, "reason": "bot_error"})
    recording.finishing(End("completed", "confirmed", True))
    recording.failed("speaking")
    recording.handed_over(Transfer("queue:agents", "bot_error", "failed while speaking"))
    outcome = recording.close(SCRIPT, 5)
    assert (outcome.disposition, outcome.failure_stage, outcome.success) == (
        "error",
        "speaking",
        False,
    )
    assert outcome.transfer is not None and outcome.transfer.target == "queue:agents"
    assert _sample("outdial_call_failures_total", {"stage": "speaking"}) == failures + 1
    labels = {"campaign": CAMPAIGN, "reason": "bot_error"}
    assert _sample("outdial_transfers_total", labels) == transfers + 1
