"""The pure, deterministic conversation state machine: events in, actions out.

    engine = DialogEngine(loaded.script, lead_fields, variant="B")
    actions = engine.start()                     # identification, then up to the first Listen
    actions = engine.handle(Utterance(text, intent="affirm", intent_confidence=0.93))
    actions = engine.handle(Silence(5000))       # the Listen timed out
    actions = engine.handle(Hangup())

`start()` and `handle()` return the actions to carry out in order. Between calls the engine
always waits at a `listen` node, or has finished (after Transfer or End; later events return
[]). No I/O, no clock, no randomness: the same script, variables and events always give the
same actions, so a live call keeps its behaviour however the script file changes (the
session holds its own `Script` object).

Every bot text is templated, then passed through the compliance word filter: a blocked text
is never returned as `Say`; a `ComplianceHit` is emitted and the node's `fallback` (else the
script's `fallback`) is spoken instead, if it is itself clean. Customer utterances are
checked too; an `escalate` hit runs the `abuse` handler.

Routing of an utterance at a listen node: opt_out first (always emits `OptOut`), then the
node's own `intents`, then global handlers (complaint, ask_human, dispute, who_is_this), then
`repeat` (re-prompt), else a no-match (node retries, then the repeated_no_match handler). A
`dispute` always emits a `dispute` ComplianceHit first, and `PauseLead` when its handler has
`pause: true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from compliance.words import WordFilter, default_word_filter
from dialog.actions import (
    BARGE_IN_FLOOR_MS,
    Action,
    ComplianceHit,
    End,
    Listen,
    OptOut,
    PauseLead,
    Say,
    SetVariable,
    Transfer,
)
from dialog.events import Dtmf, EmotionScore, Event, Hangup, Silence, Unrecognized, Utterance
from dialog.prompts import Prompter
from dialog.schema import (
    DTMF_DIGITS,
    Adaptation,
    EndNode,
    Handler,
    ListenNode,
    Retry,
    SayNode,
    Script,
    TransferNode,
)


class ScriptRuntimeError(RuntimeError):
    """The engine was misused (events before start) or the script cannot proceed."""


@dataclass(slots=True)
class _Counters:
    no_input: int = 0
    no_match: int = 0


@dataclass(slots=True)
class _State:
    node: str | None = None  # the listen node we wait at
    started: bool = False
    finished: bool = False
    counters: _Counters = field(default_factory=_Counters)
    total_no_match: int = 0
    repeated_no_match_fired: bool = False
    emotion_fired: set[int] = field(default_factory=set)
    intents_seen: list[str] = field(default_factory=list)
    last_customer_text: str = ""
    adapted: Adaptation | None = None  # the customer grew impatient: how the bot adapts
    apologised: bool = False

    def heard(self, text: str | None, intent: str | None) -> None:
        """What the customer said and meant, for the transfer's summary."""
        if text is not None:
            self.last_customer_text = text
        if intent:
            self.intents_seen.append(intent)

    def summary(self, script: str, reason: str) -> str:
        intents = ", ".join(self.intents_seen[-5:]) or "none"
        parts = [f"script {script}", f"reason: {reason}", f"intents: {intents}"]
        if self.last_customer_text:
            parts.append(f'last said: "{self.last_customer_text}"')
        return "; ".join(parts)


