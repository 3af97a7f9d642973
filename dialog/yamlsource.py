"""YAML parsing that remembers where every value came from, for `FILE:LINE:COL` messages.

Scripts are parsed twice from the same text: `yaml.compose` gives the node tree with marks
(kept in a `SourceMap`), and the loader constructs plain data for pydantic. The loader
resolves booleans the YAML 1.2 way (only true/false), so an admin's `yes`, `no`, `on` and
`off` stay strings: in a conversation script they are nearly always words a customer says.
Dates stay strings too: pydantic reads them where a date is wanted, and a bad one
(`2026-13-01`) is then reported with its position instead of crashing the YAML loader.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

Loc = Sequence[str | int]


class ScriptLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false (YAML 1.2 core schema)."""


_PLAIN_STRING_TAGS = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
ScriptLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _PLAIN_STRING_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ScriptLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    col: int  # 1-based


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    key: str
    position: Position


class SourceMap:
    """Maps a path of keys and indexes (a pydantic `loc`) to a position in the YAML text."""

    def __init__(self, root: yaml.Node) -> None:
        self._root = root

    def locate(self, loc: Loc) -> Position:
        """Position of the deepest node on `loc`; the key's position for a mapping entry.

        Path elements that are not in the YAML (pydantic's union tags, a missing field) are
        skipped, so a missing field points at the mapping that lacks it.
        """
        node: yaml.Node = self._root
        mark = node.start_mark
        for step in loc:
            found = _child(node, step)
            if found is None:
                continue
            key_node, node = found
            mark = (key_node or node).start_mark
        return _pos(mark)

    def value_position(self, loc: Loc) -> Position:
        """Position of the value itself (for a template string rather than its key)."""
        node: yaml.Node = self._root
        for step in loc:
            found = _child(node, step)
            if found is None:
                break
            node = found[1]
        return _pos(node.start_mark)

    def duplicate_keys(self) -> list[DuplicateKey]:
        found: list[DuplicateKey] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                seen: set[str] = set()
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        if key.value in seen:
                            found.append(DuplicateKey(key.value, _pos(key.start_mark)))
                        seen.add(key.value)
                    stack.append(value)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        return sorted(found, key=lambda d: (d.position.line, d.position.col))


def _child(node: yaml.Node, step: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(step):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
        items = node.value
        return (None, items[step]) if 0 <= step < len(items) else None
    return None


@dataclass(frozen=True, slots=True)
class ParsedYaml:
    data: Any
    source_map: SourceMap


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _previous_line(lines: list[str], index: int) -> int | None:
    """Index of the last non-blank, non-comment line before `index`."""
    for i in range(index - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            return i
    return None


def _end_of(lines: list[str], index: int) -> Position:
    return Position(index + 1, len(lines[index].rstrip()) + 1)


def _explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[Position, str]:
    """PyYAML's complaint in plain words, at the line where the mistake is (PyYAML often
    notices it a line later)."""
    problem, context = exc.problem or "", exc.context or ""
    found = exc.problem_mark or exc.context_mark
    where = _pos(found) if found else Position(1, 1)
    began = _pos(exc.context_mark) if exc.context_mark else where
    lines = text.splitlines()
    if "could not find expected ':'" in problem:
        return began, "missing ':' after the key on this line (write `key: value`)"
    if "cannot start any token" in problem and "\\t" in problem:
        return where, "a tab character: indent with spaces only"
    if "end of stream" in problem and "quoted scalar" in context:
        return began, "this quoted text is never closed (a quote is missing at its end)"
    if "flow sequence" in context or "flow mapping" in context:
        return began, "this [ ] list or { } mapping is not closed, or lacks a comma"
    if problem == "mapping values are not allowed here" and found is not None:
        before = _previous_line(lines, found.line)
        if (
            before is not None
            and ":" not in lines[before]
            and not lines[before].strip().startswith("-")
        ):
            return _end_of(lines, before), "missing ':' at the end of this line"
        return where, (
            "unexpected ':' here: quote a text that contains ': ', or check this line's indentation"
        )
    line = lines[found.line] if found is not None and found.line < len(lines) else ""
    if "expected <block end>" in problem and (": {" in line or ": [" in line):
        return where, "a text that starts with { or [ must be quoted"
    if "expected <block end>" in problem and "<scalar>" in problem:
        return where, "unexpected text after the value on this line (quote the whole text?)"
    if "expected <block end>" in problem:
        return where, (
            "this line's indentation does not match the lines above it: give it the same "
            "number of spaces as the keys (or `- ` items) it belongs with"
        )
    return where, " ".join(p for p in (context, problem) if p)


def parse_yaml(text: str) -> ParsedYaml:
    """Data plus source map; YamlSyntaxError (with a position) when the text is not YAML."""
    try:
        root = yaml.compose(text, Loader=ScriptLoader)
        data = yaml.load(text, Loader=ScriptLoader)  # noqa: S506 - ScriptLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        position, message = _explain(exc, text)
        raise YamlSyntaxError(f"YAML syntax error: {message}", position) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML error: {exc}", Position(1, 1)) from exc
    if root is None:
        root = yaml.MappingNode("tag:yaml.org,2002:map", [])
        root.start_mark = yaml.Mark("", 0, 0, 0, None, None)
    return ParsedYaml(data, SourceMap(root))
