"""Sensitive-word filter over bot utterances and customer transcripts.

Word lists are YAML files of categories:

    categories:
      profanity:
        action: block          # for bot text: block | replace | flag | escalate
        on_customer: escalate  # for customer text: ignore | flag | escalate (default flag)
        replacement: "***"     # used by action: replace
        terms: [idiot, 傻逼]

`WordFilter.from_files(paths)` builds one Aho-Corasick automaton (pyahocorasick) over every
term, so a check costs about the same for ten terms or ten thousand. Matching is
case-insensitive and full-width-insensitive; terms made of word characters in Latin script
must match whole words ("ass" does not match "class"), CJK terms match anywhere (Chinese has
no spaces between words).

`check(text, direction)` returns a `FilterResult`; for bot text `blocked` means the text must
never be spoken, and `text` carries replacements. The filter is immutable and thread-safe.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ahocorasick
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

BotAction = Literal["block", "replace", "flag", "escalate"]
CustomerAction = Literal["ignore", "flag", "escalate"]
Direction = Literal["bot", "customer"]

DEFAULT_WORD_LIST = Path(__file__).parent / "data" / "default_words.yaml"


class WordCategory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: BotAction
    on_customer: CustomerAction = "flag"
    replacement: str = "***"
    terms: list[str] = Field(min_length=1)

    @field_validator("terms")
    @classmethod
    def _no_blank_terms(cls, terms: list[str]) -> list[str]:
        if any(not t.strip() for t in terms):
            raise ValueError("terms must not be blank")
        return terms


class WordListFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: dict[str, WordCategory]


class WordListError(ValueError):
    """A word-list file is missing, is not YAML, or does not match the format."""


@dataclass(frozen=True, slots=True)
class WordHit:
    category: str
    term: str
    action: str  # the action taken for this direction
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class FilterResult:
    text: str  # the input with `replace` hits substituted (bot direction only)
    hits: tuple[WordHit, ...]
    blocked: bool  # bot text that must not be spoken (block or escalate hit)
    escalate: bool  # a hit whose action is escalate

    @property
    def clean(self) -> bool:
        return not self.hits


def fold(text: str) -> str:
    """Case- and width-folded text with the same length as `text`, so offsets line up."""
    out = []
    for ch in text:
        folded = unicodedata.normalize("NFKC", ch).lower()
        out.append(folded if len(folded) == 1 else ch)
    return "".join(out)


def _needs_word_boundary(term: str) -> bool:
    # Latin-script words need boundaries; CJK characters are not "ascii" and match anywhere.
    return (term[0].isascii() and term[0].isalnum()) or (term[-1].isascii() and term[-1].isalnum())


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


@dataclass(frozen=True, slots=True)
class _Entry:
    category: str
    term: str
    bounded: bool


class WordFilter:
    """An immutable automaton over all terms of some word-list categories."""

    def __init__(self, categories: dict[str, WordCategory]) -> None:
        self.categories = dict(categories)
        automaton = ahocorasick.Automaton()
        entries: dict[str, list[_Entry]] = {}
        for name, category in self.categories.items():
            for term in category.terms:
                key = fold(term.strip())
                entries.setdefault(key, []).append(
                    _Entry(name, term.strip(), _needs_word_boundary(key))
                )
        for key, found in entries.items():
            automaton.add_word(key, (len(key), tuple(found)))
        if entries:
            automaton.make_automaton()
        self._automaton = automaton if entries else None
        self.term_count = len(entries)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> WordFilter:
        """Merge categories of several files; a category named twice gets both term lists."""
        merged: dict[str, WordCategory] = {}
        for path in paths:
            for name, category in load_word_list(path).categories.items():
                if name in merged:
                    if merged[name].action != category.action:
                        raise WordListError(
                            f"{path}: category {name!r} has action {category.action!r} here "
                            f"but {merged[name].action!r} in an earlier file"
                        )
                    category = category.model_copy(
                        update={"terms": merged[name].terms + category.terms}
                    )
                merged[name] = category
        return cls(merged)

    def check(self, text: str, direction: Direction) -> FilterResult:
        """All term hits in `text`; for bot text also the replaced text and whether it's blocked."""
        hits = self._hits(text, direction)
        if direction == "customer":
            escalate = any(h.action == "escalate" for h in hits)
            return FilterResult(text, hits, blocked=False, escalate=escalate)
        blocked = any(h.action in ("block", "escalate") for h in hits)
        escalate = any(h.action == "escalate" for h in hits)
        return FilterResult(self._replace(text, hits), hits, blocked, escalate)

    def _hits(self, text: str, direction: Direction) -> tuple[WordHit, ...]:
        if self._automaton is None or not text:
            return ()
        folded = fold(text)
        hits: list[WordHit] = []
        for end_index, (length, entries) in self._automaton.iter(folded):
            start, end = end_index - length + 1, end_index + 1
            for entry in entries:
                if entry.bounded and not _at_word_boundary(folded, start, end):
                    continue
                category = self.categories[entry.category]
                action = category.action if direction == "bot" else category.on_customer
                if action != "ignore":
                    hits.append(WordHit(entry.category, entry.term, action, start, end))
        hits.sort(key=lambda h: (h.start, -h.end))
        return tuple(hits)

    def _replace(self, text: str, hits: Sequence[WordHit]) -> str:
        pieces: list[str] = []
        cursor = 0
        for hit in hits:  # sorted by start, longest first: skip hits inside a replaced one
            if hit.action != "replace" or hit.start < cursor:
                continue
            pieces.append(text[cursor : hit.start])
            pieces.append(self.categories[hit.category].replacement)
            cursor = hit.end
        pieces.append(text[cursor:])
        return "".join(pieces)


def _at_word_boundary(text: str, start: int, end: int) -> bool:
    before_ok = start == 0 or not _is_word_char(text[start - 1])
    after_ok = end == len(text) or not _is_word_char(text[end])
    return before_ok and after_ok


def load_word_list(path: Path) -> WordListFile:
    """Parse and validate one word-list file; raises WordListError with the file name."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise WordListError(f"{path}: cannot read word list: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise WordListError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return WordListFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WordListError(f"{path}: {where}: {first['msg']}") from exc


_default: WordFilter | None = None


def default_word_filter() -> WordFilter:
    """The filter over the shipped default list, built once per process."""
    global _default
    if _default is None:
        _default = WordFilter.from_files([DEFAULT_WORD_LIST])
    return _default
