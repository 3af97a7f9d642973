"""The built-in intent library: intents every outbound call meets, in `en` and `zh`.

Each intent ships with a large, varied example set (colloquial, fillers, ASR-style text without
punctuation) in `nlu/data/intents_<language>.yaml`. Scripts reference these intents by name,
extend them with their own examples and add domain intents; `merge_intents` builds the
training set for one script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

LANGUAGES = ("en", "zh")
BUILTIN_INTENTS = (
    "affirm",
    "deny",
    "opt_out",
    "who_is_this",
    "complaint",
    "call_later",
    "wrong_person",
    "repeat",
    "already_paid",
    "promise_to_pay",
    "ask_human",
    "dispute",
)
_DATA_DIR = Path(__file__).parent / "data"


class _IntentData(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    description: str
    examples: list[str] = Field(min_length=1)


class _LibraryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    language: str
    intents: dict[str, _IntentData]


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r} (expected one of {LANGUAGES})")
    return language


@cache
def _library(language: str) -> _LibraryFile:
    path = _DATA_DIR / f"intents_{check_language(language)}.yaml"
    with path.open(encoding="utf-8") as fh:
        return _LibraryFile.model_validate(yaml.safe_load(fh))


def builtin_intents(language: str) -> dict[str, tuple[str, ...]]:
    """Intent name -> examples of the built-in library for `language`."""
    return {name: tuple(spec.examples) for name, spec in _library(language).intents.items()}


def merge_intents(
    language: str, extra: Mapping[str, Sequence[str]] | None = None
) -> dict[str, tuple[str, ...]]:
    """The built-in library plus a script's intents: same name extends, new name adds.

    Duplicate examples are dropped (first occurrence wins) so the training hash is stable.
    """
    merged = {name: list(examples) for name, examples in builtin_intents(language).items()}
    for name, examples in (extra or {}).items():
        merged.setdefault(name, []).extend(examples)
    result: dict[str, tuple[str, ...]] = {}
    for name, examples in merged.items():
        if not examples:
            raise ValueError(f"intent {name!r} has no examples")
        result[name] = tuple(dict.fromkeys(e.strip() for e in examples if e.strip()))
    return result
