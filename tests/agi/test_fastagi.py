"""The FastAGI server against the real Asterisk session captures and against bad clients."""

from __future__ import annotations

import asyncio

import pytest

from agi.fastagi import AgiChannel, AgiHangup, AgiProtocolError, FastAgiServer, parse_reply
from tests.agi.captures import load_agi_capture


async def _asterisk(port: int, env_lines: list[str], replies: list[str]) -> list[str]:
    """Play Asterisk: send the env, answer each command line with the next captured reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write("".join(f"{line}\n" for line in env_lines).encode() + b"\n")
    seen: list[str] = []
    for reply in replies:
        line = await reader.readline()
        if not line:
            break
        seen.append(line.decode().rstrip("\n"))
        writer.write(reply.encode())
        await writer.drain()
    writer.close()
    return seen


async def test_answered_session_replies_parse_as_captured() -> None:
    capture = load_agi_capture("fastagi-session-answered.txt")
    results: dict[str, object] = {}

    async def handler(channel: AgiChannel) -> None:
        results["call_id"] = await channel.get_variable("OUTDIAL_CALL_ID")
        results["amd"] = await channel.get_variable("AMDSTATUS")
        results["exec"] = await channel.exec("AudioSocket", "uuid,127.0.0.1:9092")
        results["request"] = channel.request

    server = FastAgiServer(handler)
    port = await server.start("127.0.0.1", 0)
    replies = [reply for _, reply in capture.exchanges]
    sent = await _asterisk(port, capture.env_lines, replies[:2] + [replies[3]])
    await server.stop()
    assert sent[0] == "GET VARIABLE OUTDIAL_CALL_ID"
    assert results["call_id"] == "call-0"
    assert results["amd"] is None  # `200 result=0`: the variable is not set
    assert results["exec"].result == 0
    request = results["request"]
    assert request.path == "outdial"
    assert request.query == {"campaign": "c1", "lead": "42"}
    assert request.channel.startswith("Local/s@customer-answer")


async def test_caller_hangup_line_and_511_as_captured() -> None:
    """The unsolicited HANGUP line is skipped; a 511 reply raises AgiHangup."""
    capture = load_agi_capture("fastagi-session-caller-hangup.txt")
    replies = [reply for _, reply in capture.exchanges]
    # Asterisk's stream after EXEC: result=-1, then HANGUP + the SET reply, then 511.
    stream = [replies[3], replies[4] + replies[5], replies[-1]]
    outcome: dict[str, object] = {}

    async def handler(channel: AgiChannel) -> None:
        outcome["exec"] = (await channel.exec("AudioSocket", "x,127.0.0.1:1")).result
        await channel.set_variable("OUTDIAL_RESULT", "done")
        outcome["hung_up_after_set"] = channel.hung_up
        try:
            await channel.command("NOOP after-hangup")
        except AgiHangup:
            outcome["raised"] = True

    server = FastAgiServer(handler)
    port = await server.start("127.0.0.1", 0)
    await _asterisk(port, capture.env_lines, stream)
    await server.stop()
    assert outcome == {"exec": -1, "hung_up_after_set": True, "raised": True}


@pytest.mark.parametrize(
    "payload",
    [
        b"agi_network: yes\nagi_request: agi://x/outdial\n",  # closes before the blank line
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not AGI at all
        b"\xff\xfe\x00garbage\n\n",  # not even text
        b"\n",  # empty header
        b"agi_x: " + b"y" * 10000 + b"\n\n",  # a line longer than the limit
    ],
)
async def test_bad_clients_are_dropped_and_server_keeps_serving(payload: bytes) -> None:
    handled: list[str] = []

    async def handler(channel: AgiChannel) -> None:
        handled.append(channel.request.uniqueid)

    server = FastAgiServer(handler, header_timeout=2.0)
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    # The server must close on us rather than spin (the panoramisk bug, NOTES §4).
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()
    # ...and a proper client right after is served.
    await _asterisk(port, ["agi_uniqueid: 1.2", "agi_request: agi://h/outdial"], [])
    await asyncio.sleep(0.05)
    await server.stop()
    assert server.rejected == 1
    assert handled == ["1.2"]


async def test_silent_client_times_out() -> None:
    server = FastAgiServer(lambda channel: asyncio.sleep(0), header_timeout=0.2)
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()
    await server.stop()
    assert server.rejected == 1


def test_reply_parser() -> None:
    assert parse_reply("200 result=1 (call-0)").data == "call-0"
    reply = parse_reply("200 result=-1 endpos=0")
    assert (reply.code, reply.result, reply.data) == (200, -1, None)
    assert parse_reply("510 Invalid or unknown command").code == 510
    with pytest.raises(AgiProtocolError):
        parse_reply("garbage")