class DialogEngine:
    """One call's conversation. Not thread-safe: one engine per call, driven by one task."""

    def __init__(
        self,
        script: Script,
        variables: Mapping[str, object],
        variant: str | None = None,
        *,
        word_filter: WordFilter | None = None,
    ) -> None:
        if variant is not None and variant not in script.variants:
            known = ", ".join(script.variants) or "none"
            raise ValueError(f"unknown variant {variant!r} (script variants: {known})")
        self.script = script
        self.variant = variant
        self._filter = word_filter or default_word_filter()
        self._prompter = Prompter(script, variables, variant, self._filter)
        self._state = _State()

    @property
    def variables(self) -> dict[str, str]:
        """The call's variables: the lead's fields, defaults, and what the customer gave."""
        return self._prompter.variables

    @property
    def node(self) -> str | None:
        """The listen node the engine waits at (None before start and after the end)."""
        return self._state.node

    @property
    def finished(self) -> bool:
        return self._state.finished

    def start(self) -> list[Action]:
        if self._state.started:
            raise ScriptRuntimeError("start() was already called")
        self._state.started = True
        ident = self.script.identification
        opening = self.script.opening_template()
        actions = self._prompter.say(
            opening, "identification", ident.interruptible, BARGE_IN_FLOOR_MS, None
        )
        variant = self.script.variants.get(self.variant or "")
        start = variant.start if variant and variant.start else self.script.start
        return actions + self._enter(start)

    def handle(self, event: Event) -> list[Action]:
        if not self._state.started:
            raise ScriptRuntimeError("handle() before start()")
        if self._state.finished:
            return []
        match event:
            case Hangup():
                return self._finish_hangup()
            case EmotionScore():
                return self._on_emotion(event)
            case Dtmf(digit=digit):
                return self._on_dtmf(digit)
            case Silence():
                return self._retry("no_input")
            case Unrecognized():
                return self._retry("no_match")
            case Utterance():
                return self._on_utterance(event)
        raise TypeError(f"not a dialog event: {event!r}")

    # --- speaking ---------------------------------------------------------------------------

    def likely_replies(self) -> list[Say]:
        """What the bot would say next for each answer the current question expects, without
        moving: lets the caller synthesise replies while the customer is still talking."""
        node = self._state.node
        if node is None or self._state.finished:
            return []
        targets = dict.fromkeys(self._current().intents.values())
        return [say for target in targets for say in self._preview(target)]

    # --- moving between nodes ---------------------------------------------------------------

    def _enter(self, name: str) -> list[Action]:
        """Run nodes from `name` until one waits (listen) or finishes (transfer, end)."""
        actions: list[Action] = []
        for _ in range(len(self.script.nodes) + 1):
            node = self._node(name)
            if self._skipped(node):
                assert isinstance(node, SayNode)
                name = node.next
                continue
            actions += self._prompter.node_text(name, _template_of(node))
            if isinstance(node, SayNode):
                name = node.next
                continue
            if isinstance(node, ListenNode):
                self._state.node = name
                self._state.counters = _Counters()
                return actions + [self._listen(name)]
            if isinstance(node, TransferNode):
                return actions + self._transfer(node.target, node.reason)
            return actions + self._end(node.disposition, node.outcome)
        raise ScriptRuntimeError(f"say nodes loop without listening (at {name!r})")

    def _preview(self, name: str) -> list[Say]:
        """The prompts `_enter(name)` would speak, with no change of state."""
        says: list[Say] = []
        for _ in range(len(self.script.nodes) + 1):
            node = self._node(name)
            if not self._skipped(node):
                actions = self._prompter.node_text(name, _template_of(node))
                says += [a for a in actions if isinstance(a, Say)]
            if not isinstance(node, SayNode):
                break
            name = node.next
        return says

    def _skipped(self, node: SayNode | ListenNode | TransferNode | EndNode) -> bool:
        """An optional say node, passed over while the call is adapted with skip_optional."""
        adapted = self._state.adapted
        return (
            adapted is not None
            and adapted.skip_optional
            and isinstance(node, SayNode)
            and node.optional
        )

    def _node(self, name: str) -> SayNode | ListenNode | TransferNode | EndNode:
        node = self.script.nodes.get(name)
        if node is None:
            raise ScriptRuntimeError(f"undefined node {name!r}")
        return node

    def _listen(self, name: str) -> Listen:
        node = self.script.nodes[name]
        assert isinstance(node, ListenNode)
        grammar = {k: tuple(v) for k, v in node.expect.items()} or None
        return Listen(name, grammar, tuple(node.dtmf), node.timeout_ms)

    def _current(self) -> ListenNode:
        node = self.script.nodes[self._state.node or ""]
        assert isinstance(node, ListenNode)
        return node

    def _reprompt(self, text: str | None = None) -> list[Action]:
        """Say `text` (or the node's prompt again) and listen at the same node."""
        name = self._state.node or ""
        if text is None:
            actions = self._prompter.node_text(name, self._current().prompt)
        else:
            actions = self._say_here(text)
        return actions + [self._listen(name)]

    def _say_here(self, text: str) -> list[Action]:
        """Say `text` the way the current listen node speaks (no fallback)."""
        node = self._current()
        return self._prompter.say(
            text, self._state.node or "", node.interruptible, node.barge_in_min_ms, None
        )

    def _transfer(self, target: str, reason: str) -> list[Action]:
        self._state.finished = True
        self._state.node = None
        return [Transfer(target, reason, self._state.summary(self.script.name, reason))]

    def _end(self, disposition: str, outcome: str) -> list[Action]:
        self._state.finished = True
        self._state.node = None
        return [End(disposition, outcome, outcome in self.script.success_outcomes)]

    def _finish_hangup(self) -> list[Action]:
        return self._end("hangup", "customer_hangup")

    # --- events -----------------------------------------------------------------------------

    def _on_dtmf(self, digit: str) -> list[Action]:
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        target = self._current().dtmf.get(digit)
        if target is None and self._accepts_person(digit=digit):
            return self._to_person()
        if target is None:
            return self._retry("no_match")
        return self._enter(target)

    def _on_emotion(self, event: EmotionScore) -> list[Action]:
        score = event.score
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"emotion score must be within [0, 1], got {score}")
        rules = [
            (i, r)
            for i, r in enumerate(self.script.on_emotion)
            if score >= r.above and i not in self._state.emotion_fired
        ]
        if not rules:
            return []
        index, rule = max(rules, key=lambda item: item[1].above)
        self._state.emotion_fired.add(index)
        self._state.heard(event.text or None, event.intent)
        if rule.action == "transfer":
            assert rule.target is not None
            return self._transfer(rule.target, rule.reason)
        if rule.action == "shorten":
            assert rule.goto is not None
            return self._enter(rule.goto)
        if rule.action == "adapt":
            assert rule.adapt is not None
            return self._adapt(rule.adapt)
        return self._reprompt_after(rule.say)

    def _adapt(self, adapt: Adaptation) -> list[Action]:
        """From now on: short forms, a slower voice, optional steps skipped. The apology (once
        per call) and the offer of a person are said now; the customer's answer is then
        handled as usual (its reply already short), so nothing is asked twice."""
        state = self._state
        state.adapted = adapt
        self._prompter.short = adapt.short_prompts
        self._prompter.pace = adapt.slower
        actions: list[Action] = []
        if adapt.apologise and not state.apologised:
            state.apologised = True
            actions += self._say_here(adapt.apologise)
        if adapt.offer_person is not None:
            actions += self._say_here(adapt.offer_person.say)
        return actions

    def _accepts_person(self, intent: str | None = None, digit: str | None = None) -> bool:
        """The customer took the offer of a person made when the call was adapted."""
        adapted = self._state.adapted
        offer = adapted.offer_person if adapted is not None else None
        if offer is None:
            return False
        return intent == "ask_human" or (digit is not None and digit == offer.dtmf)

    def _to_person(self) -> list[Action]:
        adapted = self._state.adapted
        assert adapted is not None and adapted.offer_person is not None
        return self._transfer(adapted.offer_person.target, adapted.offer_person.reason)

    def _reprompt_after(self, text: str | None) -> list[Action]:
        """Say `text`, then the current prompt again, then listen (a handler that resumes)."""
        said = self._say_here(text) if text else []
        return said + self._reprompt()

    def _on_utterance(self, event: Utterance) -> list[Action]:
        state = self._state
        state.heard(event.text, event.intent)
        checked = self._filter.check(event.text, "customer")
        actions: list[Action] = [
            ComplianceHit("customer", state.node or "", h.category, h.term, h.action)
            for h in checked.hits
        ]
        if event.intent == "opt_out":
            return actions + [OptOut(), *self._run_handler(self.script.handlers.opt_out, "opt_out")]
        if checked.escalate and self.script.handlers.abuse is not None:
            return actions + self._run_handler(self.script.handlers.abuse, "abuse")
        if event.intent == "dispute":
            actions += self._dispute()
        node = self._current()
        if event.intent and event.intent in node.intents:
            actions += self._capture(node, event)
            return actions + self._enter(node.intents[event.intent])
        if self._accepts_person(event.intent):
            return actions + self._to_person()
        return actions + self._unmapped(event.intent)

    def _dispute(self) -> list[Action]:
        """A dispute is a legal event: recorded always, the lead's calls paused on request."""
        node = self._state.node or ""
        handler = self.script.handlers.dispute
        pause = handler is not None and handler.pause
        hit = ComplianceHit("customer", node, "dispute", "dispute", "pause" if pause else "record")
        return [hit, PauseLead(node)] if pause else [hit]

    def _unmapped(self, intent: str | None) -> list[Action]:
        handlers = self.script.handlers
        for name in ("complaint", "ask_human", "dispute"):
            handler = getattr(handlers, name)
            if intent == name and handler is not None:
                return self._run_handler(handler, name)
        if intent == "who_is_this":
            if handlers.who_is_this is not None:
                return self._run_handler(handlers.who_is_this, "who_is_this")
            return self._reprompt_after(self.script.opening_template())
        if intent == "repeat":
            return self._reprompt()
        return self._retry("no_match")

    def _capture(self, node: ListenNode, event: Utterance) -> list[Action]:
        actions: list[Action] = []
        for label, var in node.capture.items():
            entity = next((e for e in event.entities if e.label == label), None)
            if entity is not None:
                value = str(entity.value)
                self._prompter.capture(var, value, label)
                actions.append(SetVariable(var, value))
        return actions

    def _run_handler(self, handler: Handler | None, kind: str) -> list[Action]:
        name = self._state.node or kind
        said: list[Action] = []
        if handler is not None and handler.say:
            said = self._prompter.say(handler.say, name, True, BARGE_IN_FLOOR_MS, None)
        if handler is not None and handler.goto is not None:
            return said + self._enter(handler.goto)
        if kind == "opt_out":  # a refusal always ends the call, handler or not
            return said + self._end("opt_out", "opt_out")
        assert handler is not None
        return said + self._reprompt()

    def _retry(self, kind: str) -> list[Action]:
        """No input or no match at the current node: re-prompt, then give up to `then`."""
        state = self._state
        if kind == "no_match":
            state.total_no_match += 1
            global_handler = self.script.handlers.repeated_no_match
            if (
                global_handler is not None
                and not state.repeated_no_match_fired
                and state.total_no_match >= global_handler.after
            ):
                state.repeated_no_match_fired = True
                return self._run_handler(global_handler, "repeated_no_match")
        retry: Retry = getattr(self._current(), kind)
        count = getattr(state.counters, kind) + 1
        setattr(state.counters, kind, count)
        if count > retry.max_retries:
            return self._enter(retry.then)
        text = retry.say[min(count, len(retry.say)) - 1] if retry.say else None
        return self._reprompt(text)


def _template_of(node: SayNode | ListenNode | TransferNode | EndNode) -> str | None:
    """The text a node speaks on entry (a listen node's question)."""
    if isinstance(node, SayNode):
        return node.text
    if isinstance(node, ListenNode):
        return node.prompt
    return node.say
