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
import math
import re
import time
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


class AgiTimeout(AgiProtocolError, TimeoutError):
    """The peer sent no reply to a command in time; the connection is no longer usable (a
    late reply would be read as the answer to the next command)."""


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
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: AgiRequest,
        *,
        reply_timeout: float | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.request = request
        self.reply_timeout = reply_timeout
        self.hung_up = False
        self.timed_out = False
        self.log: list[tuple[str, str]] = []

    async def command(self, text: str, *, long_running: bool = False) -> AgiReply:
        """Send one command; raise AgiHangup once the channel is dead, AgiTimeout when no
        reply comes within `reply_timeout` (`long_running`: no bound here, e.g. an EXEC that
        lasts the whole call; the caller bounds it)."""
        if "\n" in text or "\r" in text:
            raise ValueError("an AGI command is a single line")
        if self.timed_out:
            raise AgiTimeout("the peer stopped answering AGI commands")
        try:
            async with asyncio.timeout(None if long_running else self.reply_timeout):
                await self._send(text)
                reply = await self._read_reply()
        except TimeoutError as exc:
            raise self._no_reply(text) from exc
        self.log.append((text, reply.raw))
        if reply.code == 511:
            self.hung_up = True
            raise AgiHangup(reply.raw)
        return reply

    async def _send(self, text: str) -> None:
        self._writer.write(text.encode() + b"\n")
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            self.hung_up = True
            raise AgiHangup(str(exc)) from exc

    def _no_reply(self, text: str) -> AgiTimeout:
        self.timed_out = self.hung_up = True
        verb = " ".join(text.split()[:2])  # never the arguments: they may carry lead data
        return AgiTimeout(f"no reply to {verb} within {self.reply_timeout:g} s")

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

    async def exec(
        self, application: str, options: str = "", *, long_running: bool = False
    ) -> AgiReply:
        return await self.command(
            f"EXEC {application} {options}".rstrip(), long_running=long_running
        )

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


Handler = Callable[[AgiChannel], Awaitable[None]]


class RefusalLog:
    """At most one WARNING per reason every `interval_s`, saying how many were left out since:
    a flood of bad clients must not flood the log (the refusal metric counts every one)."""

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._interval = interval_s
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, reason: str, message: str, *args: object) -> None:
        now = self._clock()
        last, left_out = self._last.get(reason, (-math.inf, 0))
        if now - last < self._interval:
            self._last[reason] = (last, left_out + 1)
            return
        self._last[reason] = (now, 0)
        if left_out:
            message += f" ({left_out} more like it since the last such line)"
        log.warning(message, *args)


class FastAgiServer:
    """Accepts FastAGI connections and runs `handler` for each valid one.

    FastAGI has no authentication, so nothing a client does may hold a connection forever:
    the header must arrive within `header_timeout`, each command's reply within
    `reply_timeout`, and at most `max_connections` are open at once (more are closed at
    once). `on_refuse(reason)` counts what was refused: capacity, header_timeout,
    bad_header, reply_timeout.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        header_timeout: float = 5.0,
        reply_timeout: float | None = 10.0,
        max_connections: int | None = None,
        on_refuse: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._handler = handler
        self._header_timeout = header_timeout
        self._reply_timeout = reply_timeout
        self._max_connections = max_connections
        self._on_refuse = on_refuse
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_header: set[asyncio.Task[None]] = set()
        self._refusal_log = RefusalLog()
        self.rejected = 0

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port, limit=MAX_LINE_BYTES)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._max_connections is not None and len(self._tasks) >= self._max_connections:
            self._refuse_at_capacity(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()  # also when stop() cancelled us

    def _refuse_at_capacity(self, writer: asyncio.StreamWriter) -> None:
        self._on_refuse("capacity")
        self._refusal_log.warn(
            "capacity",
            "FastAGI client %s refused: %d connections open (the cap)",
            writer.get_extra_info("peername"),
            self._max_connections,
        )
        writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = await self._header_of(reader, writer)
        if env is None:
            return
        request = AgiRequest.from_env(env)
        channel = AgiChannel(reader, writer, request, reply_timeout=self._reply_timeout)
        try:
            await self._handler(channel)
        except AgiHangup:
            log.info("FastAGI channel %s hung up", channel.request.uniqueid)
        except AgiTimeout as exc:
            self._refusal_log.warn(
                "reply_timeout", "FastAGI session %s ended: %s", channel.request.uniqueid, exc
            )
        except (AgiProtocolError, ConnectionError, TimeoutError) as exc:
            log.warning("FastAGI session %s ended: %s", channel.request.uniqueid, exc)
        finally:
            if channel.timed_out:
                self._on_refuse("reply_timeout")
            await channel.close()

    async def _header_of(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, str] | None:
        """The AGI environment, or None when the client was dropped (said why in the log)."""
        task = asyncio.current_task()
        assert task is not None
        self._in_header.add(task)
        try:
            async with asyncio.timeout(self._header_timeout):
                return await read_header(reader)
        except (AgiProtocolError, TimeoutError, ValueError, ConnectionError) as exc:
            # ValueError: a line longer than the stream limit.
            self.rejected += 1
            reason = "header_timeout" if isinstance(exc, TimeoutError) else "bad_header"
            self._on_refuse(reason)
            peer = writer.get_extra_info("peername")
            why = exc or type(exc).__name__
            self._refusal_log.warn(reason, "FastAGI client %s rejected: %s", peer, why)
            writer.close()
            return None
        finally:
            self._in_header.discard(task)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening; drop clients that have not sent their header yet and give the
        sessions `grace` seconds to end."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._in_header:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
