"""Script validation and loading.

- `validate_script(path) -> list[ScriptIssue]`: every problem as `FILE:LINE:COL: message`
  (YAML syntax, duplicate keys, schema errors, missing identification, undefined or
  unreachable nodes, say-loops, intents without examples, unknown or malformed template
  variables, captures into undeclared variables, prompts containing blocked words).
- `parse_script(source, path) -> LoadedScript` and `load_script(path) -> LoadedScript`:
  the validated `Script` plus its source and sha256 `content_hash`, which the daemon uses as
  the version key; both raise `ScriptError` (carrying the issues) on any error.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from compliance.words import WordFilter, default_word_filter
from dialog import schema
from dialog.followup import follow_up_issues
from dialog.grading import grading_issues
from dialog.schema import EndNode, ListenNode, SayNode, Script
from dialog.templates import TemplateError, placeholders
from dialog.yamlsource import Loc, Position, SourceMap, YamlSyntaxError, parse_yaml
from nlu.library import builtin_intents

# Words telling the customer that the call is recorded, per script language.
_RECORDING_WORDS = {
    "en": re.compile(r"\brecord(?:ed|ing|s)?\b", re.IGNORECASE),
    "zh": re.compile("录音|录制"),
}
RECORDING_NOT_ANNOUNCED = (
    "the campaign records its calls but script {name!r} does not say so in its identification: "
    "add a sentence such as 'This call may be recorded.' (本通话可能被录音。) to "
    "identification.who"
)


def announces_recording(script: Script) -> bool:
    """Whether the identification (spoken first on every call) says the call is recorded, as
    a campaign that records must (MixMonitor records from the answer on)."""
    return bool(_RECORDING_WORDS[script.language].search(script.opening_template()))


MISSING_IDENTIFICATION = (
    "missing identification: every script must open with `identification` saying who is "
    "calling (`who`) and how to refuse further calls (`opt_out`)"
)


@dataclass(frozen=True, slots=True)
class ScriptIssue:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class ScriptError(ValueError):
    """A script that does not validate; `issues` lists every problem."""

    def __init__(self, issues: list[ScriptIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


@dataclass(frozen=True, slots=True)
class LoadedScript:
    script: Script
    source: str
    content_hash: str  # sha256 hex of the source bytes
    path: str


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """`did you mean 'confirmed'?` for the closest of `known` names, or None."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _with_hint(message: str, name: str, known: Iterable[str]) -> str:
    hint = did_you_mean(name, known)
    return f"{message}; {hint}" if hint else message


# Every field name of the script schema, for "did you mean" on an unknown one.
_FIELD_NAMES = sorted(
    {
        name
        for model in vars(schema).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name in model.model_fields
    }
)


def content_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def validate_script(
    path: Path | str, *, word_filter: WordFilter | None = None
) -> list[ScriptIssue]:
    """All problems of the script file at `path`, sorted by position (empty when valid)."""
    return read_script(path, word_filter=word_filter)[1]


