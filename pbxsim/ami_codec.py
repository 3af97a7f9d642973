"""AMI wire format: `Key: Value` lines ended by CRLF, one blank line after every message."""

from __future__ import annotations

from dataclasses import dataclass, field

Fields = list[tuple[str, str]]

# A real AMI message is a few KiB at most; anything larger is a broken or hostile peer.
MAX_MESSAGE_BYTES = 64 * 1024


class AmiParseError(ValueError):
    """A message that is not `Key: Value` lines."""


def encode(fields: Fields) -> bytes:
    """One AMI message, fields in the given order, ended by the blank line."""
    return "".join(f"{key}: {value}\r\n" for key, value in fields).encode() + b"\r\n"


def get(fields: Fields, key: str, default: str | None = None) -> str | None:
    """The first value of `key` (case-insensitive, as Asterisk matches headers)."""
    wanted = key.lower()
    for name, value in fields:
        if name.lower() == wanted:
            return value
    return default


def get_all(fields: Fields, key: str) -> list[str]:
    """Every value of a repeated header such as `Variable:`."""
    wanted = key.lower()
    return [value for name, value in fields if name.lower() == wanted]


def parse_block(block: str) -> Fields:
    """Parse the lines of one message (without the blank terminator)."""
    fields: Fields = []
    for line in block.split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or key != key.strip():
            raise AmiParseError(f"not a 'Key: Value' line: {line[:80]!r}")
        fields.append((key, value[1:] if value.startswith(" ") else value))
    return fields


@dataclass
class AmiReader:
    """Incremental splitter: feed bytes, get whole messages back."""

    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Fields | AmiParseError]:
        """Messages completed by `data`; a malformed one comes back as its error, in place."""
        self.buffer += data
        out: list[Fields | AmiParseError] = []
        while True:
            end, sep_len = _find_terminator(self.buffer)
            if end < 0:
                if len(self.buffer) > MAX_MESSAGE_BYTES:
                    self.buffer.clear()
                    out.append(AmiParseError(f"message longer than {MAX_MESSAGE_BYTES} bytes"))
                return out
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + sep_len]
            if not raw.strip():
                continue
            try:
                out.append(parse_block(raw.decode("utf-8")))
            except UnicodeDecodeError as exc:
                out.append(AmiParseError(f"not UTF-8: {exc}"))
            except AmiParseError as exc:
                out.append(exc)


def _find_terminator(buf: bytearray) -> tuple[int, int]:
    """Position and length of the first blank line (CRLF CRLF, or bare LF LF from sloppy peers)."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0
