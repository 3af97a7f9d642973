"""The AudioSocket server: framing, UUID admission, bad frames, paced playback."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid

import numpy as np
import pytest

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
    # Named, not derived from the values: a random UUID in a test id differs between xdist
    # workers, which then refuse to run the collection.
    ids=["random_uuid", "audio_first", "short_uuid", "unknown_kind", "truncated", "empty"],
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
        (b"\x10\xff\xff" + b"\x00" * 100, "oversized"),  # refused before its bytes arrive
        (b"\x10\x01\x00" + b"\x00" * 100, "truncated"),  # a length that lies, then the close
        (encode_frame(Kind.AUDIO, b"\x00" * 321), "bad_audio"),  # half a sample
        (encode_frame(Kind.AUDIO_SLIN16, b"\x00" * 641), "bad_audio"),
        (encode_frame(Kind.AUDIO, b""), "bad_audio"),
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


async def _audio_until_quiet(connection: MediaConnection, quiet_s: float = 0.5) -> list[AudioIn]:
    """Audio events until none came for `quiet_s` (the partial-frame wait is far shorter)."""
    frames = []
    while True:
        try:
            event = await asyncio.wait_for(connection.events.get(), timeout=quiet_s)
        except TimeoutError:
            return frames
        assert isinstance(event, AudioIn)
        frames.append(event)


def _ramp(n_bytes: int, seed: int) -> bytes:
    """Audio whose every sample is different, so a lost or moved byte shows."""
    samples = (np.arange(n_bytes // 2) * 7 + seed * 1000) % 20000 - 10000
    return samples.astype("<i2").tobytes()


async def test_partial_frames_of_a_playback_are_reframed_as_the_capture_sends_them(
    server: AudioSocketServer,
) -> None:
    """The lengths a real Asterisk sent while playing three files: 320-byte frames, each
    playback ending in a partial one, nothing in the pauses between them."""
    lengths = [f["len"] for f in load_json_capture("audiosocket-playback-partial-frames.json")
               ["frames"] if f.get("kind") == Kind.AUDIO]  # fmt: skip
    playbacks: list[list[int]] = [[]]
    for length in lengths:
        playbacks[-1].append(length)
        if length < FRAME_BYTES:
            playbacks.append([])
    playbacks.pop()
    assert [p[-1] for p in playbacks] == [152, 102, 134]
    call_uuid, waiting = server.registry.register("call-capture")
    _, writer = await _connect(server, call_uuid)
    connection = await asyncio.wait_for(waiting, timeout=5)
    for index, playback in enumerate(playbacks):
        audio = _ramp(sum(playback), index)
        offset = 0
        for length in playback:
            writer.write(encode_frame(Kind.AUDIO, audio[offset : offset + length]))
            offset += length
        await writer.drain()
        frames = await _audio_until_quiet(connection)
        assert {len(f.pcm) for f in frames} == {FRAME_BYTES}
        whole = -(-len(audio) // FRAME_BYTES)
        assert len(frames) == whole
        assert b"".join(f.pcm for f in frames) == audio.ljust(whole * FRAME_BYTES, b"\x00")
        assert all(a.at <= b.at for a, b in itertools.pairwise(frames))
    writer.close()


async def test_random_even_lengths_lose_no_sample(server: AudioSocketServer) -> None:
    rng = random.Random(5)
    call_uuid, waiting = server.registry.register()
    _, writer = await _connect(server, call_uuid)
    connection = await asyncio.wait_for(waiting, timeout=5)
    audio = _ramp(48_000, 3)
    offset = 0
    while offset < len(audio):
        length = rng.randrange(2, 3 * FRAME_BYTES, 2)
        writer.write(encode_frame(Kind.AUDIO, audio[offset : offset + length]))
        offset += length
    await writer.drain()
    frames = await _audio_until_quiet(connection)
    assert {len(f.pcm) for f in frames} == {FRAME_BYTES}
    assert b"".join(f.pcm for f in frames) == audio
    assert connection.frames_in == len(audio) // FRAME_BYTES != connection.messages_in
    writer.close()


def _tone(rate: int, hz: float, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def _peak_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / 8000)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("kind", sorted(set(AUDIO_RATES) - {Kind.AUDIO}))
async def test_wideband_kinds_are_resampled_to_8khz_frames(
    server: AudioSocketServer, kind: Kind
) -> None:
    """No Asterisk here sends wideband: the kinds are upstream's (res_audiosocket.h), the
    audio is a tone at the kind's rate, and what must come out is the same tone at 8 kHz
    with the band above 4 kHz filtered away rather than folded into speech."""
    rate = AUDIO_RATES[kind]
    call_uuid, waiting = server.registry.register()
    _, writer = await _connect(server, call_uuid)
    connection = await asyncio.wait_for(waiting, timeout=5)
    audio = _tone(rate, 440.0, 1.0)
    if rate > 8000 * 2:  # a 6 kHz tone too: inaudible at 8 kHz, it must not alias to 2 kHz
        high = np.frombuffer(_tone(rate, 6000.0, 1.0), dtype="<i2")
        audio = (np.frombuffer(audio, dtype="<i2") // 2 + high // 2).astype("<i2").tobytes()
    step = rate // 50 * 2  # 20 ms messages, as chan_audiosocket sends them
    for offset in range(0, len(audio), step):
        writer.write(encode_frame(kind, audio[offset : offset + step]))
    await writer.drain()
    frames = await _audio_until_quiet(connection)
    pcm = b"".join(f.pcm for f in frames)
    assert {len(f.pcm) for f in frames} == {FRAME_BYTES}
    assert abs(len(pcm) // 2 - 8000) <= 160  # one second of audio, give or take a frame
    assert abs(_peak_hz(pcm[1600:-1600]) - 440.0) < 10
    if rate > 8000 * 2:
        samples = np.frombuffer(pcm[1600:-1600], dtype="<i2").astype(np.float64)
        spectrum = np.abs(np.fft.rfft(samples))
        freqs = np.fft.rfftfreq(samples.size, 1 / 8000)
        alias = spectrum[(freqs > 1900) & (freqs < 2100)].max()
        assert alias < spectrum.max() / 100
    writer.close()


async def test_a_change_of_kind_mid_call_keeps_the_audio(server: AudioSocketServer) -> None:
    call_uuid, waiting = server.registry.register()
    _, writer = await _connect(server, call_uuid)
    connection = await asyncio.wait_for(waiting, timeout=5)
    narrow = _ramp(3200, 1)
    writer.write(encode_frame(Kind.AUDIO, narrow[:3000]))
    writer.write(encode_frame(Kind.AUDIO_SLIN16, _tone(16000, 300.0, 0.2)))
    await writer.drain()
    frames = await _audio_until_quiet(connection)
    pcm = b"".join(f.pcm for f in frames)
    assert pcm.startswith(narrow[:3000])
    assert abs(len(pcm) // 2 - 1500 - 1600) <= 160
    writer.close()


async def test_a_protocol_error_is_logged_with_the_call_id_and_sending_goes_on(
    server: AudioSocketServer, caplog: pytest.LogCaptureFixture
) -> None:
    call_uuid, waiting = server.registry.register("call-odd")
    reader, writer = await _connect(server, call_uuid)
    connection = await asyncio.wait_for(waiting, timeout=5)
    writer.write(encode_frame(Kind.AUDIO, b"\x00" * 101))
    writer.write(encode_frame(Kind.AUDIO, b"\x00" * FRAME_BYTES) * 50)  # more than is read
    await writer.drain()
    event = await asyncio.wait_for(connection.events.get(), timeout=5)
    assert isinstance(event, HangupIn) and event.protocol_error and event.reason == "bad_audio"
    assert "call call-odd" in caplog.text and "bad_audio" in caplog.text
    # The peer still hears us: an apology can be played before the session closes the media.
    apology = Playback()
    apology.feed(b"\x05\x00" * 800)
    apology.finish()
    connection.start_playback(apology)
    assert await asyncio.wait_for(apology.done, timeout=5) is True
    received = await reader.readexactly(5 * (3 + FRAME_BYTES))
    assert received[3 : 3 + 4] == b"\x05\x00\x05\x00"
    await connection.close()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()


async def test_the_media_clock_tells_how_long_the_event_loop_stood_still(
    server: AudioSocketServer,
) -> None:
    """A call is live, so the clock ticks; the loop then runs nothing for 0.3 s (a stall). The
    clock reports it while it is not over for the clock yet (just after the stall, before it
    ticked again) and once it ticked; a second of the loop running freely is no stall."""
    call_uuid, waiting = server.registry.register()
    _, writer = await _connect(server, call_uuid)
    await asyncio.wait_for(waiting, timeout=5)
    clock = server.clock
    before = time.monotonic()
    await asyncio.sleep(1.0)
    free = clock.stalled_s(before, time.monotonic())
    stall_start = time.monotonic()
    time.sleep(0.3)  # noqa: ASYNC251 - the point: the whole event loop stands still
    right_after = clock.stalled_s(stall_start, time.monotonic())
    await asyncio.sleep(0.1)
    ticked_since = clock.stalled_s(stall_start, time.monotonic())
    writer.close()
    assert free == 0.0
    assert 0.3 - 0.05 <= right_after <= 0.3
    assert 0.3 - 0.05 <= ticked_since <= 0.3 + 0.05
    # Only the part of a stall after `since` counts.
    assert clock.stalled_s(stall_start + 0.2, time.monotonic()) < ticked_since - 0.15
