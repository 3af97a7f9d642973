"""Conversation timing as the caller hears it: figures from frame times on the customer's side
of the wire, on the customer's own clock (pbxsim's `time.monotonic()`), never the daemon's.

Inputs are what pbxsim records for a call: the arrival time and audio of every bot frame, and
the customer's utterances (`Said`: when their first and last voiced 20 ms went out). A bot frame
is audible when its RMS is at least 1 % of full scale. Utterances are grouped by their scenario
`mark`:

- `hello`: the customer's greeting; `greeting` is its end -> the first audible bot frame after.
- `barge`: spoken over a prompt; `bargein_cut` is its first voiced frame -> the last audible
  bot frame before a gap of at least 200 ms (raw, nothing subtracted).
- `pause`: the first part of a hesitant answer; the utterance after it is the rest. The bot
  cuts in when an audible frame arrives after the first part's end and before the rest's end.
- every utterance the bot was audible during is `talked_over` (it may rightly stop the bot).
- any other mark: an answer; `response` is its last voiced frame -> the first audible bot
  frame after it, when the bot was silent while the customer spoke (for a hesitant answer,
  from the start of its first part).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pbxsim.audiosocket import BotFrame
from pbxsim.records import CallRecord

AUDIBLE_RMS = 0.01 * 32768  # 1 % of full scale
CUT_GAP_S = 0.2  # a bot silence this long ends what it was saying

HELLO, BARGE, PAUSE = "hello", "barge", "pause"


def audible_times(frames: Iterable[BotFrame]) -> list[float]:
    """Arrival times of the audible bot frames, in order."""
    times = []
    for frame in frames:
        samples = np.frombuffer(frame.payload[: len(frame.payload) // 2 * 2], "<i2")
        if samples.size and np.sqrt(np.mean(samples.astype(np.float64) ** 2)) >= AUDIBLE_RMS:
            times.append(frame.t)
    return sorted(times)


def first_audible_after(audible: Sequence[float], t: float) -> float | None:
    index = bisect.bisect_right(audible, t)
    return audible[index] if index < len(audible) else None


def audible_between(audible: Sequence[float], start: float, end: float) -> bool:
    """Any audible bot frame in (start, end]?"""
    index = bisect.bisect_right(audible, start)
    return index < len(audible) and audible[index] <= end


def response_s(audible: Sequence[float], last_voiced: float) -> float | None:
    """The customer's last voiced frame -> the first audible bot frame after it."""
    after = first_audible_after(audible, last_voiced)
    return None if after is None else after - last_voiced


def bargein_cut_s(audible: Sequence[float], first_voiced: float) -> float | None:
    """The first voiced frame of a customer talking over the bot -> the last audible bot frame
    before a gap of at least CUT_GAP_S. None when the bot was not talking then (its last
    audible frame was more than CUT_GAP_S before, or it had no audible frame after)."""
    index = bisect.bisect_left(audible, first_voiced)
    if index == 0 or index == len(audible) or first_voiced - audible[index - 1] >= CUT_GAP_S:
        return None
    if audible[index] - audible[index - 1] >= CUT_GAP_S:
        return None  # the bot went quiet just before the customer started
    while index + 1 < len(audible) and audible[index + 1] - audible[index] < CUT_GAP_S:
        index += 1
    return audible[index] - first_voiced


@dataclass
class CallTimings:
    """One call's figures in seconds; `responses` by the answer's mark."""

    greeting: list[float] = field(default_factory=list)
    responses: dict[str, list[float]] = field(default_factory=dict)
    bargein_cuts: list[float] = field(default_factory=list)
    hesitant_turns: int = 0
    false_cutins: int = 0
    prompts: int = 0  # the bot's utterances (audible runs split by CUT_GAP_S of silence)
    # The customer's utterances the bot was audible during: each may rightly stop the bot
    # (e.g. an answer begun in a pause where the bot's synthesis fell behind).
    talked_over: int = 0


def prompts(audible: Sequence[float]) -> int:
    """How many times the bot started talking (audible runs split by CUT_GAP_S)."""
    return sum(1 for i, t in enumerate(audible) if i == 0 or t - audible[i - 1] >= CUT_GAP_S)


def measure(record: CallRecord) -> CallTimings:
    """The call's figures from what pbxsim saw on the wire."""
    audible = audible_times(record.bot_frames)
    out = CallTimings(prompts=prompts(audible))
    pause: tuple[float, float] | None = None  # a hesitant answer's first part, heard so far
    for utterance in record.said:
        first, last = utterance.first_voiced, utterance.last_voiced
        if first is None or last is None:
            continue  # nothing of it was voiced (or the call ended before it)
        out.talked_over += audible_between(audible, _just_before(first), last)
        if utterance.mark == PAUSE:
            pause = (first, last)
            continue
        began = first
        if pause is not None:
            out.hesitant_turns += 1
            out.false_cutins += audible_between(audible, pause[1], last)
            began, pause = pause[0], None
        if utterance.mark == HELLO:
            _add(out.greeting, response_s(audible, last))
        elif utterance.mark == BARGE:
            _add(out.bargein_cuts, bargein_cut_s(audible, first))
        elif utterance.mark is not None and not audible_between(audible, _just_before(began), last):
            _add(out.responses.setdefault(utterance.mark, []), response_s(audible, last))
    return out


def _just_before(t: float) -> float:
    return float(np.nextafter(t, -np.inf))


def _add(into: list[float], value: float | None) -> None:
    if value is not None:
        into.append(value)
