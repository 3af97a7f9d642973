"""YAML loading that remembers where every mapping key and sequence item came from.

Operators get `file:line:col: field.path: message` instead of a bare pydantic error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """Parsed YAML plus the (line, column), 1-based, of each path in it."""

    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """The position of `loc`, or of its nearest ancestor that exists in the file."""
        path = tuple(loc)
        while path and path not in self.marks:
            path = path[:-1]
        return self.marks.get(path, (1, 1))


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (YAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _walk(node: yaml.Node, path: Path_, marks: dict[Path_, tuple[int, int]]) -> None:
    marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _walk(value_node, child, marks)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), marks)


def load_located(text: str) -> Located:
    """Parse `text`; raise YamlSyntaxError with a 1-based position on malformed YAML."""
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(exc.problem or str(exc), line, column) from exc
    marks: dict[Path_, tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), marks)
    return Located(data=data, marks=marks)
