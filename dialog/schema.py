"""The conversation-script schema (version 1), exported as `docs/script.schema.json`.

A script is a graph of nodes. `say` nodes speak and move on; `listen` nodes speak a prompt
and wait for the customer (intent, DTMF, silence); `transfer` and `end` nodes finish the bot's
part of the call. Every call opens with `identification` (who is calling and how to refuse
further calls) before the `start` node. Texts are templates with `{variable}` placeholders
filled from the lead's fields. `docs/scripts.md` is the authoring guide.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialog.actions import BARGE_IN_FLOOR_MS
from dialog.followup import FollowUpTemplate
from dialog.grading import GradeRule
from dialog.templates import is_static, literal_text
from nlu.library import merge_intents

SCHEMA_VERSION = 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENTITY_LABELS = ("yes_no", "number", "amount", "date", "time")
DTMF_DIGITS = "0123456789*#"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Text = Annotated[str, Field(min_length=1)]


# The script as written, without a variant's overrides: the control arm of an A/B test.
BASE_VARIANT = "base"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variable(_Model):
    """A value from the lead's fields (or captured during the call) used in templates."""

    required: bool = False
    default: str | None = None
    description: str = ""
    # How the value is spoken: `date` (2026-12-17 -> "Thursday, December 17th"), `time`,
    # `amount` (35.5 -> "35 dollars and 50 cents"), `number`, or `text` as written. A variable
    # filled by `capture` is spoken as what was captured (a date as a date).
    type: Literal["text", "date", "time", "amount", "number"] = "text"
    # ISO 4217 code of an amount; default USD for English scripts, CNY for Chinese ones.
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class Identification(_Model):
    """The mandatory opening: who is calling (say it is an automated assistant) and how to
    refuse further calls. Spoken before the start node, never interruptible by default."""

    who: Text
    opt_out: Text
    interruptible: bool = False


class IntentDef(_Model):
    """Examples for a domain intent, or extra examples for a built-in intent of the same name."""

    description: str = ""
    examples: list[Text] = Field(default_factory=list)


class Retry(_Model):
    """Re-prompts for no input or no match; after `max_retries` go to `then`."""

    say: list[Text] = Field(default_factory=list)  # in order, the last one repeats; empty:
    # repeat the node's prompt
    max_retries: int = Field(default=2, ge=0, le=10)
    then: Name


class _Speaking(_Model):
    fallback: Text | None = None  # spoken instead when the text is blocked by compliance
    interruptible: bool = True
    barge_in_min_ms: int = Field(default=BARGE_IN_FLOOR_MS, ge=0, le=5000)


class SayNode(_Speaking):
    kind: Literal["say"]
    text: Text
    short: Text | None = None  # spoken instead while the call is adapted (`on_emotion` adapt)
    next: Name
    # Skipped (straight on to `next`) while the call is adapted with `skip_optional`.
    optional: bool = False


class ListenNode(_Speaking):
    kind: Literal["listen"]
    prompt: Text | None = None
    short: Text | None = None  # the prompt while the call is adapted (`on_emotion` adapt)
    intents: dict[str, Name] = Field(default_factory=dict)  # intent -> next node
    expect: dict[str, list[Text]] = Field(default_factory=dict)  # intent -> grammar phrases
    dtmf: dict[str, Name] = Field(default_factory=dict)  # digit -> next node
    capture: dict[str, Name] = Field(default_factory=dict)  # entity label -> variable
    no_input: Retry
    no_match: Retry
    timeout_ms: int = Field(default=5000, ge=500, le=60000)

    @field_validator("dtmf", mode="before")
    @classmethod
    def _digit_keys(cls, value: Any) -> Any:
        # YAML reads `1: confirm` with an integer key; DTMF digits are strings.
        if isinstance(value, dict):
            return {str(k) if isinstance(k, int) else k: v for k, v in value.items()}
        return value

    @field_validator("dtmf")
    @classmethod
    def _digits(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if len(k) != 1 or k not in DTMF_DIGITS]
        if bad:
            raise ValueError(f"DTMF keys must be one of {DTMF_DIGITS}, got {bad}")
        return value

    @field_validator("capture")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if k not in ENTITY_LABELS]
        if bad:
            raise ValueError(f"capture keys are entity labels {ENTITY_LABELS}, got {bad}")
        return value

    @model_validator(mode="after")
    def _has_a_way_out(self) -> ListenNode:
        if not self.intents and not self.dtmf:
            raise ValueError("a listen node needs `intents` or `dtmf` to go anywhere")
        return self


