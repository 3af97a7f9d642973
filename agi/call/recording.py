"""Recording: the call's record. Every turn as heard and said (redacted unless the operator
keeps raw transcripts), latency and outcome metrics, the side effects the script asks for
(opt-out, compliance events, a paused lead), and the outcome the call service settles."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from agi import metrics
from agi.call.events import Heard, PromptEnded, PromptOnWire, Understood, speech_ms
from agi.call.outcome import (
    EARLY_HANGUP_DISPOSITION,
    ERROR_DISPOSITION,
    CallContext,
    CallOutcome,
    CallRecorder,
)
from compliance.redact import redact
from dialog import ComplianceHit, End, OptOut, PauseLead, Script, SetVariable, Transfer
from dialog.grading import CallFacts, grade_call
from store.turns import TurnRecord
from voice.asr import AsrFinal

SideEffect = SetVariable | OptOut | ComplianceHit | PauseLead
logger = logging.getLogger(__name__)
# One INFO line per bot turn heard on the line (call id and seq, no text, no number): what an
# audit (bench/chaos.py) compares with the `turns` table.
BOT_TURN_LOG = "bot turn on wire: call %s seq %d"


@dataclass
class _PendingReply:
    """Timing of the customer turn whose reply has not been heard yet."""

    speech_end: float
    ready_at: float


class Recording:
    def __init__(
        self,
        context: CallContext,
        recorder: CallRecorder,
        *,
        keep_raw: bool,
        variant: str,
        connected_at: float,
    ) -> None:
        self._context = context
        self._recorder = recorder
        self._keep_raw = keep_raw
        self._variant = variant
        self._connected_at = connected_at
        self._campaign = context.campaign or "none"
        self._outcome = CallOutcome()
        self._seq = 0
        self._compliance_seq = 0  # the call's compliance events, numbered like its turns
        self._pending_reply: _PendingReply | None = None
        self._barged_in = False
        self._customer_heard = False  # a customer turn (speech or DTMF) was logged
        self._greeting_done = False  # the opening identification was played through
        self._intents: set[str] = set()
        self._entities: set[str] = set()

    # --- what was heard and said ------------------------------------------------------------

    def answer_heard(self, heard: Heard) -> None:
        """An answer the bot will reply to: its reply's latency is timed from here."""
        final = heard.final
        self._pending_reply = _PendingReply(final.speech_end, heard.ready_at)
        metrics.ASR_RTF.observe(
            max(0.0, final.final_at - final.endpoint_at)
            / max(0.02, final.speech_end - final.speech_start)
        )

    def customer_turn(self, understood: Understood, node: str | None) -> None:
        nlu, reading = understood.nlu, understood.reading
        for hit in understood.word_hits:
            self._compliance(
                {"direction": "customer", "category": hit.category, "action": hit.action}
            )
            metrics.COMPLIANCE_HITS.labels(hit.category, "customer").inc()
        outcome = self._outcome
        if reading is not None:
            outcome.agitation = reading.score
            outcome.agitation_peak = max(outcome.agitation_peak, reading.score)
            metrics.AGITATION.observe(reading.score)
        if nlu is not None:
            outcome.last_intent = nlu.intent or outcome.last_intent
            if nlu.intent:
                self._intents.add(nlu.intent)
            self._entities.update(e.label for e in nlu.entities)
        self._log_customer(
            understood.heard.final,
            node,
            text=understood.text,
            intent=nlu.intent if nlu else None,
            intent_confidence=nlu.confidence if nlu else None,
            entities={"items": [e.to_dict() for e in nlu.entities]} if nlu else {},
            emotion=dict(reading.z) if reading else {},
            agitation=reading.score if reading else None,
        )

    def unheard_turn(self, final: AsrFinal, node: str | None, text: str) -> None:
        """An utterance cut short by the hang-up: logged, never acted on."""
        self._log_customer(final, node, text=text)

    def dtmf_turn(self, digit: str, node: str | None) -> None:
        self._customer_heard = True
        self._log_turn("customer", dtmf=digit, node=node)

    def barged_in(self) -> None:
        self._barged_in = True

    def bot_turn(self, on_wire: PromptOnWire) -> None:
        first = on_wire.first_frame_at
        timings = {"first_audio_out": round(first - self._connected_at, 4)}
        if self._outcome.greeting_latency_ms is None:
            latency = first - self._connected_at
            self._outcome.greeting_latency_ms = latency * 1000
            metrics.GREETING_LATENCY.labels(self._campaign).observe(latency)
        elif self._pending_reply is not None:
            pending, self._pending_reply = self._pending_reply, None
            reply, processing = first - pending.speech_end, first - pending.ready_at
            metrics.REPLY_LATENCY.labels(self._campaign).observe(reply)
            metrics.PROCESSING_LATENCY.labels(self._campaign).observe(processing)
            timings |= {
                "reply_ms": round(reply * 1000, 1),
                "processing_ms": round(processing * 1000, 1),
            }
        say = on_wire.say
        self._log_turn("bot", text=say.text, node=say.node, timings=timings)

    def prompt_ended(self, ended: PromptEnded) -> None:
        if ended.say.node == "identification" and ended.played:
            self._greeting_done = True  # played through, not cut off by a hang-up

    def fallback_turn(self, text: str) -> None:
        self._log_turn("bot", text=text, node="on_error")

    # --- what the script asked for ----------------------------------------------------------

    def side_effect(self, action: SideEffect) -> None:
        match action:
            case SetVariable(name=name, value=value):
                self._outcome.captured[name] = value
            case OptOut():
                self._outcome.opted_out = True
                self._recorder.opt_out(self._context)
                metrics.COMPLIANCE_HITS.labels("opt_out", "customer").inc()
            case ComplianceHit():
                self._compliance(action)
                metrics.COMPLIANCE_HITS.labels(action.category, action.source).inc()
            case PauseLead():
                self._recorder.pause_lead(self._context, action.reason)

    def finishing(self, action: Transfer | End) -> None:
        outcome = self._outcome
        if isinstance(action, Transfer):
            outcome.disposition = "transferred"
            outcome.transfer = action
            metrics.TRANSFERS.labels(self._campaign, action.reason).inc()
        else:
            outcome.disposition = action.disposition
            outcome.outcome = action.outcome
            outcome.success = action.success

    # --- how the call ended -----------------------------------------------------------------

    def reached(self) -> bool:
        """The customer heard who called, or said something: a hang-up now is not early."""
        return self._greeting_done or self._customer_heard

    def customer_hung_up(self, early: bool) -> None:
        self._outcome.hangup_side = "customer"
        if early:  # gone before hearing who called: not reached, so not done
            self._outcome.disposition = EARLY_HANGUP_DISPOSITION

    def failed(self, stage: str) -> None:
        """Settled `error`: the lead is called again later."""
        metrics.CALL_FAILURES.labels(stage).inc()
        outcome = self._outcome
        outcome.disposition, outcome.failure_stage = ERROR_DISPOSITION, stage
        outcome.outcome, outcome.success, outcome.transfer = None, False, None

    def handed_over(self, transfer: Transfer) -> None:
        self._outcome.transfer = transfer
        metrics.TRANSFERS.labels(self._campaign, transfer.reason).inc()

    def close(self, script: Script, duration_s: float) -> CallOutcome:
        """The outcome, graded by the script's rules on what this call heard."""
        outcome = self._outcome
        facts = CallFacts(
            outcome=outcome.outcome,
            disposition=outcome.disposition,
            success=outcome.success,
            intents=frozenset(self._intents),
            entities=frozenset(self._entities),
            agitation_peak=outcome.agitation_peak,
            duration_s=duration_s,
        )
        result = grade_call(script.grading, facts)
        if result is not None:
            outcome.grade, outcome.grade_reason = result.grade, result.reason
            metrics.GRADES.labels(script.name, self._variant, result.grade).inc()
        return outcome

    # --- rows -------------------------------------------------------------------------------

    def _compliance(self, hit: ComplianceHit | dict[str, Any]) -> None:
        # The number makes the event's key: a write retried or replayed stores it once.
        self._compliance_seq += 1
        self._recorder.record_compliance(self._context, self._compliance_seq, hit)

    def _log_turn(self, speaker: str, *, text: str = "", node: str | None, **extra: Any) -> None:
        self._seq += 1
        self._outcome.turns = self._seq
        stored = text if self._keep_raw else redact(text).text
        self._recorder.write_turn(
            TurnRecord(
                call_id=self._context.call_id,
                seq=self._seq,
                speaker=speaker,  # type: ignore[arg-type]
                node=node,
                text=stored,
                **extra,
            )
        )
        if speaker == "bot":
            logger.info(BOT_TURN_LOG, self._context.call_id, self._seq)

    def _log_customer(self, final: AsrFinal, node: str | None, *, text: str, **extra: Any) -> None:
        self._customer_heard = True
        barge_in, self._barged_in = self._barged_in, False
        timings = {
            "speech_start": final.speech_start,
            "speech_end": final.speech_end,
            "endpoint": final.endpoint_at,
            "asr_final": final.final_at,
            "nlu_done": time.monotonic(),
        }
        self._log_turn(
            "customer",
            text=text,
            node=node,
            **extra,
            # Nothing kept: what the recogniser thought of what it heard.
            asr_confidence=final.confidence if final.words else final.raw_confidence,
            barge_in=barge_in,
            timings={k: round(v - self._connected_at, 4) for k, v in timings.items()}
            | {"speech_ms": speech_ms(final)},
        )
