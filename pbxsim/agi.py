"""FastAGI client: pbxsim connects to the bot's AGI server as Asterisk's `AGI(agi://...)` does."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pbxsim.records import AgiExchange

if TYPE_CHECKING:
    from pbxsim.call import Call
    from pbxsim.channels import Channel

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 8192
DEAD_REPLY = "511 Command Not Permitted on a dead channel or intercept routine"
DEAD_TEXT = "Command Not Permitted on a dead channel or intercept routine"
INVALID_REPLY = "510 Invalid or unknown command"
INVALID_TEXT = "Invalid or unknown command"
USAGE_REPLY = (
    "520-Invalid command syntax.  Proper usage follows:\n{usage}\n520 End of proper usage."
)
# Commands that res_agi lets run on a dead channel.
DEAD_ALLOWED = {"GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "VERBOSE", "NOOP", "EXEC"}


class AgiUrlError(ValueError):
    """An `AGI()` argument that is not agi://host[:port]/script[?query]."""


@dataclass(frozen=True)
class AgiTarget:
    host: str
    port: int
    script: str
    url: str


def parse_agi_url(url: str) -> AgiTarget:
    parts = urlsplit(url)
    if parts.scheme != "agi" or not parts.hostname:
        raise AgiUrlError(f"not a FastAGI URL: {url!r}")
    script = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    return AgiTarget(parts.hostname, parts.port or 4573, script, url)


def split_args(line: str) -> list[str]:
    """Split a command line the way res_agi does: spaces, double quotes, backslash escapes."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = escaped = started = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = started = True
        elif ch == '"':
            in_quotes = not in_quotes
            started = True
        elif ch in " \t" and not in_quotes:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
    if in_quotes:
        raise ValueError("unterminated quote")
    if started:
        args.append("".join(current))
    return args


@dataclass(frozen=True)
class Reply:
    line: str | None  # None: Asterisk sends nothing back (NOOP on a dead channel)
    code: int
    result: str  # the AMI AGIExecEnd `Result:` text


def ok(line: str, result: str = "Success") -> Reply:
    return Reply(line, 200, result)


class AgiSession:
    """One FastAGI connection for the bot leg of `call`."""

    def __init__(self, call: Call, target: AgiTarget) -> None:
        self.call = call
        self.target = target
        self.writer: asyncio.StreamWriter | None = None
        self.busy = False
        self.hangup_sent = False
        self._pending_hangup_line = False

    def environment(self) -> str:
        env = [
            ("agi_network", "yes"),
            ("agi_network_script", self.target.script),
            ("agi_request", self.target.url),
            *channel_environment(self.call.bot, callingpres="0", enhanced="0.0"),
        ]
        return "".join(f"{k}: {v}\n" for k, v in env) + "\n"

    async def run(self) -> bool:
        """Serve commands until the server closes; False if it could not be reached."""
        try:
            reader, writer = await asyncio.open_connection(
                self.target.host, self.target.port, limit=MAX_LINE_BYTES
            )
        except OSError as exc:
            log.error("FastAGI server %s unreachable: %s", self.target.url, exc)
            self.call.record.errors.append(f"agi connect: {exc}")
            return False
        self.writer = writer
        try:
            writer.write(self.environment().encode())
            if self.call.bot_dead:
                self.notify_hangup()
            await self._serve(reader)
        finally:
            self.writer = None
            writer.close()
        return True

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # longer than MAX_LINE_BYTES: LimitOverrunError via readline
                log.error("AGI command longer than %d bytes from %s", MAX_LINE_BYTES, self.target)
                self.call.record.errors.append("agi: oversized command line")
                self._send(INVALID_REPLY)
                continue
            except ConnectionError:
                return
            if not raw:
                return
            if not raw.endswith(b"\n"):
                return  # the server closed mid-line: nothing to answer
            await self._handle_line(raw)

    async def _handle_line(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
            args = split_args(line)
        except (UnicodeDecodeError, ValueError) as exc:
            log.error("bad AGI command line %r: %s", raw[:80], exc)
            self.call.record.errors.append(f"agi: bad line: {exc}")
            self._send(INVALID_REPLY)
            self.call.record.agi.append(AgiExchange(raw.decode("utf-8", "replace"), INVALID_REPLY))
            return
        if not args:
            return  # blank lines are ignored by res_agi
        self.busy = True
        command_id = str(random.randrange(10**6, 2**31))
        self.call.events.agi_start(command_id, line)
        try:
            reply = await self.call.commands.run(args, self)
        finally:
            self.busy = False
        self.call.record.agi.append(AgiExchange(line, reply.line))
        self.call.events.agi_end(command_id, line, reply.code, reply.result)
        if reply.line is not None:
            self._send(reply.line)
        if self._pending_hangup_line:
            self._pending_hangup_line = False
            self._send("HANGUP")

    def notify_hangup(self) -> None:
        """The channel died: send the unsolicited `HANGUP` line (once), after any reply."""
        if self.hangup_sent:
            return
        self.hangup_sent = True
        if self.busy:
            self._pending_hangup_line = True
        else:
            self._send("HANGUP")

    def _send(self, line: str) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(f"{line}\n".encode())


def channel_environment(bot: Channel, *, callingpres: str, enhanced: str) -> list[tuple[str, str]]:
    """The `agi_*` lines after the request, in Asterisk's order, for AGI and EAGI alike (the
    captures differ only in the caller presentation and `agi_enhanced`)."""
    return [
        ("agi_channel", bot.name),
        ("agi_language", "en"),
        ("agi_type", "Local"),
        ("agi_uniqueid", bot.uniqueid),
        ("agi_version", "UNKNOWN__and_probably_unsupported"),
        ("agi_callerid", _unknown_as_word(bot.caller_num)),
        ("agi_calleridname", _unknown_as_word(bot.caller_name)),
        ("agi_callingpres", callingpres),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", "unknown"),
        ("agi_rdnis", "unknown"),
        ("agi_context", bot.context),
        ("agi_extension", bot.exten),
        ("agi_priority", str(bot.priority)),
        ("agi_enhanced", enhanced),
        ("agi_accountcode", ""),
        ("agi_threadid", str(random.randrange(10**14, 10**15))),
    ]


def _unknown_as_word(value: str) -> str:
    return "unknown" if value == "<unknown>" else value
