"""Events the live call session feeds into `DialogEngine.handle` (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

from nlu.entities import Entity


@dataclass(frozen=True, slots=True)
class Utterance:
    """A finished customer utterance with the NLU result (`intent` None is a no-match)."""

    text: str
    intent: str | None = None
    intent_confidence: float = 0.0
    entities: tuple[Entity, ...] = ()
    asr_confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str  # one of 0-9 * #


@dataclass(frozen=True, slots=True)
class Silence:
    """No input before the Listen timeout."""

    ms: int = 0


@dataclass(frozen=True, slots=True)
class Unrecognized:
    """The customer spoke, but nothing could be made of it (no word the recogniser trusts):
    the node's no-match path, not silence."""

    ms: int = 0
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class EmotionScore:
    score: float  # agitation in [0, 1]
    # The utterance that produced the score, so a hand-over summary includes it.
    text: str = ""
    intent: str | None = None


@dataclass(frozen=True, slots=True)
class Hangup:
    """The customer hung up."""


Event = Utterance | Unrecognized | Dtmf | Silence | EmotionScore | Hangup
