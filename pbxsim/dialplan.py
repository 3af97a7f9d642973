"""The bot side's dialplan: context -> priorities of `App(data)`, like extensions.conf."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    from pbxsim.channels import Channel

_APP_RE = re.compile(r"^\s*(?P<app>[A-Za-z][A-Za-z0-9_]*)\s*(?:\((?P<data>.*)\))?\s*$")
_VAR_RE = re.compile(r"\$\{([^{}]+)\}")
log = logging.getLogger(__name__)


class DialplanStep(BaseModel):
    """One priority; written either as {app: AGI, data: ...} or as the string `AGI(...)`."""

    model_config = ConfigDict(extra="forbid")
    app: str
    data: str = ""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if isinstance(value, str):
            match = _APP_RE.match(value)
            if match is None:
                raise ValueError(f"not an application call like App(data): {value!r}")
            return {"app": match["app"], "data": match["data"] or ""}
        return value


Dialplan = dict[str, list[DialplanStep]]


# The deploy dialplan's recording step (deploy/asterisk/extensions_outdial.conf): the dialer
# sets OUTDIAL_RECORD=1 for campaigns that record.
RECORD_STEP = 'ExecIf($["${OUTDIAL_RECORD}" = "1"]?MixMonitor(outdial/${OUTDIAL_CALL_ID}.wav))'


def default_dialplan(
    agi_url: str = "agi://127.0.0.1:4573/outdial", *, record: bool = False
) -> Dialplan:
    """The bot contexts of the capture's extensions.conf, pointing AGI at `agi_url`; `record`
    adds the deploy dialplan's MixMonitor step before the AGI of `bot-amd`."""
    raw = {
        "bot-agi": ["Answer()", f"AGI({agi_url})", "Verbose(1,after agi)", "Hangup()"],
        "bot-amd": [
            "Answer()",
            "AMD()",
            "Verbose(1,AMD ${AMDSTATUS} ${AMDCAUSE})",
            *([RECORD_STEP] if record else []),
            f"AGI({agi_url})",
            "Hangup()",
        ],
        "agent-queue": [
            "Answer()",
            "Verbose(1,transfer reached agent-queue reason=${OUTDIAL_TRANSFER_REASON})",
            "Wait(2)",
            "Hangup()",
        ],
    }
    return {ctx: [DialplanStep.model_validate(s) for s in steps] for ctx, steps in raw.items()}


def substitute(text: str, lookup: dict[str, str]) -> str:
    """Expand `${NAME}` from channel variables (unknown names become empty, as in Asterisk),
    then evaluate `$[expression]`s."""
    expanded = _VAR_RE.sub(lambda m: lookup.get(m.group(1), ""), text)
    if "$[" not in expanded:
        return expanded
    return _EXPR_RE.sub(lambda m: _evaluated(m.group(1)), expanded)


def _evaluated(expression: str) -> str:
    try:
        return evaluate(expression)
    except ExpressionError as exc:
        log.error("syntax error in $[%s]: %s", expression, exc)  # Asterisk: "" and a log line
        return ""


_EXPR_RE = re.compile(r"\$\[((?:[^\[\]\"]|\"[^\"]*\")*)\]")
_TOKEN_RE = re.compile(r'\s*(?:(!=|<=|>=|[=<>&|!()])|"([^"]*)"|([^\s"=<>&|!()]+))')


class ExpressionError(ValueError):
    """An `$[...]` pbxsim cannot read (Asterisk logs a syntax error and yields nothing)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs: ("op", "!="), ("str", "a b") for quoted, ("word", "12")."""
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise ExpressionError(f"cannot read {text[pos:]!r}")
        if match[1] is not None:
            out.append(("op", match[1]))
        else:
            out.append(("str", match[2] if match[2] is not None else match[3]))
        pos = match.end()
    return out


def truthy(value: str) -> bool:
    """pbx_checkcondition: empty is false, a number is its value, other text is true."""
    value = value.strip()
    if not value:
        return False
    number = re.match(r"^[+-]?\d+", value)
    return int(number[0]) != 0 if number else True


def _compare(left: str, op: str, right: str) -> str:
    try:
        a: float | str = float(left)
        b: float | str = float(right)
    except ValueError:
        a, b = left, right
    result = {
        "=": a == b,
        "!=": a != b,
        "<": a < b,
        ">": a > b,
        "<=": a <= b,
        ">=": a >= b,  # type: ignore[operator]
    }[op]
    return "1" if result else "0"


def evaluate(expression: str) -> str:
    """The subset of Asterisk's expression language dialplans use in conditions: quoted or bare
    operands, `= != < > <= >=`, `&`, `|`, `!` and parentheses."""
    tokens = _tokens(expression)
    if not tokens:
        return ""  # `$[]`
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise ExpressionError(f"{expression!r} ends too early")
        pos += 1
        return tokens[pos - 1]

    def operand() -> str:
        kind, text = take()
        if (kind, text) == ("op", "("):
            value = either()
            if take() != ("op", ")"):
                raise ExpressionError(f"{expression!r}: missing )")
            return value
        if (kind, text) == ("op", "!"):
            return "0" if truthy(operand()) else "1"
        if kind == "op":
            raise ExpressionError(f"{expression!r}: unexpected {text!r}")
        return text

    def comparison() -> str:
        left = operand()
        token = peek()
        if token and token[0] == "op" and token[1] in ("=", "!=", "<", ">", "<=", ">="):
            take()
            return _compare(left, token[1], operand())
        return left

    def both() -> str:
        left = comparison()
        while peek() == ("op", "&"):
            take()
            right = comparison()
            left = left if truthy(left) and truthy(right) else "0"
        return left

    def either() -> str:
        left = both()
        while peek() == ("op", "|"):
            take()
            right = both()
            left = left if truthy(left) else right
        return left

    value = either()
    if pos != len(tokens):
        raise ExpressionError(f"{expression!r}: unexpected {tokens[pos][1]!r}")
    return value


def split_condition(data: str) -> tuple[str, DialplanStep | None, DialplanStep | None]:
    """`ExecIf(cond?App(args)[:App(args)])` -> (cond, true step, false step)."""
    condition, sep, branches = data.partition("?")
    if not sep or not branches:
        raise ValueError("usage: ExecIf(<expr>?<appiftrue>(<args>)[:<appiffalse>(<args>)])")
    depth, cut = 0, len(branches)
    for index, char in enumerate(branches):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            cut = index
            break
    true, false = branches[:cut], branches[cut + 1 :]
    return (
        condition,
        DialplanStep.model_validate(true) if true.strip() else None,
        DialplanStep.model_validate(false) if false.strip() else None,
    )


def goto_target(data: str, chan: Channel) -> tuple[str, str, int]:
    """Goto([[context,]exten,]priority) from `chan`'s place in the dialplan."""
    parts = [p.strip() for p in data.split(",")]
    if len(parts) == 3:
        return parts[0], parts[1], int(parts[2]) if parts[2].isdigit() else 1
    if len(parts) == 2:
        return chan.context, parts[0], int(parts[1]) if parts[1].isdigit() else 1
    return chan.context, chan.exten, int(parts[0]) if parts[0].isdigit() else 1


def app_seconds(text: str) -> float:
    """The seconds argument of Wait(seconds[,...]); 0 when it is not a number."""
    try:
        return float(text.split(",")[0] or 0)
    except ValueError:
        return 0.0
