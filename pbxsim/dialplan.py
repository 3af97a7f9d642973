"""The bot side's dialplan: context -> priorities of `App(data)`, like extensions.conf."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, model_validator

_APP_RE = re.compile(r"^\s*(?P<app>[A-Za-z][A-Za-z0-9_]*)\s*(?:\((?P<data>.*)\))?\s*$")
_VAR_RE = re.compile(r"\$\{([^{}]+)\}")


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


def default_dialplan(agi_url: str = "agi://127.0.0.1:4573/outdial") -> Dialplan:
    """The bot contexts of the capture's extensions.conf, pointing AGI at `agi_url`."""
    raw = {
        "bot-agi": ["Answer()", f"AGI({agi_url})", "Verbose(1,after agi)", "Hangup()"],
        "bot-amd": [
            "Answer()",
            "AMD()",
            "Verbose(1,AMD ${AMDSTATUS} ${AMDCAUSE})",
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
    """Expand `${NAME}` from channel variables (unknown names become empty, as in Asterisk)."""
    return _VAR_RE.sub(lambda m: lookup.get(m.group(1), ""), text)
