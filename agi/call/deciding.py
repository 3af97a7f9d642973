"""Deciding: the pure dialog engine (dialog/engine.py), fed the call's events in the order
the script expects them. No I/O and no clock: what to say and do comes back as actions."""

from __future__ import annotations

from collections.abc import Mapping

from agi.call.events import NoInput, Understood
from compliance.words import WordFilter
from dialog import (
    BASE_VARIANT,
    DialogEngine,
    Dtmf,
    EmotionScore,
    End,
    Hangup,
    Say,
    Script,
    Silence,
    Transfer,
    Unrecognized,
    Utterance,
)
from dialog.actions import Action, Listen


class Deciding:
    def __init__(
        self,
        script: Script,
        variables: Mapping[str, object],
        variant: str | None,
        word_filter: WordFilter,
    ) -> None:
        """Raises ValueError when the lead lacks a variable the script requires."""
        self._engine = DialogEngine(
            script,
            variables,
            None if variant == BASE_VARIANT else variant,
            word_filter=word_filter,
        )

    @property
    def node(self) -> str | None:
        return self._engine.node

    @property
    def variables(self) -> Mapping[str, str]:
        return self._engine.variables

    def start(self) -> list[Action]:
        return self._engine.start()

    def likely_replies(self) -> list[Say]:
        return self._engine.likely_replies()

    def on_understood(self, understood: Understood, bot_silent: bool) -> list[Action]:
        """An agitation reading goes first: calming the caller, or handing them over, wins
        over answering what they said."""
        reading, nlu, text = understood.reading, understood.nlu, understood.text
        if nlu is None:
            # Nothing could be made of it: heard while the bot listens, the no-match path.
            actions = self._engine.handle(EmotionScore(reading.score)) if reading else []
            # An adaptation only says its apology: the no-match path still answers.
            if bot_silent and not any(isinstance(a, (Listen, Transfer, End)) for a in actions):
                final = understood.heard.final
                actions += self._engine.handle(
                    Unrecognized(understood.heard.speech_ms, final.raw_confidence)
                )
            return actions
        emotion = (
            self._engine.handle(EmotionScore(reading.score, text, nlu.intent)) if reading else []
        )
        if any(isinstance(a, (Transfer, End)) for a in emotion):
            return emotion
        utterance = Utterance(
            text=text,
            intent=nlu.intent,
            intent_confidence=nlu.confidence,
            entities=nlu.entities,
            asr_confidence=understood.heard.final.confidence,
        )
        return emotion + self._engine.handle(utterance)

    def on_dtmf(self, digit: str) -> list[Action]:
        return self._engine.handle(Dtmf(digit))

    def on_no_input(self, no_input: NoInput) -> list[Action]:
        return self._engine.handle(Silence(no_input.waited_ms))

    def on_hangup(self) -> list[Action]:
        return self._engine.handle(Hangup())
