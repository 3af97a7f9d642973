"""Who a call is to, how it ended, and where its side effects go: the types every stage of
the live call and the call service share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agi import metrics
from dialog import ComplianceHit, Script, Transfer
from store.turns import TurnRecord

# The session's own dispositions beyond the script's: a bot failure (retried later) and a
# customer who hung up during the opening identification (retried too: never really reached).
ERROR_DISPOSITION = "error"
EARLY_HANGUP_DISPOSITION = "early-hangup"


@dataclass(frozen=True)
class CallContext:
    """Who is being called, from the dialer's records (numbers never reach the logs)."""

    call_id: str
    campaign: str | None
    campaign_id: int | None
    script_name: str | None
    lead_id: int | None
    phone_e164: str | None
    timezone: str | None
    variables: dict[str, Any]
    amd_status: str | None = None
    # Where the PBX records the call (MIXMONITOR_FILENAME), when the campaign records.
    recording_path: str | None = None


@dataclass
class CallOutcome:
    # completed, transferred, abandoned, machine, failed, error, early-hangup
    disposition: str = "completed"
    outcome: str | None = None
    success: bool = False
    transfer: Transfer | None = None
    last_intent: str | None = None
    agitation: float = 0.0
    hangup_side: str = "bot"
    greeting_latency_ms: float | None = None
    turns: int = 0
    opted_out: bool = False
    # Where the call failed (a label of outdial_call_failures_total), None if it did not.
    failure_stage: str | None = None
    agitation_peak: float = 0.0
    # The lead's grade from the script's `grading:` rules, and what the call captured
    # (a promised date, an amount) for the follow-up message.
    grade: str | None = None
    grade_reason: str | None = None
    captured: dict[str, str] = field(default_factory=dict)


@dataclass
class CallRecorder:
    """Writes the call's side effects: turns, compliance events, DNC entries."""

    write_turn: Callable[[TurnRecord], None]
    # The call's n-th compliance event (from 1), and what it is.
    record_compliance: Callable[[CallContext, int, ComplianceHit | dict[str, Any]], None]
    opt_out: Callable[[CallContext], None]
    # A dispute in a collections script: stop calling the lead in this campaign, tell the CRM.
    pause_lead: Callable[[CallContext, str], None]


def fallback_transfer(script: Script, stage: str) -> Transfer | None:
    """The hand-over to people a failed call gets, when its script names one (`on_error`)."""
    on_error = script.on_error
    if on_error.target is None:
        return None
    summary = f"script {script.name}; reason: {on_error.reason}; failed while {stage}"
    return Transfer(on_error.target, on_error.reason, summary)


def failed_outcome(script: Script | None, stage: str, **facts: Any) -> CallOutcome:
    """A call that failed before a session could speak: counted, settled `error` (retried),
    and handed to people when the script has someone to take it."""
    metrics.CALL_FAILURES.labels(stage).inc()
    transfer = fallback_transfer(script, stage) if script is not None else None
    return CallOutcome(
        disposition=ERROR_DISPOSITION, failure_stage=stage, transfer=transfer, **facts
    )
