"""From what AMI said about a call to its disposition, and from a disposition to what comes next.

Asterisk's `OriginateResponse` `Reason` is the last control frame the dial saw (4 answer,
5 busy, 3 ringing until the timeout, 8 congestion, 0 the channel could not be created);
`Hangup` `Cause` is the Q.850 cause. Seen on a real Asterisk: see asterisk-captures/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from dialer.settings import DialerSettings


class Disposition(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CONGESTION = "congestion"
    FAILED = "failed"
    MACHINE = "machine"
    COMPLETED = "completed"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    ERROR = "error"
    # Answered, then hung up during AMD or the bot's opening: never really reached.
    EARLY_HANGUP = "early-hangup"


# Calls a person picked up: the denominator of the abandoned rate and the answer rate.
HUMAN_ANSWERED = frozenset(
    {Disposition.ANSWERED, Disposition.COMPLETED, Disposition.TRANSFERRED, Disposition.ABANDONED}
)
# An early hang-up was answered, by a person or a machine nobody knows: it counts for the
# answer rate, but never enlarges the abandoned rate's denominator.
ANSWERED = HUMAN_ANSWERED | {Disposition.MACHINE, Disposition.EARLY_HANGUP}
# What the live-call session may write into `calls.disposition` (contracts).
SESSION_DISPOSITIONS = frozenset(
    {
        Disposition.COMPLETED,
        Disposition.TRANSFERRED,
        Disposition.ABANDONED,
        Disposition.MACHINE,
        Disposition.FAILED,
        Disposition.ERROR,
        Disposition.EARLY_HANGUP,
    }
)

REASON_ANSWERED = 4
_REASONS = {
    0: Disposition.FAILED,  # the channel could not be created or the number does not exist
    1: Disposition.NO_ANSWER,  # the far end hung up before answering
    2: Disposition.NO_ANSWER,
    3: Disposition.NO_ANSWER,  # rang until the Originate timeout
    REASON_ANSWERED: Disposition.ANSWERED,
    5: Disposition.BUSY,
    8: Disposition.CONGESTION,
}

_CAUSES = {
    1: Disposition.FAILED,  # unallocated number
    3: Disposition.FAILED,  # no route to destination
    16: Disposition.ANSWERED,  # normal clearing
    17: Disposition.BUSY,
    18: Disposition.NO_ANSWER,  # no user responding
    19: Disposition.NO_ANSWER,  # user alerting, no answer
    21: Disposition.FAILED,  # call rejected
    22: Disposition.FAILED,  # number changed
    27: Disposition.FAILED,  # destination out of order
    28: Disposition.FAILED,  # invalid number format
    34: Disposition.CONGESTION,
    38: Disposition.CONGESTION,  # network out of order
    41: Disposition.CONGESTION,  # temporary failure
    42: Disposition.CONGESTION,  # switching equipment congestion
}


def from_originate_reason(reason: int) -> Disposition:
    return _REASONS.get(reason, Disposition.FAILED)


def from_hangup_cause(cause: int, *, was_up: bool) -> Disposition:
    """The disposition of a call whose only known end is its Hangup event."""
    if was_up:
        return Disposition.ANSWERED
    return _CAUSES.get(cause, Disposition.FAILED)


def from_amd(status: str | None, settings: DialerSettings) -> Disposition:
    """An answered call that no session reported on: AMD's verdict decides person or machine."""
    verdict = (status or "").upper()
    if verdict == "HANGUP":  # AMD() saw the customer hang up before it could decide
        return Disposition.EARLY_HANGUP
    if verdict == "MACHINE" or (verdict == "NOTSURE" and settings.amd_notsure == "machine"):
        return Disposition.MACHINE
    return Disposition.ANSWERED


def parse_session_disposition(value: str | None) -> Disposition | None:
    """The `calls.disposition` the session wrote, if it is one it may write."""
    if value is None:
        return None
    try:
        disposition = Disposition(value)
    except ValueError:
        return None
    return disposition if disposition in SESSION_DISPOSITIONS else None


@dataclass(frozen=True)
class NextStep:
    """What happens to the lead: done, or pending again from `retry_at`."""

    done: bool
    retry_at: datetime | None = None


def next_step(disposition: Disposition, ended_at: datetime, settings: DialerSettings) -> NextStep:
    delays = settings.retry
    delay: float | None
    match disposition:
        case Disposition.BUSY:
            delay = delays.busy_s
        case Disposition.NO_ANSWER:
            delay = delays.no_answer_s
        case Disposition.CONGESTION:
            delay = delays.congestion_s
        case Disposition.ERROR:
            delay = delays.error_s
        case Disposition.EARLY_HANGUP:
            delay = delays.early_hangup_s
        case Disposition.MACHINE:
            delay = delays.machine_s if settings.machine == "retry" else None
        case _:
            # A person was reached (or the number does not work): never dial it again.
            delay = None
    if delay is None:
        return NextStep(done=True)
    return NextStep(done=False, retry_at=ended_at + timedelta(seconds=delay))
