"""Simulated customers with hidden traits, for histories of several weeks (tests and the demo).

Each customer has traits no model sees: a latent risk (which sets the propensity to leave and
colours every call), a response rate per channel and a best hour per channel. They decide what
happens on each contact: whether a call or a message is answered, how an answered call goes,
and what the customer's review (the week the CRM learns whether they stay) finds.
docs/simulation.md states every assumption. Pure and seeded: the same seed is the same world.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

CHANNELS = ("call", "sms", "push")
# Mean response rate per contact at the customer's best hour, by segment.
SEGMENTS: dict[str, dict[str, float]] = {
    "young": {"call": 0.15, "sms": 0.35, "push": 0.45},
    "mid": {"call": 0.35, "sms": 0.35, "push": 0.20},
    "senior": {"call": 0.55, "sms": 0.20, "push": 0.06},
}
ZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles")
OBJECTIONS = ("deny", "complaint", "call_later", "cancel_order")
# How peaked the hour effect is: at `HOUR_SPREAD` hours from the best hour a contact is
# answered at exp(-1/2) of the way between the floor and the peak.
HOUR_SPREAD = 2.5
HOUR_FLOOR = 0.4
FIRST_REVIEW_WEEK = 3


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class HiddenCustomer:
    index: int
    phone: str
    timezone: str
    segment: str
    risk: float  # latent, standard normal
    churn_propensity: float
    affinity: dict[str, float]  # response probability at the best hour
    best_hour: dict[str, int]  # local hour
    review_week: int  # 1-based week of the review
    review_offset_s: float  # when in that week
    churns: bool  # what the review finds
    fields: dict[str, str] = field(default_factory=dict)  # the lead's fields, RFM included

    def response_probability(self, channel: str, local_hour: int) -> float:
        gap = abs(local_hour - self.best_hour[channel])
        gap = min(gap, 24 - gap)
        shape = HOUR_FLOOR + (1 - HOUR_FLOOR) * math.exp(-(gap**2) / (2 * HOUR_SPREAD**2))
        return self.affinity[channel] * shape


def _beta_around(rng: random.Random, mean: float, concentration: float = 8.0) -> float:
    return rng.betavariate(mean * concentration, (1 - mean) * concentration)


def make_customers(count: int, seed: int, weeks: int, start: date) -> list[HiddenCustomer]:
    """`count` customers of world `seed`, reviewed between week 3 and week `weeks`."""
    customers = []
    for index in range(count):
        rng = random.Random(f"customer|{seed}|{index}")
        segment = rng.choice(list(SEGMENTS))
        risk = rng.gauss(0.0, 1.0)
        propensity = _sigmoid(-1.0 + 2.0 * risk)
        days_since = rng.expovariate(1 / (40 * math.exp(0.3 * risk)))
        purchases = 1 + _poisson(rng, 5 * math.exp(-0.2 * risk))
        spent = purchases * rng.lognormvariate(math.log(40), 0.5)
        customers.append(
            HiddenCustomer(
                index=index,
                phone=_number(seed, index),
                timezone=rng.choice(ZONES),
                segment=segment,
                risk=risk,
                churn_propensity=propensity,
                affinity=_affinities(rng, segment, risk),
                best_hour={c: rng.randint(9, 19) for c in CHANNELS},
                review_week=rng.randint(min(FIRST_REVIEW_WEEK, weeks), weeks),
                review_offset_s=rng.uniform(0, 7 * 86400),
                churns=rng.random() < propensity,
                fields={
                    "segment": segment,
                    "customer_name": f"Customer {index}",
                    "order_number": f"S-{seed}-{index}",
                    "item": "a parcel",
                    "address": f"{index + 1} Sim Street",
                    "last_purchase": (start - timedelta(days=days_since)).isoformat(),
                    "purchases": str(purchases),
                    "total_spent": f"{spent:.2f}",
                },
            )
        )
    return customers


def _affinities(rng: random.Random, segment: str, risk: float) -> dict[str, float]:
    """Response rates around the segment's; a customer drifting away picks up less often."""
    drawn = {c: _beta_around(rng, SEGMENTS[segment][c]) for c in CHANNELS}
    drawn["call"] *= math.exp(-0.35 * risk) / math.exp(0.35**2 / 2)  # mean kept
    drawn["call"] = min(drawn["call"], 0.95)
    return drawn


def _number(seed: int, index: int) -> str:
    # One world's people never share a number with another world's.
    area = 200 + (seed * 11 + index // 9000) % 700
    return f"+1{area:03d}555{index % 9000 + 1000:04d}"


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: small means only.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def contact_draw(seed: int, customer: HiddenCustomer, week: int) -> float:
    """The uniform that decides the customer's answer in a week: every policy compared on the
    same world meets the same draw (common random numbers), so only the choice differs."""
    return random.Random(f"contact|{seed}|{customer.index}|{week}").random()


@dataclass(frozen=True)
class Turn:
    intent: str | None  # None: not understood (a no-match)
    speech_s: float
    pause_s: float  # silence before the customer spoke
    agitation: float
    entities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    turns: list[Turn]
    prompt_s: float  # the bot's talking, in all
    disposition: str  # completed or transferred
    outcome: str | None  # the script's outcome; None when transferred

    @property
    def duration_s(self) -> float:
        return self.prompt_s + sum(t.speech_s + t.pause_s for t in self.turns)


def conversation(customer: HiddenCustomer, seed: int, week: int) -> Conversation:
    """How an answered call goes: the riskier the customer, the more objections, repeats,
    misunderstandings, silence and agitation (docs/simulation.md)."""
    rng = random.Random(f"talk|{seed}|{customer.index}|{week}")
    z = customer.risk
    p_object = _sigmoid(-1.6 + 1.1 * z)
    p_repeat = 0.06 * math.exp(0.5 * z)
    p_unclear = 0.10 * math.exp(0.45 * z)
    turns = []
    for _ in range(rng.randint(2, 5)):
        u = rng.random()
        if u < p_object:
            intent: str | None = rng.choice(OBJECTIONS)
        elif u < p_object + p_repeat:
            intent = "repeat"
        elif u < p_object + p_repeat + p_unclear:
            intent = None
        else:
            intent = "affirm"
        turns.append(
            Turn(
                intent=intent,
                speech_s=rng.uniform(0.6, 2.4),
                pause_s=rng.uniform(0.3, 1.0) + 2.0 * _sigmoid(z) * rng.random(),
                agitation=min(1.0, max(0.0, 0.15 + 0.18 * z + rng.gauss(0, 0.12))),
            )
        )
    if rng.random() < 0.03 * math.exp(0.8 * z):
        turns.append(Turn("opt_out", rng.uniform(0.6, 1.5), 0.5, turns[-1].agitation))
    return Conversation(turns, rng.uniform(12, 25), *_ending(turns))


def _ending(turns: list[Turn]) -> tuple[str, str | None]:
    heard = [t.intent for t in turns]
    objections = sum(1 for i in heard if i in OBJECTIONS)
    if "opt_out" in heard:
        return "completed", "opt_out"
    if "cancel_order" in heard:
        return "completed", "cancelled"
    if objections >= 2 or ("complaint" in heard and max(t.agitation for t in turns) > 0.6):
        return "transferred", None
    if "call_later" in heard:
        return "completed", "call_later"
    return "completed", "confirmed"
