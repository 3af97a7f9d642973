"""The FastAGI server against the real Asterisk session captures and against bad clients."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agi.fastagi import (
    AgiChannel,
    AgiHangup,
    AgiProtocolError,
    AgiTimeout,
    FastAgiServer,
    RefusalLog,
    parse_reply,
)
from tests.agi.captures import load_agi_capture
from tests.dialer.helpers import until


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


# -- hostile clients (issue 23, finding 1) ------------------------------------------------------

ENV = b"agi_network: yes\nagi_channel: x\n\n"


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Drain what the server sent; True once it closed the connection (bounded wait)."""
    async with asyncio.timeout(10):
        while await reader.read(4096):
            pass
    return True


async def test_a_client_that_stops_answering_is_dropped() -> None:
    """The header, then silence after the first command: the connection is closed and counted
    instead of being held forever."""
    refused: list[str] = []
    raised: list[BaseException] = []

    async def handler(channel: AgiChannel) -> None:
        try:
            await channel.get_variable("OUTDIAL_CALL_ID")
        except AgiTimeout as exc:
            raised.append(exc)
            raise

    server = FastAgiServer(handler, reply_timeout=0.3, on_refuse=refused.append)
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ENV)
    assert await reader.readline() == b"GET VARIABLE OUTDIAL_CALL_ID\n"
    assert await _closed_by_server(reader)
    writer.close()
    await server.stop()
    assert refused == ["reply_timeout"]
    assert len(raised) == 1 and "GET VARIABLE" in str(raised[0])
    assert server.connections == 0


async def test_a_reply_timeout_spares_long_running_commands() -> None:
    """EXEC AudioSocket lasts the whole call: no reply timeout applies to it."""
    results: list[int | None] = []

    async def handler(channel: AgiChannel) -> None:
        reply = await channel.exec("AudioSocket", "uuid,127.0.0.1:9092", long_running=True)
        results.append(reply.result)

    server = FastAgiServer(handler, reply_timeout=0.05)
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ENV)
    assert (await reader.readline()).startswith(b"EXEC AudioSocket")
    await asyncio.sleep(0.3)  # the call goes on well past the reply timeout
    writer.write(b"200 result=0\n")
    assert await _closed_by_server(reader)
    writer.close()
    await server.stop()
    assert results == [0]


async def test_connections_over_the_cap_are_closed_at_once() -> None:
    refused: list[str] = []
    served: list[str] = []

    async def handler(channel: AgiChannel) -> None:
        served.append(channel.request.uniqueid)

    server = FastAgiServer(
        handler,
        header_timeout=600,
        max_connections=2,
        on_refuse=refused.append,
    )
    port = await server.start("127.0.0.1", 0)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    async with asyncio.timeout(10):
        await until(lambda: server.connections == 2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_by_server(reader)
    writer.close()
    assert refused == ["capacity"]
    assert server.connections == 2  # the first two are still open
    # A slot freed is a slot served again.
    held[0][1].close()
    async with asyncio.timeout(10):
        await until(lambda: server.connections == 1)
    await _asterisk(port, ["agi_uniqueid: 1.3"], [])
    async with asyncio.timeout(10):
        await until(lambda: served == ["1.3"])
    assert refused == ["capacity", "bad_header"]  # the closed one had sent no header
    for _, w in held[1:]:
        w.close()
    await server.stop(grace=1)


async def test_stop_drops_clients_still_owing_their_header() -> None:
    """SIGTERM must not wait for idle clients to time out."""
    server = FastAgiServer(lambda channel: asyncio.sleep(0), header_timeout=600)
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(10):
        await until(lambda: server.connections == 1)
    await asyncio.wait_for(server.stop(grace=600), 10)
    assert await _closed_by_server(reader)
    writer.close()
    assert server.connections == 0


def test_refusals_are_logged_once_a_minute_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of bad clients must not flood the log: one line per reason per interval, the
    next one saying how many were left out."""
    now = [0.0]
    refusals = RefusalLog(interval_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="agi.fastagi"):
        for _ in range(5):
            refusals.warn("header_timeout", "client %s rejected", "a")
        refusals.warn("capacity", "client %s refused", "b")
        now[0] = 61
        refusals.warn("header_timeout", "client %s rejected", "c")
    assert [r.getMessage() for r in caplog.records] == [
        "client a rejected",
        "client b refused",
        "client c rejected (4 more like it since the last such line)",
    ]
