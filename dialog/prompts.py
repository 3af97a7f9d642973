"""What the bot says: templates filled with the call's variables spoken aloud, checked by the
compliance word filter, with the node's or the script's fallback when a text is blocked.

Pure like the engine that uses it: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from compliance.words import WordFilter
from dialog.actions import Action, ComplianceHit, Say
from dialog.schema import Script
from dialog.spoken import Kind, spoken
from dialog.templates import is_static, render

# Entity labels whose captured value is spoken as that kind (yes_no stays text).
CAPTURED_KINDS: dict[str, Kind] = {
    "date": "date",
    "time": "time",
    "amount": "amount",
    "number": "number",
}


class Prompter:
    """One call's variables and how the bot's texts are built from them."""

    def __init__(
        self,
        script: Script,
        variables: Mapping[str, object],
        variant: str | None,
        word_filter: WordFilter,
    ) -> None:
        self.script = script
        self.variables = _initial_variables(script, variables)
        # How each variable is spoken: as declared, or as what a capture put in it.
        self._kinds: dict[str, Kind] = {n: v.type for n, v in script.variables.items()}
        self._filter = word_filter
        self._prompts = script.variants[variant].prompts if variant else {}
        # While the call is adapted (`on_emotion` adapt): nodes' short forms, a slower voice.
        self.short = False
        self.pace = 1.0

    def capture(self, var: str, value: str, label: str) -> None:
        """A value the customer gave (an entity of `label`) is now the variable `var`."""
        self.variables[var] = value
        if label in CAPTURED_KINDS:
            self._kinds[var] = CAPTURED_KINDS[label]

    def say(
        self,
        template: str,
        node: str,
        interruptible: bool,
        barge_in_min_ms: int,
        fallback: str | None,
    ) -> list[Action]:
        """Template, filter, and fall back if blocked; never returns a blocked Say."""
        text = render(template, self._spoken_variables())
        result = self._filter.check(text, "bot")
        hits: list[Action] = [
            ComplianceHit("bot", node, h.category, h.term, h.action, result.blocked)
            for h in result.hits
        ]
        if not result.blocked:
            static = is_static(template) and result.text == text
            say = _say_action(result.text, node, interruptible, barge_in_min_ms, static, self.pace)
            return [*hits, say]
        for candidate in (fallback, self.script.fallback):
            if candidate is None:
                continue
            alt_text = render(candidate, self._spoken_variables())
            alt = self._filter.check(alt_text, "bot")
            if not alt.blocked:
                static = is_static(candidate) and alt.text == alt_text
                say = _say_action(alt.text, node, interruptible, barge_in_min_ms, static, self.pace)
                return [*hits, say]
        return hits

    def node_text(self, name: str, template: str | None) -> list[Action]:
        """The node's text (the variant's prompt for it when there is one, its short form
        while the call is adapted and it has one), said its way."""
        node = self.script.nodes[name]
        text = self._prompts.get(name, template)
        short = getattr(node, "short", None)
        if self.short and short is not None and text == template:
            text = short
        if text is None:
            return []
        return self.say(text, name, node.interruptible, node.barge_in_min_ms, node.fallback)

    def _spoken_variables(self) -> dict[str, str]:
        """The variables as they are said aloud in the script's language."""
        language = self.script.language
        return {
            name: value
            if self._kinds.get(name, "text") == "text"
            else spoken(value, self._kinds[name], language, self._currency(name))
            for name, value in self.variables.items()
        }

    def _currency(self, name: str) -> str | None:
        declared = self.script.variables.get(name)
        return declared.currency if declared else None


def _say_action(
    text: str, node: str, interruptible: bool, barge_in: int, static: bool, pace: float
) -> Say:
    key = hashlib.sha256(text.encode("utf-8")).hexdigest() if static else None
    return Say(text, node, interruptible, barge_in, static, key, pace)


def _initial_variables(script: Script, given: Mapping[str, object]) -> dict[str, str]:
    """Declared variables from the lead's fields, defaults filled; unknown fields ignored."""
    values: dict[str, str] = {}
    missing = []
    for name, spec in script.variables.items():
        # A blank field is no value: the import, the API and the dialer's gates agree.
        if name in given and given[name] is not None and str(given[name]).strip():
            values[name] = str(given[name])
        elif spec.default is not None:
            values[name] = spec.default
        elif spec.required:
            missing.append(name)
        else:
            values[name] = ""
    if missing:
        raise ValueError(f"missing required variables: {', '.join(sorted(missing))}")
    return values
