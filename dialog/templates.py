"""Prompt templates: Python format-style placeholders `{variable}`; `{{` and `}}` are braces."""

from __future__ import annotations

import string
from collections.abc import Mapping

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template with broken braces or a placeholder that is not a plain variable name."""


def placeholders(template: str) -> list[str]:
    """Variable names used by `template`, in order; TemplateError if malformed."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"bad template {template!r}: {exc}") from exc
    names = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise TemplateError(
                f"placeholder {{{field}}} must be a plain variable name such as {{amount}}"
            )
        names.append(field)
    return names


def is_static(template: str) -> bool:
    """True when the text has no placeholder, so TTS can render it once at load."""
    return not placeholders(template)


def render(template: str, variables: Mapping[str, str]) -> str:
    """Fill placeholders; KeyError names a variable the caller did not provide."""
    return template.format_map(variables)


def literal_text(template: str) -> str:
    """The spoken text of a static template (`{{` becomes `{`)."""
    return template.format_map({})
