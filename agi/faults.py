"""Fault points: named places in the call path where a test can make the real code fail.

The failure path of a live call (apology, fallback, `error` disposition, retry) must be proven
end to end, and a healthy stack never fails on cue. So the call path calls `hit(point, ...)`
at a few places, and a test arms a point with `arm()`; the code that runs is the daemon's own,
only the raise is injected. Nothing in the configuration, the environment or the CLI can arm
a point: in production `hit` finds nothing armed and returns.

Points (context: the call's `campaign` and the dialog `node`):
- `PROMPT`: a bot prompt is playing (its first frame is on the wire); raised on the session's
  own loop.
- `SYNTHESIS`: a prompt's audio is being made; raised by its producer after the first audio.
- `EMOTION`: the prosody features of a customer utterance are being computed (CPU executor).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PROMPT = "prompt"
SYNTHESIS = "synthesis"
EMOTION = "emotion"
POINTS = frozenset({PROMPT, SYNTHESIS, EMOTION})


class InjectedFault(RuntimeError):
    """The exception an armed fault point raises."""


@dataclass
class _Armed:
    node: str | None  # only at this dialog node (None: anywhere)
    campaign: str | None  # only in calls of this campaign (None: any)
    times: int | None  # how many more hits raise (None: every one)
    hits: int = 0

    def matches(self, node: str | None, campaign: str | None) -> bool:
        return self.node in (None, node) and self.campaign in (None, campaign)


_armed: dict[str, _Armed] = {}


def hit(point: str, *, node: str | None = None, campaign: str | None = None) -> None:
    """Raise InjectedFault if a test armed `point` (for this node and campaign); otherwise
    do nothing."""
    armed = _armed.get(point)
    if armed is None or not armed.matches(node, campaign):
        return
    if armed.times is not None:
        if armed.times <= 0:
            return
        armed.times -= 1
    armed.hits += 1
    raise InjectedFault(f"fault injected at {point} (campaign {campaign}, node {node})")


@contextmanager
def armed(
    point: str, *, node: str | None = None, campaign: str | None = None, times: int | None = 1
) -> Iterator[_Armed]:
    """Arm `point` for the `with` block (tests only); yields the record of its hits."""
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; known: {sorted(POINTS)}")
    record = _Armed(node, campaign, times)
    _armed[point] = record
    try:
        yield record
    finally:
        _armed.pop(point, None)