class TransferNode(_Speaking):
    kind: Literal["transfer"]
    target: Text
    reason: Text
    say: Text | None = None


class EndNode(_Speaking):
    kind: Literal["end"]
    disposition: Text
    outcome: Text
    say: Text | None = None


Node = Annotated[SayNode | ListenNode | TransferNode | EndNode, Field(discriminator="kind")]


class Handler(_Model):
    """Say something, then go to `goto`, or (no goto) re-prompt the current listen node."""

    say: Text | None = None
    goto: Name | None = None


class DisputeHandler(Handler):
    """A dispute ("that's not my debt", "the amount is wrong") is always recorded as a
    `dispute` compliance event; `pause: true` (collections) also stops calling the lead in this
    campaign and notifies the CRM."""

    pause: bool = False


class RepeatedNoMatchHandler(Handler):
    after: int = Field(default=3, ge=1, le=20)  # no-matches in the whole call


class Handlers(_Model):
    """Global handlers, checked when the current listen node does not map the intent.

    opt_out always applies first (an OptOut action is emitted whatever the node says);
    without a handler the call ends with disposition "opt_out". who_is_this without a
    handler repeats the identification. abuse runs on a customer transcript whose sensitive
    words say escalate. A `dispute` is recorded (and with `pause` the lead's calls stop)
    whether the node maps it or the handler takes it.
    """

    opt_out: Handler | None = None
    complaint: Handler | None = None
    abuse: Handler | None = None
    who_is_this: Handler | None = None
    ask_human: Handler | None = None
    dispute: DisputeHandler | None = None
    repeated_no_match: RepeatedNoMatchHandler | None = None


class PersonOffer(_Model):
    """An offer to hand the customer to a person: said once, then open for the rest of the
    call. The customer accepts by asking for a person (the `ask_human` intent) or pressing
    `dtmf`; the call is transferred to `target` with its summary."""

    say: Text
    target: Text
    reason: Text = "customer accepted a person"
    dtmf: str | None = Field(default=None, pattern=r"^[0-9*#]$")


class Adaptation(_Model):
    """How the bot adapts to a customer growing impatient (`on_emotion` action `adapt`); it
    holds for the rest of the call."""

    # Say the nodes' `short` forms where they have one.
    short_prompts: bool = True
    # Speak slower by this factor (Piper's length_scale times this; 1.0: unchanged).
    slower: float = Field(default=1.1, ge=1.0, le=1.5)
    # Said once per call, when the adaptation starts.
    apologise: Text | None = None
    offer_person: PersonOffer | None = None
    # Go straight past say nodes marked `optional: true`.
    skip_optional: bool = True


class EmotionRule(_Model):
    """When the agitation score reaches `above`: `calm` (say a calming line and listen again),
    `shorten` (jump to `goto`), `adapt` (shorter, slower prompts, an apology, an offer of a
    person, optional steps skipped: see `Adaptation`) or `transfer` (to `target`). Each rule
    fires at most once."""

    above: float = Field(ge=0.0, le=1.0)
    action: Literal["calm", "shorten", "adapt", "transfer"]
    say: Text | None = None
    goto: Name | None = None
    target: Text | None = None
    reason: Text = "customer agitated"
    adapt: Adaptation | None = None

    @model_validator(mode="after")
    def _action_has_its_field(self) -> EmotionRule:
        needed = {"calm": "say", "shorten": "goto", "adapt": "adapt", "transfer": "target"}
        if getattr(self, needed[self.action]) is None:
            raise ValueError(f"action {self.action!r} needs `{needed[self.action]}`")
        if self.adapt is not None and self.action != "adapt":
            raise ValueError(f"`adapt` belongs to action 'adapt', not {self.action!r}")
        return self


# What a failed call says when the script does not: an apology, and a goodbye when there is no
# one to hand the customer to.
DEFAULT_APOLOGY = {
    "en": "I'm sorry, something went wrong on our side.",
    "zh": "抱歉，我们这边出了点问题。",
}
DEFAULT_GOODBYE = {
    "en": "We'll call you back another time. Goodbye.",
    "zh": "我们稍后再联系您，再见。",
}


class OnError(_Model):
    """When the bot fails mid-call (any error): say `say` (an apology) if the line still carries
    audio, then hand the customer to people at `target`, or without a target say `goodbye`.
    The call is recorded as `error` and the lead is called again later."""

    say: Text | None = None
    goodbye: Text | None = None
    target: Text | None = None
    reason: Text = "bot error"


class Variant(_Model):
    """An A/B variant: other prompt texts (node name -> text) and/or another start node."""

    weight: float = Field(default=1.0, gt=0)
    start: Name | None = None
    prompts: dict[Name, Text] = Field(default_factory=dict)


class Script(_Model):
    schema_version: Literal[1]
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    language: Literal["zh", "en"]
    # Which installed language pack serves the calls (`outdial models list`), when the
    # language has several (a dialect, a second voice); None: the language's own pack.
    pack: Annotated[str | None, Field(pattern=r"^[a-z]{2,3}(-[a-z0-9]+)?$")] = None
    # A Piper voice (e.g. zh_CN-huayan-medium): the installed pack of the language with it.
    voice: str | None = None
    description: str = ""
    success_outcomes: list[Text] = Field(default_factory=list)
    fallback: Text | None = None  # spoken when a node's text is blocked and it has no fallback
    variables: dict[Name, Variable] = Field(default_factory=dict)
    identification: Identification
    start: Name
    intents: dict[Name, IntentDef] = Field(default_factory=dict)
    nodes: dict[Name, Node] = Field(min_length=1)
    handlers: Handlers = Field(default_factory=Handlers)
    on_emotion: list[EmotionRule] = Field(default_factory=list)
    on_error: OnError = Field(default_factory=OnError)
    variants: dict[Name, Variant] = Field(default_factory=dict)
    # After the call: its grade (dialog/grading.py) and what to send next (dialog/followup.py).
    grading: list[GradeRule] = Field(default_factory=list)
    follow_up: list[FollowUpTemplate] = Field(default_factory=list)

    @field_validator("variants")
    @classmethod
    def _base_is_reserved(cls, value: dict[str, Variant]) -> dict[str, Variant]:
        if BASE_VARIANT in value:
            raise ValueError(
                f"'{BASE_VARIANT}' names the script as written in A/B tests; rename the variant"
            )
        return value

    def texts(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every template in the script with its path (the pydantic/YAML location)."""
        ident = self.identification
        yield ("identification", "who"), ident.who
        yield ("identification", "opt_out"), ident.opt_out
        if self.fallback:
            yield ("fallback",), self.fallback
        for name, node in self.nodes.items():
            yield from _node_texts(("nodes", name), node)
        for hname in Handlers.model_fields:
            handler = getattr(self.handlers, hname)
            if handler is not None and handler.say:
                yield ("handlers", hname, "say"), handler.say
        for i, rule in enumerate(self.on_emotion):
            if rule.say:
                yield ("on_emotion", i, "say"), rule.say
            if rule.adapt is not None:
                yield from _adaptation_texts(("on_emotion", i, "adapt"), rule.adapt)
        for field_name in ("say", "goodbye"):
            if text := getattr(self.on_error, field_name):
                yield ("on_error", field_name), text
        for vname, variant in self.variants.items():
            for node_name, text in variant.prompts.items():
                yield ("variants", vname, "prompts", node_name), text

    def opening_template(self) -> str:
        """The identification as spoken: who is calling, then how to opt out."""
        joiner = "" if self.language == "zh" else " "
        return f"{self.identification.who}{joiner}{self.identification.opt_out}"

    def error_apology(self) -> str:
        """The template a failed call apologises with."""
        return self.on_error.say or DEFAULT_APOLOGY[self.language]

    def error_goodbye(self) -> str:
        """The template a failed call with no one to hand over to ends with."""
        return self.on_error.goodbye or DEFAULT_GOODBYE[self.language]

    def required_fields(self) -> tuple[str, ...]:
        """Variables a lead must carry: required, with no default to fall back on."""
        return tuple(name for name, v in self.variables.items() if v.required and v.default is None)

    def static_prompts(self) -> list[str]:
        """Texts without placeholders, deduplicated, for TTS to render when the script loads
        (exactly the texts the engine will say, so a cache keyed by text hits). The failure
        texts are among them: a failed call must not need the synthesiser that may have failed.
        """
        templates = [self.opening_template()]
        templates += [t for loc, t in self.texts() if loc[0] != "identification"]
        templates += [self.error_apology(), self.error_goodbye()]
        return list(dict.fromkeys(literal_text(t) for t in templates if is_static(t)))

    def adapted_prompts(self) -> dict[float, list[str]]:
        """By the slower pace of each `adapt` rule: the static texts only an adapted call
        says (short forms, the apology, the offer of a person), for TTS to render at load at
        that pace. Other texts said while adapted are rendered at that pace on first use."""
        shorts = [n.short for n in self.nodes.values() if isinstance(n, SayNode | ListenNode)]
        by_pace: dict[float, list[str]] = {}
        for rule in self.on_emotion:
            if rule.adapt is None:
                continue
            texts = [t for _, t in _adaptation_texts(("adapt",), rule.adapt)]
            texts += [t for t in shorts if t] if rule.adapt.short_prompts else []
            by_pace.setdefault(rule.adapt.slower, []).extend(
                literal_text(t) for t in texts if is_static(t)
            )
        return {pace: list(dict.fromkeys(texts)) for pace, texts in by_pace.items()}

    def training_intents(self) -> dict[str, tuple[str, ...]]:
        """The NLU training set: the built-in library, this script's intents, and the
        listen nodes' `expect` phrases (the answers the script anticipates)."""
        extra = {name: list(d.examples) for name, d in self.intents.items()}
        for node in self.nodes.values():
            if isinstance(node, ListenNode):
                for intent, phrases in node.expect.items():
                    extra.setdefault(intent, []).extend(phrases)
        return merge_intents(self.language, extra)


def _node_texts(
    path: tuple[str | int, ...], node: SayNode | ListenNode | TransferNode | EndNode
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, SayNode | ListenNode) and node.short:
        yield (*path, "short"), node.short
    if isinstance(node, SayNode):
        yield (*path, "text"), node.text
    elif isinstance(node, ListenNode):
        if node.prompt:
            yield (*path, "prompt"), node.prompt
        for retry_name in ("no_input", "no_match"):
            retry: Retry = getattr(node, retry_name)
            for i, text in enumerate(retry.say):
                yield (*path, retry_name, "say", i), text
    elif node.say:
        yield (*path, "say"), node.say
    if node.fallback:
        yield (*path, "fallback"), node.fallback


def _adaptation_texts(
    path: tuple[str | int, ...], adapt: Adaptation
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if adapt.apologise:
        yield (*path, "apologise"), adapt.apologise
    if adapt.offer_person is not None:
        yield (*path, "offer_person", "say"), adapt.offer_person.say


def json_schema() -> dict[str, Any]:
    schema = Script.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://outdial.invalid/script.schema.json"
    return schema


def json_schema_text() -> str:
    """The exact text of docs/script.schema.json."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
