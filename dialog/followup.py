"""Follow-up templates: what the script says to send after a call on another channel.

    follow_up:
      - name: payment_link
        channel: sms
        text: "{customer_name}, pay {amount} by {promise_date} here: {payment_link}"
        outcomes: [promised_to_pay]
      - name: order_status
        channel: push
        text: Order {order_number} is on its way.

The follow-up planner (crm/followup.py) chooses the channel for each lead; the template
is then the first one for that channel whose `outcomes` and `grades` (when given) fit the
call. A call follow-up needs no template: it is the script itself, dialled again. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from compliance.words import WordFilter
from dialog.grading import Grade, script_outcomes, unknown_names
from dialog.templates import TemplateError, placeholders, render

if TYPE_CHECKING:
    from dialog.schema import Script

CHANNELS = ("call", "sms", "push")
Channel = Literal["call", "sms", "push"]
MessageChannel = Literal["sms", "push"]

Loc = tuple[str | int, ...]


class FollowUpTemplate(BaseModel):
    """A message the CRM sends after a call when the planner picks its channel."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    channel: MessageChannel
    text: Annotated[str, Field(min_length=1)]
    outcomes: list[str] = Field(
        default_factory=list,
        description="only after calls with one of these outcomes; empty: after any call, "
        "answered or not",
    )
    grades: list[Grade] = Field(
        default_factory=list, description="only after calls graded so; empty: any grade"
    )


def pick_template(
    templates: list[FollowUpTemplate], channel: str, outcome: str | None, grade: str | None
) -> FollowUpTemplate | None:
    for template in templates:
        if template.channel != channel:
            continue
        if template.outcomes and outcome not in template.outcomes:
            continue
        if template.grades and grade not in template.grades:
            continue
        return template
    return None


def render_follow_up(
    template: FollowUpTemplate, script: Script, values: Mapping[str, object]
) -> str:
    """The message text: the script's variables from `values` (the lead's fields and what the
    call captured), else their defaults, else empty."""
    filled: dict[str, str] = {}
    for name, spec in script.variables.items():
        given = values.get(name)
        filled[name] = str(given) if given is not None else (spec.default or "")
    return render(template.text, filled)


def follow_up_issues(script: Script, word_filter: WordFilter) -> Iterator[tuple[Loc, str]]:
    """Problems with the templates, each with its location in the script."""
    outcomes = script_outcomes(script)
    seen: set[str] = set()
    for index, template in enumerate(script.follow_up):
        where: Loc = ("follow_up", index)
        if template.name in seen:
            yield (*where, "name"), f"a follow-up template is already named {template.name!r}"
        seen.add(template.name)
        yield from unknown_names(where, "outcomes", template.outcomes, outcomes)
        yield from _text_issues((*where, "text"), template.text, script, word_filter)


def _text_issues(
    where: Loc, text: str, script: Script, word_filter: WordFilter
) -> Iterator[tuple[Loc, str]]:
    try:
        names = placeholders(text)
    except TemplateError as exc:
        yield where, str(exc)
        return
    for name in names:
        if name not in script.variables:
            yield where, f"template uses unknown variable {{{name}}}"
    for hit in word_filter.check(text, "bot").hits:
        if hit.action in ("block", "escalate"):
            yield where, f"text contains {hit.term!r} ({hit.category}), which compliance blocks"
