"""What the stages of a live call tell each other (agi/session.py routes them).

hearing -> speaking: a barge-in (hearing feeds every frame to the barge-in decision);
hearing -> understanding: `Heard` (an utterance to act on), and `NoInput` to deciding;
understanding -> recording and deciding: `Understood`;
speaking -> hearing, recording and the session: `PromptOnWire`, `PromptEnded`, `BargedIn`;
speaking -> hearing and deciding: `Floor`, what the bot is saying (hearing defers answers
behind legal notices, ignores a half-duplex line while the bot talks and runs the no-input
clock only while the bot is silent; a no-match is answered only while the bot is silent).
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.words import WordHit
from dialog import Say
from emotion.agitation import AgitationReading
from nlu.classifier import NluResult
from voice.asr import AsrFinal


@dataclass(frozen=True)
class Floor:
    """Who has the floor: the prompt on the line (None when the bot is silent) and whether
    anything is still queued to be said."""

    prompt: Say | None
    queued: bool

    @property
    def bot_silent(self) -> bool:
        return self.prompt is None and not self.queued

    @property
    def holds_answers(self) -> bool:
        """A prompt that may not be interrupted (a legal notice) is playing: what the caller
        says meanwhile is answered once it has been played through."""
        return self.prompt is not None and not self.prompt.interruptible


@dataclass(frozen=True)
class TurnSoFar:
    """The caller's utterance under way, as the end-of-turn decision sees it."""

    now: float
    speech_ms: float  # since its first voiced frame
    silence_ms: float  # since its last voiced frame (0 while voiced)
    partial: str  # the words recognised so far ("" before the first partial result)
    grammar: tuple[str, ...] | None  # the phrases the question expects (None: free decoding)


@dataclass(frozen=True)
class Heard:
    """An utterance to act on; `ready_at` is when it could be (its endpoint, or the end of
    the legal notice it waited behind)."""

    final: AsrFinal
    ready_at: float

    @property
    def speech_ms(self) -> int:
        return speech_ms(self.final)


@dataclass(frozen=True)
class NoInput:
    """The caller said nothing for the question's timeout after the bot fell silent."""

    waited_ms: int


@dataclass(frozen=True)
class Understood:
    """What an utterance meant: its text in the script's language ("" when nothing could be
    made of it), intent, agitation and the sensitive words the caller used."""

    heard: Heard
    text: str
    nlu: NluResult | None
    reading: AgitationReading | None
    word_hits: tuple[WordHit, ...] = ()


@dataclass(frozen=True)
class PromptOnWire:
    """A prompt's first frame went out at `first_frame_at`."""

    say: Say
    first_frame_at: float


@dataclass(frozen=True)
class PromptEnded:
    """A prompt finished (`played`) or was cut off; `last` when nothing is queued after it."""

    say: Say
    played: bool
    at: float
    last: bool


@dataclass(frozen=True)
class BargedIn:
    """The caller talked over the bot, which stopped and dropped what it had queued."""

    node: str


SpeakingEvent = PromptOnWire | PromptEnded | BargedIn


def speech_ms(final: AsrFinal) -> int:
    """How long the caller spoke, counting the last voiced frame's 20 ms."""
    return round((final.speech_end - final.speech_start) * 1000 + 20)
