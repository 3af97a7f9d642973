"""The bot side for tests: a raw AMI client, a scripted FastAGI server, an AudioSocket server.

Deliberately minimal and written from the protocol descriptions, not from pbxsim's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Fields = list[tuple[str, str]]


def encode(fields: Fields) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields).encode() + b"\r\n"


class RawAmi:
    """Collects every message pbxsim sends, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.banner = ""
        self.messages: list[Fields] = []
        self.closed = asyncio.Event()
        self._new = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int) -> RawAmi:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ami = cls(reader, writer)
        ami.banner = (await reader.readline()).decode().rstrip("\r\n")
        ami._task = asyncio.create_task(ami._read())
        return ami

    async def _read(self) -> None:
        buf = b""
        while True:
            data = await self.reader.read(65536)
            if not data:
                break
            buf += data
            while b"\r\n\r\n" in buf:
                raw, buf = buf.split(b"\r\n\r\n", 1)
                fields = []
                for line in raw.decode().split("\r\n"):
                    key, _, value = line.partition(":")
                    fields.append((key, value[1:] if value.startswith(" ") else value))
                self.messages.append(fields)
                self._new.set()
        self.closed.set()
        self._new.set()

    def send(self, fields: Fields) -> None:
        self.writer.write(encode(fields))

    async def wait_for(
        self,
        pred: Callable[[Fields], bool],
        timeout: float = 20,  # noqa: ASYNC109 - a per-call deadline keeps the tests readable
    ) -> Fields:
        """The first message so far (or to come) matching `pred`."""
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for msg in self.messages[seen:]:
                    if pred(msg):
                        return msg
                seen = len(self.messages)
                if self.closed.is_set():
                    raise ConnectionError("AMI closed")
                self._new.clear()
                await self._new.wait()

    async def close(self) -> None:
        self.writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def has(msg: Fields, **expected: str) -> bool:
    d = dict(msg)
    return all(d.get(k.replace("_", "-")) == v for k, v in expected.items())


# -- FastAGI ------------------------------------------------------------------------------------


@dataclass
class AgiRun:
    environment: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # every line pbxsim sent after the env
    replies: list[tuple[str, str | None]] = field(default_factory=list)


AgiStep = str | Callable[[], Awaitable[None]]


class ScriptedAgi:
    """Sends `script` (commands, or awaitables to pause on) and reads one line per command."""

    def __init__(self, script: list[AgiStep], *, trailing: float = 0.3) -> None:
        self.script = script
        self.trailing = trailing
        self.runs: list[AgiRun] = []
        self.script_for: Callable[[], list[AgiStep]] | None = None  # per-connection script
        self.finished = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        run = AgiRun()
        self.runs.append(run)
        while (line := (await reader.readline()).decode().rstrip("\n")) != "":
            key, _, value = line.partition(": ")
            run.environment.append((key, value))
        script = self.script_for() if self.script_for else self.script
        for step in script:
            if not isinstance(step, str):
                await step()
                continue
            writer.write(f"{step}\n".encode())
            reply = await self._line(reader, 30.0)
            run.replies.append((step, reply))
            if reply is not None:
                run.lines.append(reply)
        while (extra := await self._line(reader, self.trailing)) is not None:
            run.lines.append(extra)
        writer.close()
        self.finished.set()

    @staticmethod
    async def _line(reader: asyncio.StreamReader, timeout: float) -> str | None:  # noqa: ASYNC109
        try:
            raw = await asyncio.wait_for(reader.readline(), timeout)
        except TimeoutError:
            return None
        return raw.decode().rstrip("\n") if raw else None

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


# -- AudioSocket --------------------------------------------------------------------------------


@dataclass
class MediaRun:
    frames: list[tuple[float, int, bytes]] = field(default_factory=list)  # t, kind, payload
    closed_by_peer: bool = False
    error: str | None = None


class AudioSocketPeer:
    """Records what pbxsim sends; ends by closing after `close_after_audio` audio frames, by a
    `0x00` frame (`hangup_frame=True`), or never (waits for pbxsim to close)."""

    def __init__(
        self,
        *,
        close_after_audio: int | None = None,
        hangup_frame: bool = False,
        reply: Callable[[MediaRun, asyncio.StreamWriter], Awaitable[None]] | None = None,
    ) -> None:
        self.close_after_audio = close_after_audio
        self.hangup_frame = hangup_frame
        self.reply = reply
        self.runs: list[MediaRun] = []
        self.strict_kinds = False  # end the run on a kind AudioSocket does not define
        self.server: asyncio.Server | None = None
        self.done = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []

    def close_all(self) -> None:
        """Close every media connection from the server side (a hand-over)."""
        for writer in self._writers:
            writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        run = MediaRun()
        self.runs.append(run)
        self._writers.append(writer)
        replier = asyncio.create_task(self.reply(run, writer)) if self.reply else None
        audio = 0
        try:
            while True:
                kind, length = struct.unpack("!BH", await reader.readexactly(3))
                if self.strict_kinds and kind not in (0x00, 0x01, 0x03, 0x10, 0xFF):
                    run.error = "unknown kind"
                    break
                if self.strict_kinds and kind == 0x10 and length != 320:
                    run.error = "oversized"
                    break
                payload = await reader.readexactly(length)
                run.frames.append((time.monotonic(), kind, payload))
                audio += kind == 0x10
                if self.close_after_audio is not None and audio >= self.close_after_audio:
                    if self.hangup_frame:
                        writer.write(b"\x00\x00\x00")
                    break
        except asyncio.IncompleteReadError as exc:
            run.closed_by_peer = True
            run.error = "partial frame" if exc.partial else None
        except (ConnectionResetError, OSError) as exc:
            run.closed_by_peer = isinstance(exc, ConnectionResetError)
            run.error = "reset" if run.closed_by_peer else str(exc)
        finally:
            if replier is not None:
                replier.cancel()
            writer.close()
            self.done.set()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
