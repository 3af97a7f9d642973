"""Adaptive end of turn: how much trailing silence ends the caller's turn, frame by frame.

A fixed endpoint waits as long after a complete "yes" as after "I'd like... um". `EndOfTurn`
waits `complete_silence_ms` once what was heard is a complete answer to the current question
(a grammar phrase, an intent above threshold: `note_completeness`), `incomplete_silence_ms`
otherwise, and `max_silence_ms` (the cap) for a caller who already paused mid-answer and went
on. A caller whose pitch before the pause holds the turn (`note_holding`, voice/holding.py)
gets the cap too, even after a complete answer. Time the process stood still (`forgive`) is no
silence: the caller's frames of that time are still on their way. Time is passed in, so the
policy is pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

from voice.audio import FRAME_S
from voice.settings import EndOfTurnSettings

# Float tolerance when comparing accumulated frame times with thresholds.
_EPS_S = 1e-6


@dataclass(frozen=True)
class Completeness:
    """Whether the words heard up to `at` (a partial or final ASR result) answer the question."""

    complete: bool
    at: float


def intent_completeness(
    confidence: float | None, settings: EndOfTurnSettings, at: float
) -> Completeness:
    """Completeness from the intent classifier's confidence on the text heard so far."""
    return Completeness(
        complete=confidence is not None and confidence >= settings.intent_threshold, at=at
    )


@dataclass(frozen=True)
class Holding:
    """Whether the speech up to `at` (its last voiced frame) sounds unfinished (voice/holding)."""

    holding: bool
    at: float


class EndOfTurn:
    """Trailing-silence rule of one caller turn.

    `begin` at the first voiced frame, then every frame's voicing (`on_frame`) and, when the
    far end sends nothing in silence, the clock (`on_time`); both return True once the turn is
    over. A completeness signal applies only while no speech came after the words it judged.
    """

    def __init__(self, settings: EndOfTurnSettings) -> None:
        self._complete_s = settings.complete_silence_ms / 1000
        self._incomplete_s = settings.incomplete_silence_ms / 1000
        self._max_s = settings.max_silence_ms / 1000
        self._hesitation_s = settings.hesitation_gap_ms / 1000
        self._last_voiced = 0.0
        self._forgiven_s = 0.0
        self._hesitant = False
        self._completeness: Completeness | None = None
        self._holding: Holding | None = None

    def begin(self, first_voiced: float) -> None:
        self._last_voiced = first_voiced
        self._forgiven_s = 0.0
        self._hesitant = False
        self._completeness = None
        self._holding = None

    @property
    def quiet_since(self) -> float:
        """Where the trailing silence starts counting: the last voiced frame, moved on by the
        time forgiven since."""
        return self._last_voiced + self._forgiven_s

    def forgive(self, seconds: float) -> None:
        """The process stood still for `seconds` of this silence (an event-loop stall): the
        frames of that time are read late, in a burst, so their absence so far is no pause."""
        self._forgiven_s += seconds

    @property
    def hesitant(self) -> bool:
        """The caller paused mid-turn and went on."""
        return self._hesitant

    @property
    def silence_needed_s(self) -> float:
        """Trailing silence that ends the turn now."""
        # A caller whose pitch holds the turn is about to go on: as long as a hesitant one.
        if self._holds():
            return self._max_s
        if self._complete():
            return self._complete_s
        return self._max_s if self._hesitant else self._incomplete_s

    def note_completeness(self, completeness: Completeness) -> None:
        self._completeness = completeness

    def note_holding(self, holding: Holding) -> None:
        self._holding = holding

    def on_frame(self, voiced: bool, now: float) -> bool:
        if voiced:
            # The frame at `now` covers (now - 20 ms, now]: the gap is what lies between.
            if now - FRAME_S - self.quiet_since >= self._hesitation_s - _EPS_S:
                self._hesitant = True
            self._last_voiced = now
            self._forgiven_s = 0.0
            return False
        return self.on_time(now)

    def on_time(self, now: float) -> bool:
        return now - self.quiet_since >= self.silence_needed_s - _EPS_S

    def _complete(self) -> bool:
        heard = self._completeness
        # A judgement of words the caller has since added to is stale.
        return heard is not None and heard.complete and heard.at >= self._last_voiced - _EPS_S

    def _holds(self) -> bool:
        held = self._holding
        return held is not None and held.holding and held.at >= self._last_voiced - _EPS_S