def read_script(
    path: Path | str, *, word_filter: WordFilter | None = None
) -> tuple[Script | None, list[ScriptIssue]]:
    """The script if it fits the schema, even with semantic problems (undefined or unreachable
    nodes: a graph shows them), and every issue. None when it cannot be read or parsed."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return None, [ScriptIssue(str(path), 1, 1, f"cannot read script: {reason}")]
    return _check(source, str(path), word_filter)


def parse_script(
    source: str, path: str = "<string>", *, word_filter: WordFilter | None = None
) -> LoadedScript:
    """Validate script text (for example a version stored in Postgres) and return it."""
    script, issues = _check(source, path, word_filter)
    if issues or script is None:
        raise ScriptError(issues)
    return LoadedScript(script, source, content_hash(source), path)


def load_script(path: Path | str, *, word_filter: WordFilter | None = None) -> LoadedScript:
    issues = validate_script(path, word_filter=word_filter)
    if issues:
        raise ScriptError(issues)
    return parse_script(Path(path).read_text(encoding="utf-8"), str(path), word_filter=word_filter)


def _check(
    source: str, path: str, word_filter: WordFilter | None
) -> tuple[Script | None, list[ScriptIssue]]:
    try:
        parsed = parse_yaml(source)
    except YamlSyntaxError as exc:
        return None, [ScriptIssue(path, exc.position.line, exc.position.col, exc.message)]
    smap = parsed.source_map
    issues = [
        _issue(path, d.position, f"duplicate key {d.key!r} (the later one would win)")
        for d in smap.duplicate_keys()
    ]
    if not isinstance(parsed.data, dict):
        issues.append(_issue(path, Position(1, 1), "a script must be a YAML mapping"))
        return None, issues
    try:
        script = Script.model_validate(parsed.data)
    except ValidationError as exc:
        issues += [schema_issue(path, smap, err) for err in exc.errors()]
        return None, _sorted(issues)
    checker = _SemanticChecks(script, smap, word_filter or default_word_filter())
    issues += [_issue(path, pos, msg) for pos, msg in checker.run()]
    return script, _sorted(issues)


def _issue(path: str, position: Position, message: str) -> ScriptIssue:
    return ScriptIssue(path, position.line, position.col, message)


def _sorted(issues: list[ScriptIssue]) -> list[ScriptIssue]:
    return sorted(issues, key=lambda i: (i.line, i.col, i.message))


def schema_issue(
    path: str,
    smap: SourceMap,
    err: dict,  # type: ignore[type-arg]
    field_names: Iterable[str] = _FIELD_NAMES,
) -> ScriptIssue:
    """A pydantic error at its FILE:LINE:COL; an unknown field gets the closest of
    `field_names` as a hint."""
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc if p not in ("say", "listen", "transfer", "end"))
    kind = err["type"]
    if loc == ("identification",) and kind == "missing":
        message = MISSING_IDENTIFICATION
    elif kind == "missing":
        parent = where.rpartition(".")[0]
        message = f"{parent + ': ' if parent else ''}missing required field {loc[-1]!r}"
    elif kind == "extra_forbidden":
        message = _with_hint(f"{where}: unknown field {loc[-1]!r}", str(loc[-1]), field_names)
    elif kind == "union_tag_not_found":
        message = f"{where}: a node needs `kind: say|listen|transfer|end`"
    elif kind == "union_tag_invalid":
        message = f"{where}: unknown node kind (expected say, listen, transfer or end)"
    else:
        message = f"{where}: {err['msg']}" if where else err["msg"]
    return _issue(path, smap.locate(loc), message)


def _successors(script: Script, name: str) -> list[str]:
    node = script.nodes[name]
    if isinstance(node, SayNode):
        return [node.next]
    if isinstance(node, ListenNode):
        return [*node.intents.values(), *node.dtmf.values(), node.no_input.then,
                node.no_match.then]  # fmt: skip
    return []


def reachable_nodes(script: Script) -> set[str]:
    """The nodes a call can get to: from the starts (the script's and the variants'), the
    handlers and the emotion rules."""
    roots = [script.start] + [v.start for v in script.variants.values() if v.start]
    handlers = (getattr(script.handlers, name) for name in type(script.handlers).model_fields)
    roots += [h.goto for h in handlers if h is not None and h.goto]
    roots += [r.goto for r in script.on_emotion if r.goto]
    seen: set[str] = set()
    stack = [r for r in roots if r in script.nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [n for n in _successors(script, name) if n in script.nodes]
    return seen


class _SemanticChecks:
    """Checks that need the whole validated script: references, reachability, templates."""

    def __init__(self, script: Script, smap: SourceMap, word_filter: WordFilter) -> None:
        self.script = script
        self.smap = smap
        self.word_filter = word_filter

    def run(self) -> Iterator[tuple[Position, str]]:
        yield from self._references()
        yield from self._unreachable()
        yield from self._say_loops()
        yield from self._intents()
        yield from self._templates()
        yield from self._captures()
        yield from self._handlers()
        yield from self._decisions()

    def _at(self, loc: Loc) -> Position:
        return self.smap.locate(loc)

    def _edges(self) -> Iterator[tuple[Loc, str]]:
        """(location of the reference, target node) for every node reference."""
        s = self.script
        yield ("start",), s.start
        for name, node in s.nodes.items():
            base = ("nodes", name)
            if isinstance(node, SayNode):
                yield (*base, "next"), node.next
            elif isinstance(node, ListenNode):
                for intent, target in node.intents.items():
                    yield (*base, "intents", intent), target
                for digit, target in node.dtmf.items():
                    yield (*base, "dtmf", digit), target
                yield (*base, "no_input", "then"), node.no_input.then
                yield (*base, "no_match", "then"), node.no_match.then
        for hname in type(s.handlers).model_fields:
            handler = getattr(s.handlers, hname)
            if handler is not None and handler.goto:
                yield ("handlers", hname, "goto"), handler.goto
        for i, rule in enumerate(s.on_emotion):
            if rule.goto:
                yield ("on_emotion", i, "goto"), rule.goto
        for vname, variant in s.variants.items():
            if variant.start:
                yield ("variants", vname, "start"), variant.start
            for node_name in variant.prompts:
                yield ("variants", vname, "prompts", node_name), node_name

    def _references(self) -> Iterator[tuple[Position, str]]:
        for loc, target in self._edges():
            if target not in self.script.nodes:
                yield (
                    self._at(loc),
                    _with_hint(f"undefined node {target!r}", target, self.script.nodes),
                )
        for vname, variant in self.script.variants.items():
            for node_name in variant.prompts:
                node = self.script.nodes.get(node_name)
                if isinstance(node, ListenNode) and node.prompt is None:
                    loc = ("variants", vname, "prompts", node_name)
                    yield self._at(loc), f"node {node_name!r} has no prompt to override"

    def _unreachable(self) -> Iterator[tuple[Position, str]]:
        seen = reachable_nodes(self.script)
        for name in self.script.nodes:
            if name not in seen:
                yield self._at(("nodes", name)), f"node {name!r} is unreachable"

    def _say_loops(self) -> Iterator[tuple[Position, str]]:
        """A cycle of say nodes would speak forever without listening."""
        reported: set[str] = set()
        for name, node in self.script.nodes.items():
            path = [name]
            while isinstance(node, SayNode) and node.next in self.script.nodes:
                if node.next in path:
                    cycle = path[path.index(node.next) :]
                    if not reported.intersection(cycle):
                        reported.update(cycle)
                        where = self._at(("nodes", min(cycle)))
                        yield where, f"say nodes loop forever: {' -> '.join([*cycle, cycle[0]])}"
                    break
                path.append(node.next)
                node = self.script.nodes[node.next]

    def _intents(self) -> Iterator[tuple[Position, str]]:
        library = builtin_intents(self.script.language)
        known = set(library) | {n for n, d in self.script.intents.items() if d.examples}
        for name, intent in self.script.intents.items():
            if not intent.examples and name not in library:
                yield (
                    self._at(("intents", name)),
                    f"intent {name!r} has no examples and is not a built-in intent",
                )
        for name, node in self.script.nodes.items():
            if not isinstance(node, ListenNode):
                continue
            for intent in node.intents:
                if intent not in known and intent not in self.script.intents:
                    yield (
                        self._at(("nodes", name, "intents", intent)),
                        _with_hint(
                            f"intent {intent!r} has no examples: it is not built-in "
                            f"({', '.join(library)}) nor defined under `intents:`",
                            intent,
                            [*library, *self.script.intents],
                        ),
                    )
            for intent in node.expect:
                if intent not in node.intents:
                    yield (
                        self._at(("nodes", name, "expect", intent)),
                        f"expect lists phrases for {intent!r}, which this node's intents lack",
                    )

    def _templates(self) -> Iterator[tuple[Position, str]]:
        declared = set(self.script.variables)
        for loc, text in self.script.texts():
            try:
                names = placeholders(text)
            except TemplateError as exc:
                yield self.smap.value_position(loc), str(exc)
                continue
            for var in names:
                if var not in declared:
                    yield (
                        self.smap.value_position(loc),
                        _with_hint(f"template uses unknown variable {{{var}}}", var, declared),
                    )
            if not names:
                for hit in self.word_filter.check(text, "bot").hits:
                    if hit.action in ("block", "escalate"):
                        yield (
                            self.smap.value_position(loc),
                            f"text contains {hit.term!r} ({hit.category}), which compliance "
                            "blocks: it would never be spoken",
                        )

    def _captures(self) -> Iterator[tuple[Position, str]]:
        for name, node in self.script.nodes.items():
            if isinstance(node, ListenNode):
                for label, var in node.capture.items():
                    if var not in self.script.variables:
                        yield (
                            self._at(("nodes", name, "capture", label)),
                            _with_hint(
                                f"capture into undeclared variable {var!r} (add it to `variables`)",
                                var,
                                self.script.variables,
                            ),
                        )

    def _decisions(self) -> Iterator[tuple[Position, str]]:
        """The grading rules and the follow-up templates (dialog/grading.py, followup.py)."""
        found = [*grading_issues(self.script), *follow_up_issues(self.script, self.word_filter)]
        for loc, message in found:
            yield self._at(loc), message

    def _handlers(self) -> Iterator[tuple[Position, str]]:
        opt_out = self.script.handlers.opt_out
        if opt_out and opt_out.goto and opt_out.goto in self.script.nodes:
            target = self.script.nodes[opt_out.goto]
            if not isinstance(target, EndNode):
                yield (
                    self._at(("handlers", "opt_out", "goto")),
                    "the opt_out handler must go to an `end` node: the customer refused the call",
                )


def find_script(directory: Path, name: str) -> Script | None:
    """The valid script called `name` among the `*.yaml` files of `directory`, if any."""
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            script = load_script(path).script
        except ScriptError:
            continue
        if script.name == name:
            return script
    return None
