"""Helpers for the tests of one live-call stage at a time (agi/call/): no sockets, real engines,
typed events fed in directly."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from agi.audiosocket import MediaConnection
from voice.audio import FRAME_S, iter_frames, read_wav

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
# The closed-question phrases the Korean fixtures were verified against (voice tests).
GRAMMAR = ("네", "아니요", "아뇨", "좋아요", "상담원 연결")


def fixture_pcm(name: str) -> bytes:
    return read_wav(AUDIO / f"{name}.wav")


def frames_at(pcm: bytes, start: float) -> list[tuple[bytes, float]]:
    """Each 20 ms frame of `pcm` with the time it arrives, starting after `start`."""
    return [(frame, start + (i + 1) * FRAME_S) for i, frame in enumerate(iter_frames(pcm))]


def silence(seconds: float) -> bytes:
    return bytes(int(8000 * seconds) * 2)


@contextlib.asynccontextmanager
async def piped_media() -> AsyncIterator[MediaConnection]:
    """A real MediaConnection whose outbound audio goes down an OS pipe (read and dropped),
    driven by calling its `tick` by hand instead of the media clock."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb")
    )
    write_transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), os.fdopen(write_fd, "wb")
    )
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    drain = asyncio.ensure_future(_discard(reader))
    media = MediaConnection("00000000-0000-0000-0000-000000000001", asyncio.StreamReader(), writer)
    try:
        yield media
    finally:
        await media.close()
        drain.cancel()
        read_transport.close()


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass
