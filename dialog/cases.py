"""Script tests: YAML cases beside a script, run on the pure engine with the real NLU.

A script `scripts/NAME.yaml` keeps its cases in `scripts/tests/NAME/*.yaml`:

    cases:
      - name: customer says they already paid
        variables: {customer_name: 张先生, amount: "3500"}
        steps:
          - say: 是我
            node: ask_plan                    # the listen node the call waits at afterwards
          - say: 我上周已经还了
            intent: already_paid              # what the NLU made of it
            says: 请忽略本次提醒               # a substring of what the bot said at this step
            outcome: already_paid
            disposition: completed

A step is one event (`say`, `dtmf`, `silence: true`, `emotion: 0.9`, `hangup: true`) and
what must hold after it (`node`, `says`, `intent`, `set`, `transfer`, `outcome`,
`disposition`, `success`, `grade`, `compliance`, `paused`, `opted_out`). `grade` is what
the script's `grading:` rules give the call as it ends at that step, from what the case heard
(intents, entities, the emotion peak, the case's `duration_s`). A failure names the step as
`FILE:LINE`. The classifier is given by the caller (`classify(script, text)`), so this
module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dialog.actions import Action, ComplianceHit, End, OptOut, PauseLead, Say, SetVariable, Transfer
from dialog.engine import DialogEngine
from dialog.events import Dtmf, EmotionScore, Event, Hangup, Silence, Utterance
from dialog.grading import CallFacts, Grade, grade_call
from dialog.schema import DTMF_DIGITS, Script
from dialog.validate import ScriptError, ScriptIssue, schema_issue
from dialog.yamlsource import SourceMap, YamlSyntaxError, parse_yaml
from nlu.entities import Entity

# What the NLU made of one utterance: intent (None: no-match), confidence, entities.
Classify = Callable[[str, date], tuple[str | None, float, tuple[Entity, ...]]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Model):
    """One customer event and what must hold after it."""

    say: Annotated[str, Field(min_length=1)] | None = None
    # For `--voice`: a recording of the customer saying it (a WAV file, relative to the case
    # file); without one, the language pack's voice speaks `say`.
    audio: Annotated[str, Field(min_length=1)] | None = None
    dtmf: str | None = None
    silence: bool = False
    emotion: float | None = Field(default=None, ge=0.0, le=1.0)
    hangup: bool = False

    node: str | None = None
    says: str | list[str] | None = None
    intent: str | None = None
    set: dict[str, str] = Field(default_factory=dict)
    transfer: str | None = None
    outcome: str | None = None
    disposition: str | None = None
    success: bool | None = None
    grade: Grade | None = None
    compliance: list[str] = Field(default_factory=list)
    paused: bool | None = None
    opted_out: bool | None = None

    @field_validator("dtmf", mode="before")
    @classmethod
    def _digit(cls, value: Any) -> Any:
        value = str(value) if isinstance(value, int) else value
        if value is not None and (len(value) != 1 or value not in DTMF_DIGITS):
            raise ValueError(f"dtmf is one of {DTMF_DIGITS}")
        return value

    @model_validator(mode="after")
    def _one_event(self) -> Step:
        events = [
            self.say is not None,
            self.dtmf is not None,
            self.silence,
            self.emotion is not None,
            self.hangup,
        ]
        if sum(events) != 1:
            raise ValueError(
                "a step is exactly one of say, dtmf, silence: true, emotion, hangup: true"
            )
        if self.audio is not None and self.say is None:
            raise ValueError("audio is the recording of a `say` step: give the words as `say`")
        return self

    def event(self, classify: Classify, today: date) -> tuple[Event, str | None]:
        """The engine event, and the intent the NLU found (for `say`)."""
        if self.say is not None:
            intent, confidence, entities = classify(self.say, today)
            return Utterance(self.say, intent, confidence, entities), intent
        if self.dtmf is not None:
            return Dtmf(self.dtmf), None
        if self.emotion is not None:
            return EmotionScore(self.emotion), None
        if self.hangup:
            return Hangup(), None
        return Silence(), None


class Case(_Model):
    name: Annotated[str, Field(min_length=1)]
    variables: dict[str, str | int | float] = Field(default_factory=dict)
    variant: str | None = None
    today: date = date(2026, 3, 11)  # a Wednesday: relative dates in answers are stable
    # How long the call lasted, for grading rules on duration (the engine has no clock).
    duration_s: float = Field(default=60.0, ge=0.0)
    steps: list[Step] = Field(min_length=1)


class CaseFile(_Model):
    cases: list[Case] = Field(min_length=1)


_FIELD_NAMES = sorted({*Step.model_fields, *Case.model_fields, *CaseFile.model_fields})


@dataclass(frozen=True, slots=True)
class CaseResult:
    script: str
    case: str
    file: Path
    line: int  # of the failing step, else of the case
    steps: int  # steps run
    failure: str | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.case}: {self.failure or 'ok'}"


class CaseFileError(ScriptError):
    """A case file that does not parse or fit the schema; `issues` at FILE:LINE:COL."""


@dataclass(frozen=True, slots=True)
class LoadedCases:
    path: Path
    cases: CaseFile
    source_map: SourceMap

    def line_of(self, case: int, step: int | None = None) -> int:
        loc: tuple[str | int, ...] = ("cases", case) + (("steps", step) if step is not None else ())
        return self.source_map.value_position(loc).line


def cases_dir(script_path: Path, script: Script) -> Path:
    """Where the cases of the script at `script_path` live: `tests/NAME/` beside it."""
    return script_path.parent / "tests" / script.name


def load_cases(path: Path) -> LoadedCases:
    return load_cases_text(path.read_text(encoding="utf-8"), path)


def load_cases_text(text: str, path: Path | str) -> LoadedCases:
    """Cases from YAML text; `path` names it in messages."""
    path = Path(path)
    try:
        parsed = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise CaseFileError(
            [ScriptIssue(str(path), exc.position.line, exc.position.col, exc.message)]
        ) from exc
    try:
        cases = CaseFile.model_validate(parsed.data)
    except ValidationError as exc:
        issues = [schema_issue(str(path), parsed.source_map, e, _FIELD_NAMES) for e in exc.errors()]
        raise CaseFileError(issues) from exc
    return LoadedCases(path, cases, parsed.source_map)


def run_cases(script: Script, loaded: LoadedCases, classify: Classify) -> Iterator[CaseResult]:
    for index, case in enumerate(loaded.cases.cases):
        yield _run_case(script, loaded, index, case, classify)


def _run_case(
    script: Script, loaded: LoadedCases, index: int, case: Case, classify: Classify
) -> CaseResult:
    def result(steps: int, line: int, failure: str | None = None) -> CaseResult:
        return CaseResult(script.name, case.name, loaded.path, line, steps, failure)

    try:
        engine = DialogEngine(script, case.variables, case.variant)
    except (ValueError, KeyError) as exc:
        return result(0, loaded.line_of(index), f"cannot start: {exc}")
    engine.start()
    heard = _Heard(case.duration_s)
    for number, step in enumerate(case.steps):
        line = loaded.line_of(index, number)
        if engine.finished:
            return result(number, line, "the call had already ended before this step")
        event, intent = step.event(classify, case.today)
        heard.add(event)
        actions = engine.handle(event)
        problems = list(_mismatches(step, intent, actions, engine))
        if step.grade is not None:
            problems += _grade_mismatch(step.grade, script, actions, heard)
        if problems:
            return result(number + 1, line, "; ".join(problems))
    return result(len(case.steps), loaded.line_of(index))


@dataclass(slots=True)
class _Heard:
    """What the grading rules look at, gathered over a case as the call session does."""

    duration_s: float
    intents: set[str] = field(default_factory=set)
    entities: set[str] = field(default_factory=set)
    agitation_peak: float = 0.0

    def add(self, event: Event) -> None:
        if isinstance(event, Utterance):
            if event.intent:
                self.intents.add(event.intent)
            self.entities.update(e.label for e in event.entities)
        elif isinstance(event, EmotionScore):
            self.agitation_peak = max(self.agitation_peak, event.score)

    def facts(self, end: End | None) -> CallFacts:
        """The facts of a call that ended with `end` (None: handed over by a transfer)."""
        return CallFacts(
            outcome=end.outcome if end else None,
            disposition=end.disposition if end else "transferred",
            success=end.success if end else False,
            intents=frozenset(self.intents),
            entities=frozenset(self.entities),
            agitation_peak=self.agitation_peak,
            duration_s=self.duration_s,
        )


def _grade_mismatch(
    expected: str, script: Script, actions: list[Action], heard: _Heard
) -> list[str]:
    if not script.grading:
        return [f"expected grade {expected!r}, but the script has no grading rules"]
    end = next((a for a in actions if isinstance(a, End)), None)
    if end is None and not any(isinstance(a, Transfer) for a in actions):
        return [f"expected grade {expected!r}, but the call has not ended at this step"]
    graded = grade_call(script.grading, heard.facts(end))
    if graded is None or graded.grade != expected:
        got = f"{graded.grade!r} ({graded.reason})" if graded else "no grade"
        return [f"expected grade {expected!r}, got {got}"]
    return []


def _mismatches(
    step: Step, intent: str | None, actions: list[Action], engine: DialogEngine
) -> Iterator[str]:
    said = " | ".join(a.text for a in actions if isinstance(a, Say))
    end = next((a for a in actions if isinstance(a, End)), None)
    transfer = next((a for a in actions if isinstance(a, Transfer)), None)
    if step.say is not None and step.intent is not None and intent != step.intent:
        yield f"expected intent {step.intent!r}, the NLU said {intent!r} for {step.say!r}"
    if step.node is not None and engine.node != step.node:
        where = f"node {engine.node!r}" if engine.node else "the end of the call"
        yield f"expected to wait at node {step.node!r}, reached {where}"
    wanted = [step.says] if isinstance(step.says, str) else step.says or []
    for text in wanted:
        if text not in said:
            yield f"expected the bot to say {text!r}, it said {said!r}"
    captured = {a.name: a.value for a in actions if isinstance(a, SetVariable)}
    for name, value in step.set.items():
        if captured.get(name) != value:
            yield f"expected {name} = {value!r}, got {captured.get(name)!r}"
    if step.transfer is not None and (transfer is None or transfer.target != step.transfer):
        got = transfer.target if transfer else "no transfer"
        yield f"expected a transfer to {step.transfer!r}, got {got!r}"
    for name in ("outcome", "disposition", "success"):
        expected = getattr(step, name)
        got = getattr(end, name) if end else None
        if expected is not None and got != expected:
            yield f"expected {name} {expected!r}, got {got if end else 'no end'!r}"
    categories = {a.category for a in actions if isinstance(a, ComplianceHit)}
    missing = [c for c in step.compliance if c not in categories]
    if missing:
        yield f"expected compliance events {missing}, got {sorted(categories)}"
    for name, kind in (("paused", PauseLead), ("opted_out", OptOut)):
        expected = getattr(step, name)
        if expected is not None and expected != any(isinstance(a, kind) for a in actions):
            yield f"expected {name}: {str(expected).lower()}"
