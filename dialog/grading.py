"""Lead grading: the script's ordered `grading:` rules turn a finished call into a grade A-F
with a reason (the 意向等级 sales teams work their callbacks from).

    grading:
      - grade: A
        reason: promised to pay on a date
        when: {outcome: promised_to_pay, entities: [date]}
      - grade: F
        reason: refused further calls
        when: {outcome: opt_out}
      - grade: C
        reason: talked, no commitment          # no `when`: every call the rules above missed

The first rule whose conditions all hold gives the grade. Pure: the call session gathers the
`CallFacts`; `grading_issues` is what `outdial script validate` reports about the rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nlu.library import builtin_intents

if TYPE_CHECKING:
    from dialog.schema import Script

GRADES = ("A", "B", "C", "D", "E", "F")
Grade = Literal["A", "B", "C", "D", "E", "F"]
# What the engine itself ends a call with, besides the script's `end` nodes.
ENGINE_OUTCOMES = ("customer_hangup", "opt_out")
ENGINE_DISPOSITIONS = ("hangup", "opt_out", "transferred")

Loc = tuple[str | int, ...]


def _listed(value: Any) -> Any:
    # `outcome: confirmed` reads as well as `outcome: [confirmed, changed]`.
    return [value] if isinstance(value, str) else value


class GradeWhen(BaseModel):
    """Conditions on the finished call; every one given must hold."""

    model_config = ConfigDict(extra="forbid")

    outcome: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="the call ended with one of these outcomes"
    )
    disposition: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="the call ended with one of these dispositions (an end node's, "
        "`transferred`, `hangup` or `opt_out`)",
    )
    success: bool | None = Field(default=None, description="the outcome is (not) a success")
    intents_any: list[str] = Field(
        default_factory=list, description="the customer said at least one of these intents"
    )
    intents_all: list[str] = Field(
        default_factory=list, description="the customer said every one of these intents"
    )
    intents_none: list[str] = Field(
        default_factory=list, description="the customer said none of these intents"
    )
    entities: list[Literal["yes_no", "number", "amount", "date", "time"]] = Field(
        default_factory=list,
        description="the customer gave each of these (a date: for example a promised payment date)",
    )
    agitation_above: float | None = Field(
        default=None, ge=0.0, le=1.0, description="the agitation peak reached this"
    )
    agitation_below: float | None = Field(
        default=None, ge=0.0, le=1.0, description="the agitation peak stayed under this"
    )
    min_duration_s: float | None = Field(default=None, ge=0.0)
    max_duration_s: float | None = Field(default=None, ge=0.0)

    @field_validator(
        "outcome", "disposition", "intents_any", "intents_all", "intents_none", "entities",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _listed(value)

    @model_validator(mode="after")
    def _ranges(self) -> GradeWhen:
        low, high = self.agitation_above, self.agitation_below
        if low is not None and high is not None and low >= high:
            raise ValueError("agitation_above must be below agitation_below")
        shortest, longest = self.min_duration_s, self.max_duration_s
        if shortest is not None and longest is not None and shortest > longest:
            raise ValueError("min_duration_s must not exceed max_duration_s")
        return self

    def is_empty(self) -> bool:
        return self == GradeWhen()


class GradeRule(BaseModel):
    """One grading rule: the grade and why, for calls that meet `when` (absent: every call)."""

    model_config = ConfigDict(extra="forbid")

    grade: Grade
    reason: Annotated[str, Field(min_length=1)]
    when: GradeWhen = Field(default_factory=GradeWhen)


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the grading rules look at, gathered by the call session as the call ends."""

    outcome: str | None
    disposition: str
    success: bool
    intents: frozenset[str]
    entities: frozenset[str]
    agitation_peak: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class GradeResult:
    grade: Grade
    reason: str
    rule: int  # index in `grading:`


def matches(when: GradeWhen, facts: CallFacts) -> bool:
    checks = (
        not when.outcome or facts.outcome in when.outcome,
        not when.disposition or facts.disposition in when.disposition,
        when.success is None or facts.success == when.success,
        not when.intents_any or bool(facts.intents.intersection(when.intents_any)),
        facts.intents.issuperset(when.intents_all),
        facts.intents.isdisjoint(when.intents_none),
        facts.entities.issuperset(when.entities),
        when.agitation_above is None or facts.agitation_peak >= when.agitation_above,
        when.agitation_below is None or facts.agitation_peak < when.agitation_below,
        when.min_duration_s is None or facts.duration_s >= when.min_duration_s,
        when.max_duration_s is None or facts.duration_s <= when.max_duration_s,
    )
    return all(checks)


def grade_call(rules: list[GradeRule], facts: CallFacts) -> GradeResult | None:
    """The first rule that matches, or None (no rules, or none matched)."""
    for index, rule in enumerate(rules):
        if matches(rule.when, facts):
            return GradeResult(rule.grade, rule.reason, index)
    return None


def grading_issues(script: Script) -> Iterator[tuple[Loc, str]]:
    """Problems with the rules, each with its location in the script."""
    rules = script.grading
    if not rules:
        return
    outcomes = script_outcomes(script)
    ends = [n for n in script.nodes.values() if n.kind == "end"]
    dispositions = {n.disposition for n in ends} | set(ENGINE_DISPOSITIONS)  # type: ignore[union-attr]
    intents = set(builtin_intents(script.language)) | set(script.intents)
    for index, rule in enumerate(rules):
        where: Loc = ("grading", index, "when")
        yield from unknown_names(where, "outcome", rule.when.outcome, outcomes)
        yield from unknown_names(where, "disposition", rule.when.disposition, dispositions)
        for key in ("intents_any", "intents_all", "intents_none"):
            yield from unknown_names(where, key, getattr(rule.when, key), intents)
        if rule.when.is_empty() and index < len(rules) - 1:
            yield (
                ("grading", index),
                f"grading rule {index + 1} matches every call, so the rules after it never apply",
            )
    if not rules[-1].when.is_empty():
        yield (
            ("grading", len(rules) - 1),
            "the last grading rule needs no `when`: it grades every call the others missed",
        )


def script_outcomes(script: Script) -> set[str]:
    """Every outcome a call of this script can end with."""
    ends = [n for n in script.nodes.values() if n.kind == "end"]
    return {n.outcome for n in ends} | set(ENGINE_OUTCOMES)  # type: ignore[union-attr]


def unknown_names(
    where: Loc, key: str, values: list[str], known: set[str]
) -> Iterator[tuple[Loc, str]]:
    """An issue for each of `values` (listed under `key` at `where`) not in `known`."""
    for i, value in enumerate(values):
        if value not in known:
            choices = ", ".join(sorted(known))
            yield (*where, key, i), f"{key}: {value!r} is not one this script has ({choices})"
