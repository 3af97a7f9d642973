"""Channel preference: a Beta posterior of each lead's response rate per channel, the best
posterior mean (or Thompson sampling) among the channels allowed, and the hour of day they
answer best.

The estimate is hierarchical. With no data a channel's rate is its configured default; a
segment's own contacts (leads sharing a field, e.g. `segment: retail`) pull that towards the
segment's rate; the lead's own contacts (every campaign its number was in) pull the segment's
prior towards the lead's. `prior_strength` is how many contacts a prior weighs. Pure.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from store.engagement import ChannelHistory, Tally


@dataclass(frozen=True)
class Beta:
    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def updated(self, tally: Tally) -> Beta:
        return Beta(self.alpha + tally.responses, self.beta + tally.contacts - tally.responses)

    def sample(self, rng: random.Random) -> float:
        return rng.betavariate(self.alpha, self.beta)


def prior(rate: float, strength: float) -> Beta:
    """A Beta with mean `rate` weighing `strength` contacts."""
    rate = min(max(rate, 1e-3), 1 - 1e-3)
    return Beta(rate * strength, (1 - rate) * strength)


def posteriors(
    own: ChannelHistory,
    segment: ChannelHistory | None,
    defaults: Mapping[str, float],
    strength: float,
    channels: Sequence[str],
) -> dict[str, Beta]:
    """Each channel's posterior: default rate -> segment -> the lead's own contacts."""
    out = {}
    for channel in channels:
        base = prior(defaults[channel], strength)
        if segment is not None:
            base = prior(base.updated(segment.totals[channel]).mean, strength)
        out[channel] = base.updated(own.totals[channel])
    return out


@dataclass(frozen=True)
class ChannelChoice:
    channel: str
    means: dict[str, float]  # posterior mean per allowed channel
    draws: dict[str, float]  # the Thompson sample per allowed channel


def choose(
    estimates: Mapping[str, Beta], allowed: Sequence[str], rng: random.Random, *, greedy: bool
) -> ChannelChoice | None:
    """Thompson sampling (or the best mean, `greedy`) among the allowed channels."""
    if not allowed:
        return None
    means = {c: estimates[c].mean for c in allowed}
    draws = {c: means[c] if greedy else estimates[c].sample(rng) for c in allowed}
    best = max(allowed, key=lambda c: (draws[c], means[c]))
    return ChannelChoice(best, means, draws)


def best_hour(
    own: Sequence[Tally],
    segment: Sequence[Tally] | None,
    channel_rate: float,
    strength: float,
    hours: Sequence[int],
) -> int | None:
    """The allowed local hour with the highest estimated response rate: the lead's contacts
    at that hour, shrunk towards the segment's at that hour, shrunk towards the channel's
    overall rate. Ties go to the earliest hour. None when no hour is allowed."""
    if not hours:
        return None
    scores = {}
    for hour in hours:
        base = prior(channel_rate, strength)
        if segment is not None:
            base = prior(base.updated(segment[hour]).mean, strength)
        scores[hour] = base.updated(own[hour]).mean
    return max(hours, key=lambda h: (scores[h], -h))


def seeded_rng(*parts: object) -> random.Random:
    """A generator seeded from the decision's identity: the same call always gets the same
    follow-up, and a replay of the simulator is the same history."""
    return random.Random("|".join(str(p) for p in parts))
