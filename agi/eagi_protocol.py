"""outdial's EAGI extension of AudioSocket: five frame kinds that Asterisk never sends.

Standard library only: the per-call EAGI bridge imports this and must start in milliseconds.
Asterisk uses kinds 0x00, 0x01, 0x03, 0x10 and 0xff; these live at 0x20-0x24. One TCP
connection per call, the bridge being the client:

    bridge -> HELLO       JSON {call_id, channel, uniqueid, amd_status}, instead of a UUID
    daemon -> GRANT       the 16-byte one-time UUID bound to the call
              or OUTCOME  (an unknown call, a machine, no free slot), then the daemon closes
    bridge -> UUID 0x01   the granted UUID; from here on a normal AudioSocket client (0x10 in)
    daemon -> AUDIO 0x10  one prompt's audio, sent as fast as it is synthesised, then
              PROMPT_END  b"\\x01": play what came since the last PROMPT_END,
                          b"\\x00": drop it (the prompt was cut off before its end)
    bridge -> PLAYED      STREAM FILE of the oldest unacknowledged prompt has returned
    daemon -> OUTCOME     JSON {action, variables, application, options, message}, then close

The daemon counts a prompt as spoken only when PLAYED arrives, so its no-input timers start
when the caller has actually heard the prompt.
"""

from __future__ import annotations

import json
import struct
from typing import NamedTuple

HELLO = 0x20
GRANT = 0x21
PROMPT_END = 0x22
PLAYED = 0x23
OUTCOME = 0x24

AUDIO = 0x10
UUID = 0x01
ERROR = 0xFF

PLAY = b"\x01"
DROP = b"\x00"

HEADER = struct.Struct("!BH")
MAX_PAYLOAD = 65535
ACTIONS = frozenset({"hangup", "transfer", "continue"})


class ProtocolError(ValueError):
    """A frame or payload that breaks the EAGI extension."""


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(kind, len(payload)) + payload


class FrameBuffer:
    """Splits a byte stream into (kind, payload) frames; whatever is incomplete waits."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        frames: list[tuple[int, bytes]] = []
        while len(self.buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(self.buffer)
            end = HEADER.size + length
            if len(self.buffer) < end:
                break
            frames.append((kind, bytes(self.buffer[HEADER.size : end])))
            del self.buffer[:end]
        return frames


def _load_object(payload: bytes, what: str) -> dict[str, object]:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{what} is not UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return value


def _text(data: dict[str, object], key: str, what: str, *, optional: bool = False) -> str:
    value = data.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: {key} must be a string")
    return value


# NamedTuples rather than dataclasses: `dataclasses` costs the bridge ~10 ms of start-up.
class Hello(NamedTuple):
    """What the bridge knows about its channel when it asks for a UUID."""

    call_id: str
    channel: str = ""
    uniqueid: str = ""
    amd_status: str = ""

    def to_payload(self) -> bytes:
        return json.dumps(self._asdict()).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Hello:
        data = _load_object(payload, "hello")
        unknown = set(data) - {"call_id", "channel", "uniqueid", "amd_status"}
        if unknown:
            raise ProtocolError(f"hello: unknown fields {sorted(unknown)}")
        return cls(
            call_id=_text(data, "call_id", "hello"),
            channel=_text(data, "channel", "hello", optional=True),
            uniqueid=_text(data, "uniqueid", "hello", optional=True),
            amd_status=_text(data, "amd_status", "hello", optional=True),
        )


class Outcome(NamedTuple):
    """How the bridge hands the channel back: the FastAGI path's variables and application.

    `hangup`: set `variables`, AGI HANGUP. `transfer`: set `variables`, EXEC `application`
    `options`. `continue`: VERBOSE `message`, set `variables`, leave the dialplan to go on.
    """

    action: str
    variables: dict[str, str]
    application: str = ""
    options: str = ""
    message: str = ""

    def to_payload(self) -> bytes:
        return json.dumps(self._asdict()).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Outcome:
        data = _load_object(payload, "outcome")
        action = data.get("action")
        if action not in ACTIONS:
            raise ProtocolError(f"outcome: action {action!r} is not one of {sorted(ACTIONS)}")
        variables = data.get("variables", {})
        if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
        ):
            raise ProtocolError("outcome: variables must map strings to strings")
        outcome = cls(
            action=str(action),
            variables=dict(variables),
            application=_text(data, "application", "outcome", optional=True),
            options=_text(data, "options", "outcome", optional=True),
            message=_text(data, "message", "outcome", optional=True),
        )
        if outcome.action == "transfer" and not outcome.application:
            raise ProtocolError("outcome: a transfer needs an application")
        return outcome
