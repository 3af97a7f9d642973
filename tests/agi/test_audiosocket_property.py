"""Bad bytes on the AudioSocket: random frame sizes and kinds, truncated headers, lengths that
lie, random bytes after a valid start. Whatever one connection sends, it ends that call only,
with one HangupIn naming a reason, and a second call on the same server keeps its audio."""

from __future__ import annotations

import asyncio
import struct
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agi.audiosocket import (
    AUDIO_RATES,
    FRAME_BYTES,
    AudioIn,
    AudioSocketServer,
    DtmfIn,
    HangupIn,
    Kind,
    MediaClock,
    MediaConnection,
    UuidRegistry,
    encode_frame,
    max_audio_bytes,
)

# Every way a call's inbound media can end.
PEER_ENDS = {"close", "hangup_frame", "error_frame", "reset"}
PROTOCOL_ERRORS = {"truncated", "unknown_kind", "bad_audio", "bad_dtmf", "oversized", "bad_uuid"}
AUDIO_KINDS = sorted(AUDIO_RATES)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """One frame, well formed or not: any kind byte, any length field, any payload."""
    kind = draw(st.one_of(st.sampled_from([*Kind]), st.integers(0, 255)))
    payload = draw(st.binary(max_size=3 * FRAME_BYTES))
    length = draw(st.one_of(st.just(len(payload)), st.integers(0, 0xFFFF)))
    return struct.pack("!BH", int(kind), length) + payload


@st.composite
def good_audio(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(AUDIO_KINDS))
    samples = draw(st.integers(1, max_audio_bytes(kind) // 2))
    return encode_frame(kind, bytes(2 * samples))


streams = st.one_of(
    st.lists(frames(), max_size=8).map(b"".join),  # random sizes, kinds and lengths
    st.lists(good_audio(), max_size=6).map(b"".join),  # any even length, any audio kind
    st.tuples(st.lists(good_audio(), max_size=3), st.binary(min_size=1, max_size=2)).map(
        lambda t: b"".join(t[0]) + t[1]  # a header cut short
    ),
    st.tuples(good_audio(), st.binary(max_size=600)).map(lambda t: t[0] + t[1]),  # garbage
)


async def _events(connection: MediaConnection) -> list[object]:
    events: list[object] = []
    while not events or not isinstance(events[-1], HangupIn):
        events.append(await asyncio.wait_for(connection.events.get(), 10))
    return events


async def _one_bad_peer(data: bytes) -> None:
    server = AudioSocketServer(UuidRegistry(), MediaClock(), first_frame_timeout=2)
    port = await server.start("127.0.0.1", 0)
    try:
        bad_uuid, bad_waiting = server.registry.register("call-bad")
        good_uuid, good_waiting = server.registry.register("call-good")
        connections = []
        for call_uuid in (bad_uuid, good_uuid):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(encode_frame(Kind.UUID, uuid.UUID(call_uuid).bytes))
            connections.append(writer)
        bad_writer, good_writer = connections
        bad = await asyncio.wait_for(bad_waiting, 5)
        good = await asyncio.wait_for(good_waiting, 5)
        bad_writer.write(data)
        bad_writer.write_eof()
        events = await _events(bad)
        ending = events[-1]
        assert isinstance(ending, HangupIn)
        assert ending.reason in (PROTOCOL_ERRORS if ending.protocol_error else PEER_ENDS)
        assert all(isinstance(e, AudioIn | DtmfIn) for e in events[:-1])
        assert all(len(e.pcm) == FRAME_BYTES for e in events if isinstance(e, AudioIn))
        # The other call is untouched.
        good_writer.write(encode_frame(Kind.AUDIO, b"\x01\x00" * 160))
        await good_writer.drain()
        heard = await asyncio.wait_for(good.events.get(), 5)
        assert isinstance(heard, AudioIn) and heard.pcm == b"\x01\x00" * 160
        assert not good.closed.is_set()
        await bad.close()
        for writer in connections:
            writer.close()
    finally:
        await server.stop()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams)
def test_any_bytes_end_one_call_with_a_reason_and_spare_the_others(data: bytes) -> None:
    asyncio.run(_one_bad_peer(data))
