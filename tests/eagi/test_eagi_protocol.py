"""The EAGI extension's frames and payloads, and the bridge's weight."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from agi import eagi_protocol as proto
from agi.audiosocket import AudioSocketServer, MediaClock, UuidRegistry
from tests.agi.conftest import REPO


def test_hello_and_outcome_round_trip() -> None:
    hello = proto.Hello("c-1", "Local/1@x;1", "1795500397.26", "NOTSURE")
    assert proto.Hello.from_payload(hello.to_payload()) == hello
    outcome = proto.Outcome("transfer", {"OUTDIAL_SUMMARY": 'said "no"'}, "Queue", "orders")
    assert proto.Outcome.from_payload(outcome.to_payload()) == outcome


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"channel": "x"}', "call_id must be a string"),
        (b'{"call_id": 7}', "call_id must be a string"),
        (b'{"call_id": "c", "secret": 1}', "unknown fields"),
    ],
)
def test_bad_hellos_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(proto.ProtocolError, match=message):
        proto.Hello.from_payload(payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"action": "dance"}', "action 'dance'"),
        (b'{"action": "hangup", "variables": {"A": 1}}', "map strings to strings"),
        (b'{"action": "transfer"}', "needs an application"),
        (b"{", "not UTF-8 JSON"),
    ],
)
def test_bad_outcomes_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(proto.ProtocolError, match=message):
        proto.Outcome.from_payload(payload)


def test_frame_buffer_waits_for_whole_frames() -> None:
    stream = proto.encode_frame(proto.AUDIO, b"\x01\x02" * 160) + proto.encode_frame(
        proto.PROMPT_END, proto.PLAY
    )
    frames = proto.FrameBuffer()
    assert frames.feed(stream[:2]) == []
    assert frames.feed(stream[2:200]) == []
    assert frames.feed(stream[200:]) == [
        (proto.AUDIO, b"\x01\x02" * 160),
        (proto.PROMPT_END, proto.PLAY),
    ]
    with pytest.raises(ValueError, match="exceeds"):
        proto.encode_frame(proto.AUDIO, bytes(70000))


async def test_plain_audiosocket_server_refuses_a_hello() -> None:
    """Without a bridge greeter the EAGI kinds are as unknown as any other."""
    server = AudioSocketServer(UuidRegistry(), MediaClock())
    port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(proto.encode_frame(proto.HELLO, proto.Hello("c").to_payload()))
        assert await reader.read() == b""
        writer.close()
    finally:
        await server.stop()
    assert server.rejected == {"unknown_kind": 1}


def test_the_bridge_imports_nothing_heavy() -> None:
    """Started per call: no models, no numeric stack, none of the daemon's call machinery."""
    code = "import sys, agi.eagi_bridge; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    heavy = {"numpy", "vosk", "spacy", "piper", "librosa", "pydantic", "asyncpg", "asyncio"}
    heavy |= {"agi.session", "agi.service", "agi.audiosocket", "dialog", "voice"}
    assert "asterisk.agi" in loaded
    assert loaded & heavy == set()
