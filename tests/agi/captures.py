"""Readers for the real Asterisk FastAGI captures in tests/fixtures/asterisk-captures."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-captures"
_SENT = re.compile(r"^>>> (.*)$")
_GOT = re.compile(r"^<<< ('.*')\s+\(")


@dataclass
class AgiCapture:
    env_lines: list[str]
    exchanges: list[tuple[str, str]]  # (command sent, raw line received)


def load_agi_capture(name: str) -> AgiCapture:
    lines = (CAPTURES / name).read_text().splitlines()
    env = [line for line in lines if line.startswith("agi_")]
    exchanges: list[tuple[str, str]] = []
    command: str | None = None
    for line in lines:
        if match := _SENT.match(line):
            command = match[1]
        elif (match := _GOT.match(line)) and command is not None:
            exchanges.append((command, ast.literal_eval(match[1])))
            command = None
    return AgiCapture(env, exchanges)


def load_json_capture(name: str) -> dict:
    """The JSON object of a capture; some files carry a note line before or after it."""
    import json

    text = (CAPTURES / name).read_text()
    start = text.index("{")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj
