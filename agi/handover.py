"""What a call hands back to the dialplan, shared by the FastAGI and the EAGI-bridge paths."""

from __future__ import annotations

from dataclasses import dataclass

from agi.call.outcome import CallContext, CallOutcome
from agi.runtime import ScriptRuntime


@dataclass(frozen=True)
class Admitted:
    context: CallContext
    runtime: ScriptRuntime


@dataclass(frozen=True)
class Declined:
    """A call the bot will not talk to: with a `refusal` the reason goes to the Asterisk log
    and the dialplan goes on; without one the channel gets the outcome and is hung up."""

    outcome: CallOutcome
    refusal: str | None = None


def refusal_message(reason: str) -> str:
    """The Asterisk log line for a call outdial will not take."""
    return f"outdial: {reason}"


def outcome_variables(outcome: CallOutcome) -> dict[str, str]:
    """The channel variables a finished call leaves for the dialplan (and the agent)."""
    transfer = outcome.transfer
    if transfer is None:
        return {"OUTDIAL_RESULT": outcome.disposition}
    return {
        "OUTDIAL_TRANSFER_REASON": transfer.reason,
        "OUTDIAL_LAST_INTENT": outcome.last_intent or "",
        "OUTDIAL_AGITATION": f"{outcome.agitation:.2f}",
        "OUTDIAL_SUMMARY": transfer.summary[:200],
    }
