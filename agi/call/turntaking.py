"""The two turn-taking decisions of a live call, each one replaceable object: when the
caller's turn is over (consulted by hearing) and when the caller's speech stops the bot (fed
every heard frame by hearing, told each prompt's floor by speaking).

The defaults are voice/'s: the ASR's adaptive endpointer (voice/turn.py) ends the turn, and
the echo-aware detector (voice/bargein.py) decides barge-in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agi.call.events import TurnSoFar
from voice.bargein import BargeIn
from voice.settings import BargeInSettings
from voice.silero import SileroFrames


class EndOfTurnPolicy(Protocol):
    def turn_over(self, turn: TurnSoFar) -> bool:
        """True to end the utterance under way now, before the ASR's own endpointer does."""
        ...


class BargeInPolicy(Protocol):
    def prompt(self, floor_ms: int | None) -> None:
        """A prompt became current: `floor_ms` of the caller's speech interrupts it (None:
        nothing does, a legal notice)."""
        ...

    def on_frame(self, heard: bytes, played: bytes | None) -> bool:
        """One heard frame and the frame the bot played meanwhile (None: nothing): True on the
        frame the caller's speech stops the prompt."""
        ...

    @property
    def heard_echo(self) -> bool | None:
        """The last frame fed: True when it can only be the bot's echo, False when it was the
        caller's speech over the bot's audio, None when the bot's audio could not be in it
        (hearing drops an utterance made only of echo)."""
        ...


class AsrEndOfTurn:
    """The ASR's endpointer alone ends the turn: it already waits briefly after a complete
    answer and longer after a hesitation (voice/turn.py); nothing ends one sooner."""

    def turn_over(self, turn: TurnSoFar) -> bool:
        return False


def echo_aware_barge_in(settings: BargeInSettings) -> BargeInPolicy:
    """Silero VAD plus an echo-energy check against what was just played (voice/bargein.py)."""
    return BargeIn(settings, SileroFrames())


@dataclass
class TurnTaking:
    """One call's turn-taking decisions (they may keep per-call state)."""

    end_of_turn: EndOfTurnPolicy = field(default_factory=AsrEndOfTurn)
    barge_in: BargeInPolicy | None = None  # None: `echo_aware_barge_in` with the pack's settings
