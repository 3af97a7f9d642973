"""The AudioSocket server: framing, UUID admission, bad frames, paced playback."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agi.audiosocket import (
    FRAME_BYTES,
    AudioIn,
    AudioSocketServer,
    DtmfIn,
    HangupIn,
    Kind,
    MediaClock,
    MediaConnection,
    Playback,
    UuidRegistry,
    encode_frame,
)
from tests.agi.captures import load_json_capture


@pytest.fixture
async def server() -> AudioSocketServer:
    srv = AudioSocketServer(UuidRegistry(), MediaClock(), first_frame_timeout=1.0)
    srv.port = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    yield srv
    await srv.stop()


async def _connect(server: AudioSocketServer, call_uuid: str) -> tuple:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # type: ignore[attr-defined]
    writer.write(encode_frame(Kind.UUID, uuid.UUID(call_uuid).bytes))
    await writer.drain()
    return reader, writer


async def _events_until_hangup(connection: MediaConnection) -> list:
    events = []
    while True:
        event = await asyncio.wait_for(connection.events.get(), timeout=5)
        events.append(event)
        if isinstance(event, HangupIn):
            return events


def test_uuid_frame_matches_the_capture() -> None:
    capture = load_json_capture("audiosocket-answered.json")
    _, kind, size, hex_payload = capture["first"][0]
    call_uuid = uuid.UUID(hex=hex_payload)
    frame = encode_frame(Kind.UUID, call_uuid.bytes)
    assert (int(kind, 16), size) == (frame[0], int.from_bytes(frame[1:3], "big"))


async def test_registered_call_gets_audio_dtmf_and_close(server: AudioSocketServer) -> None:
    call_uuid, waiting = server.registry.register()
    reader, writer = await _connect(server, call_uuid)
    connection = await asyncio.wait_for(waiting, timeout=5)
    writer.write(encode_frame(Kind.AUDIO, b"\x01\x00" * 160))
    writer.write(encode_frame(Kind.DTMF, b"#"))
    await writer.drain()
    writer.close()  # Asterisk hangs up with a plain TCP close
    events = await _events_until_hangup(connection)
    assert isinstance(events[0], AudioIn) and len(events[0].pcm) == FRAME_BYTES
    assert isinstance(events[1], DtmfIn) and events[1].digit == "#"
    assert isinstance(events[2], HangupIn) and events[2].reason == "close"


async def test_uuid_is_one_time(server: AudioSocketServer) -> None:
    call_uuid, waiting = server.registry.register()
    await _connect(server, call_uuid)
    await asyncio.wait_for(waiting, timeout=5)
    reader, _ = await _connect(server, call_uuid)
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    assert server.rejected == {"unknown_uuid": 1}


@pytest.mark.parametrize(
    ("first_bytes", "reason"),
    [
        (encode_frame(Kind.UUID, uuid.uuid4().bytes), "unknown_uuid"),
        (encode_frame(Kind.AUDIO, b"\x00" * 320), "no_uuid"),
        (encode_frame(Kind.UUID, b"short"), "bad_uuid"),
        (b"\x42\x00\x00", "unknown_kind"),
        (b"\x01\x00", "truncated"),
        (b"", "no_uuid"),
    ],
)
async def test_bad_first_frames_are_refused(
    server: AudioSocketServer, first_bytes: bytes, reason: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # type: ignore[attr-defined]
    writer.write(first_bytes)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    assert server.rejected == {reason: 1}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"\x10\xff\xff" + b"\x00" * 100, "truncated"),  # oversized length, then the peer vanishes
        (encode_frame(Kind.AUDIO, b"\x00" * 321), "bad_audio"),  # half a sample
        (b"\x77\x00\x01\x00", "unknown_kind"),
        (encode_frame(Kind.DTMF, b"x"), "bad_dtmf"),
    ],
)
async def test_bad_frames_mid_call_end_only_that_call(
    server: AudioSocketServer, bad: bytes, reason: str
) -> None:
    first_uuid, first_waiting = server.registry.register()
    other_uuid, other_waiting = server.registry.register()
    _, bad_writer = await _connect(server, first_uuid)
    _, good_writer = await _connect(server, other_uuid)
    bad_call = await asyncio.wait_for(first_waiting, timeout=5)
    good_call = await asyncio.wait_for(other_waiting, timeout=5)
    bad_writer.write(bad)
    bad_writer.write_eof()
    events = await _events_until_hangup(bad_call)
    assert events[-1].reason == reason
    # The other call is untouched and still receives audio.
    good_writer.write(encode_frame(Kind.AUDIO, b"\x00" * FRAME_BYTES))
    await good_writer.drain()
    event = await asyncio.wait_for(good_call.events.get(), timeout=5)
    assert isinstance(event, AudioIn)
    assert server.rejected == {reason: 1}


async def test_playback_is_paced_frames_and_stops_on_barge_in(server: AudioSocketServer) -> None:
    call_uuid, waiting = server.registry.register()
    reader, writer = await _connect(server, call_uuid)
    connection = await asyncio.wait_for(waiting, timeout=5)
    playback = Playback()
    playback.feed(b"\x11\x22" * 1600)  # 10 frames
    playback.finish()
    connection.start_playback(playback)
    assert await asyncio.wait_for(playback.done, timeout=5) is True
    received = []
    for _ in range(10):
        header = await reader.readexactly(3)
        assert header[0] == Kind.AUDIO and int.from_bytes(header[1:], "big") == FRAME_BYTES
        received.append(await reader.readexactly(FRAME_BYTES))
    assert b"".join(received) == b"\x11\x22" * 1600
    # A long prompt cut by barge-in: done resolves False and sending stops.
    long_prompt = Playback()
    long_prompt.feed(b"\x00\x01" * 160 * 500)
    connection.start_playback(long_prompt)
    await asyncio.sleep(0.1)
    connection.stop_playback()
    assert await long_prompt.done is False
    sent = long_prompt.frames_sent
    await asyncio.sleep(0.1)
    assert long_prompt.frames_sent == sent < 500
    writer.close()
