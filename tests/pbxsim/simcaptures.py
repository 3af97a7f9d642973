"""Parsers for the real Asterisk captures in tests/fixtures/asterisk-captures."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-captures"

Fields = list[tuple[str, str]]


@dataclass(frozen=True)
class AmiMessage:
    sent: bool  # written by the client (a `#### >>> SENT` block)
    fields: Fields

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.fields if k == key), None)


def read_ami_capture(name: str) -> tuple[str, list[AmiMessage]]:
    """The banner and every message of a raw AMI capture, in order."""
    lines = (CAPTURES / name).read_text().replace("\r", "").split("\n")
    banner, messages = lines[0], []
    current: Fields = []
    sent = False
    for line in lines[1:]:
        if line.startswith("#### >>> SENT"):
            sent = True
        elif not line:
            if current:
                messages.append(AmiMessage(sent, current))
                current, sent = [], False
        else:
            key, _, value = line.partition(":")
            current.append((key, value[1:] if value.startswith(" ") else value))
    return banner, messages


@dataclass(frozen=True)
class AgiCapture:
    environment: list[tuple[str, str]]
    exchanges: list[tuple[str, str | None]]  # command, the line read after it (None: timeout)


def read_agi_capture(name: str) -> AgiCapture:
    env: list[tuple[str, str]] = []
    exchanges: list[tuple[str, str | None]] = []
    lines = (CAPTURES / name).read_text().split("\n")
    in_env = True
    for line in lines[1:]:
        if in_env:
            if not line:
                in_env = False
                continue
            key, _, value = line.partition(": ")
            env.append((key, value))
        elif line.startswith(">>> "):
            exchanges.append((line[4:], None))
        elif line.startswith("<<< '") and exchanges:
            reply = re.match(r"<<< '(.*)\\n'", line)
            assert reply is not None
            exchanges[-1] = (exchanges[-1][0], reply.group(1))
    return AgiCapture(env, exchanges)


def read_audiosocket_capture(name: str) -> dict:
    text = (CAPTURES / name).read_text()
    return json.loads(text[text.index("{") :])
