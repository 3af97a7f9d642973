"""Actions `DialogEngine` returns for the live call session to carry out, in order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# How long the caller must talk over an interruptible prompt to stop it, by default (a prompt's
# `barge_in_min_ms`). Echo and line noise are told apart from speech by voice/bargein.py, so
# the floor only has to outlast a click: 40 ms stops the bot 60-100 ms after speech onset
# (bench/turn_models.py).
BARGE_IN_FLOOR_MS = 40


@dataclass(frozen=True, slots=True)
class Say:
    """Speak `text` (already templated and passed by the compliance filter).

    `static` texts have no variables: `cache_key` (sha256 of the text) lets TTS reuse a
    rendering made at load from `Script.static_prompts()`. `pace` slows the voice down (Piper's
    length_scale times it) while the call is adapted to an impatient customer; audio made at
    another pace is never reused for it.
    """

    text: str
    node: str
    interruptible: bool = True
    barge_in_min_ms: int = BARGE_IN_FLOOR_MS
    static: bool = False
    cache_key: str | None = None
    pace: float = 1.0


@dataclass(frozen=True, slots=True)
class Listen:
    """Wait for the customer. `grammar` (intent -> phrases) enables grammar-mode ASR for
    closed questions; None means free decoding."""

    node: str
    grammar: Mapping[str, tuple[str, ...]] | None = None
    dtmf_digits: tuple[str, ...] = ()
    timeout_ms: int = 5000


@dataclass(frozen=True, slots=True)
class Transfer:
    target: str
    reason: str
    summary: str  # a short account of the call for the human agent


@dataclass(frozen=True, slots=True)
class End:
    disposition: str
    outcome: str
    success: bool


@dataclass(frozen=True, slots=True)
class SetVariable:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class OptOut:
    """The customer refused further calls: the session writes a DNC entry at once."""


@dataclass(frozen=True, slots=True)
class ComplianceHit:
    """A sensitive-word hit, for the compliance_events table.

    For bot text `action` block/escalate means the text was not spoken (`blocked`).
    """

    source: Literal["bot", "customer"]
    node: str
    category: str
    term: str
    action: str
    blocked: bool = False
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PauseLead:
    """The customer disputes the debt (a collections script's `dispute` handler has `pause`):
    the session stops calling this lead in the campaign and tells the CRM. The `dispute`
    compliance event comes as a `ComplianceHit` just before."""

    node: str
    reason: str = "dispute"


Action = Say | Listen | Transfer | End | SetVariable | OptOut | ComplianceHit | PauseLead
