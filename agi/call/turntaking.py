"""The two turn-taking decisions of a live call, each one replaceable object: when the
caller's turn is over (consulted by hearing) and when the caller's speech stops the bot
(consulted by speaking). The defaults are the fixed rules the call has always used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agi.call.events import CallerSpeech, TurnSoFar
from dialog import Say


class EndOfTurnPolicy(Protocol):
    def turn_over(self, turn: TurnSoFar) -> bool:
        """True to end the utterance under way now, before the ASR's own endpointer does."""
        ...


class BargeInPolicy(Protocol):
    def interrupts(self, prompt: Say, speech: CallerSpeech) -> bool:
        """True when `speech` should stop `prompt` (only interruptible prompts are asked)."""
        ...


class EndpointerSilence:
    """The ASR's endpointer ends every turn after `voice.vad.endpoint_silence_ms` of silence;
    nothing ends one sooner."""

    def turn_over(self, turn: TurnSoFar) -> bool:
        return False


class MinimumSpeech:
    """The caller has talked for the prompt's `barge_in_min_ms`."""

    def interrupts(self, prompt: Say, speech: CallerSpeech) -> bool:
        return speech.speech_ms >= prompt.barge_in_min_ms


@dataclass
class TurnTaking:
    """One call's turn-taking decisions (they may keep per-call state)."""

    end_of_turn: EndOfTurnPolicy = field(default_factory=EndpointerSilence)
    barge_in: BargeInPolicy = field(default_factory=MinimumSpeech)
