"""How many calls may start now: channel caps, calls-per-second buckets, progressive pacing."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


class TokenBucket:
    """Calls-per-second cap: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # A short burst keeps the per-second average while the loop ticks at its own pace.
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.burst
        self._stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens)

    def take(self, n: int, now: float) -> None:
        self._refill(now)
        if n > self._tokens + 1e-9:
            raise ValueError(f"only {self._tokens:.2f} tokens, {n} asked")
        self._tokens -= n

    def seconds_until(self, n: int, now: float) -> float:
        self._refill(now)
        return max(0.0, (n - self._tokens) / self.rate)


class AnswerRate:
    """Share of recent settled attempts that were answered, with a neutral start."""

    def __init__(self, window: int, prior: float = 0.5, prior_weight: int = 10) -> None:
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._prior = prior
        self._prior_weight = prior_weight

    def add(self, answered: bool) -> None:
        self._outcomes.append(answered)

    @property
    def value(self) -> float:
        # The prior fades as real outcomes arrive, so the first calls do not swing the pace.
        answered = sum(self._outcomes)
        return (answered + self._prior * self._prior_weight) / (
            len(self._outcomes) + self._prior_weight
        )


@dataclass(frozen=True)
class PacingInput:
    free_channels: int  # the smallest headroom of the global, campaign and trunk caps
    free_sessions: int  # call sessions that could take an answered call now
    ringing: int  # originated, not yet answered or settled
    answer_rate: float
    abandoned_rate: float | None  # rolling 30 days, None before any answered call
    abandoned_limit: float
    progressive: bool


# Above this share of the limit the pacer stops over-dialling.
_ABANDON_MARGIN = 0.5
_MIN_RATE = 0.05


def calls_to_start(p: PacingInput) -> int:
    """New Originates allowed now.

    Every ringing call may be answered, and an answered call that no session takes is abandoned.
    Strict pacing dials one call per free session. Progressive pacing expects only
    `answer_rate` of the ringing calls to answer and dials that much more, until the
    campaign's abandoned rate reaches half its limit; then it falls back to strict.
    """
    if p.free_channels <= 0 or p.free_sessions <= 0:
        return 0
    overdial = p.progressive and (
        p.abandoned_rate is None or p.abandoned_rate < p.abandoned_limit * _ABANDON_MARGIN
    )
    rate = max(_MIN_RATE, min(1.0, p.answer_rate)) if overdial else 1.0
    ringing_allowed = math.floor(p.free_sessions / rate)
    return max(0, min(p.free_channels, ringing_allowed - p.ringing))
