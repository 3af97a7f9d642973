"""A small FastAGI server: the call-control half of a live call.

panoramisk's `fast_agi.Application` spins forever when a client closes before the blank line
that ends the `agi_*` header (NOTES §4), so outdial reads the protocol itself. Replies are
parsed as Asterisk writes them (see asterisk-captures/fastagi-session-*.txt): `200 result=N
(data)`, `510 Invalid or unknown command`, `511 Command Not Permitted on a dead channel...`,
and the unsolicited `HANGUP` line that Asterisk inserts when the caller hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

MAX_HEADER_LINES = 64
MAX_LINE_BYTES = 4096
_REPLY = re.compile(
    r"^(?P<code>\d{3})[ -](?:result=(?P<result>-?\d+))?\s*(?:\((?P<data>.*)\))?(?P<rest>.*)$"
)


class AgiProtocolError(Exception):
    """The peer broke the FastAGI protocol (bad header, garbage reply, early close)."""


class AgiHangup(Exception):
    """The channel is gone: the caller hung up (`HANGUP` line, `511`, or a closed socket)."""


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: int | None
    data: str | None
    raw: str

    @property
    def ok(self) -> bool:
        return self.code == 200


@dataclass
class AgiRequest:
    """The `agi_*` environment Asterisk sends first, with the request URL split up."""

    env: dict[str, str]
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> AgiRequest:
        url = urlsplit(env.get("agi_request", ""))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        return cls(env=env, path=url.path.lstrip("/"), query=query)

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")


def parse_reply(line: str) -> AgiReply:
    match = _REPLY.match(line)
    if match is None:
        raise AgiProtocolError(f"unparsable AGI reply {line[:80]!r}")
    result = match["result"]
    return AgiReply(
        code=int(match["code"]),
        result=int(result) if result is not None else None,
        data=match["data"],
        raw=line,
    )


def _decode_line(raw: bytes) -> str:
    if not raw.endswith(b"\n"):
        raise AgiProtocolError("connection closed in the middle of a line")
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise AgiProtocolError(f"non-UTF-8 bytes in AGI stream at {exc.start}") from exc


async def read_header(reader: asyncio.StreamReader) -> dict[str, str]:
    """Read `agi_name: value` lines up to the blank line; refuse anything else."""
    env: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        raw = await reader.readline()
        if not raw:
            raise AgiProtocolError("client closed before the end of the AGI header")
        line = _decode_line(raw)
        if line == "":
            if not env:
                raise AgiProtocolError("empty AGI header")
            return env
        name, sep, value = line.partition(":")
        if not sep or not name.startswith("agi_"):
            raise AgiProtocolError(f"not an AGI header line: {line[:80]!r}")
        env[name.strip()] = value.strip()
    raise AgiProtocolError(f"AGI header longer than {MAX_HEADER_LINES} lines")


class AgiChannel:
    """Sends AGI commands on one FastAGI connection and reads their replies."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: AgiRequest
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.request = request
        self.hung_up = False
        self.log: list[tuple[str, str]] = []

    async def command(self, text: str) -> AgiReply:
        """Send one command; raise AgiHangup once the channel is dead."""
        if "\n" in text or "\r" in text:
            raise ValueError("an AGI command is a single line")
        self._writer.write(text.encode() + b"\n")
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            self.hung_up = True
            raise AgiHangup(str(exc)) from exc
        reply = await self._read_reply()
        self.log.append((text, reply.raw))
        if reply.code == 511:
            self.hung_up = True
            raise AgiHangup(reply.raw)
        return reply

    async def _read_reply(self) -> AgiReply:
        while True:
            try:
                raw = await self._reader.readline()
            except ValueError as exc:  # a line over the stream limit: not an AGI reply
                raise AgiProtocolError(f"AGI reply longer than {MAX_LINE_BYTES} bytes") from exc
            if not raw:
                self.hung_up = True
                raise AgiHangup("FastAGI connection closed")
            line = _decode_line(raw)
            if line == "HANGUP":
                # Unsolicited: the caller hung up; the real reply still follows.
                self.hung_up = True
                continue
            return parse_reply(line)

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.result == 1 else None

    async def set_variable(self, name: str, value: str) -> None:
        # Quotes keep spaces in the value; Asterisk strips them.
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        await self.command(f'SET VARIABLE {name} "{escaped}"')

    async def exec(self, application: str, options: str = "") -> AgiReply:
        return await self.command(f"EXEC {application} {options}".rstrip())

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


Handler = Callable[[AgiChannel], Awaitable[None]]


class FastAgiServer:
    """Accepts FastAGI connections and runs `handler` for each valid one."""

    def __init__(self, handler: Handler, *, header_timeout: float = 5.0) -> None:
        self._handler = handler
        self._header_timeout = header_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.rejected = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port, limit=MAX_LINE_BYTES)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self._header_timeout):
                env = await read_header(reader)
        except (AgiProtocolError, TimeoutError, ValueError, ConnectionError) as exc:
            # ValueError: a line longer than the stream limit.
            self.rejected += 1
            log.warning("FastAGI client %s rejected: %s", peer, exc or type(exc).__name__)
            writer.close()
            return
        channel = AgiChannel(reader, writer, AgiRequest.from_env(env))
        try:
            await self._handler(channel)
        except AgiHangup:
            log.info("FastAGI channel %s hung up", channel.request.uniqueid)
        except (AgiProtocolError, ConnectionError, TimeoutError) as exc:
            log.warning("FastAGI session %s ended: %s", channel.request.uniqueid, exc)
        finally:
            await channel.close()

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
