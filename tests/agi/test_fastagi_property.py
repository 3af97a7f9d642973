"""Bad bytes on FastAGI: whatever Asterisk's side of one connection sends (a header cut short,
random bytes after a valid start, replies that are not replies, lines over the limit), that
connection ends with a clear error of its own (`AgiProtocolError`, `AgiHangup`, or a refused
header counted in `rejected`), and a second connection served meanwhile is untouched."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agi.fastagi import MAX_LINE_BYTES, AgiChannel, AgiHangup, AgiProtocolError, FastAgiServer
from tests.agi.captures import load_agi_capture

CAPTURE = load_agi_capture("fastagi-session-answered.txt")
HEADER = "".join(f"{line}\n" for line in CAPTURE.env_lines).encode() + b"\n"
GOOD_REPLY = CAPTURE.exchanges[0][1].encode()  # `200 result=1 (call-0)`

lines = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"200 result=", b"HANGUP\n", b"511 ", b"\xff\xfe\n", b"200 result=1 (x"]),
    st.integers(MAX_LINE_BYTES - 2, MAX_LINE_BYTES + 10).map(lambda n: b"2" * n + b"\n"),
)
# (what stands in for the header, what stands in for the reply to the first command)
streams = st.one_of(
    st.tuples(st.integers(0, len(HEADER) - 1).map(lambda n: HEADER[:n]), lines).map(
        lambda t: (t[0] + t[1], b"")
    ),  # a header cut short, then anything
    st.tuples(st.just(HEADER), st.lists(lines, min_size=1, max_size=3).map(b"".join)),
)


class Outcomes:
    def __init__(self) -> None:
        self.by_env: dict[str, object] = {}

    async def handler(self, channel: AgiChannel) -> None:
        name = channel.request.env.get("agi_callerid", "?")
        try:
            self.by_env[name] = await channel.command("GET VARIABLE OUTDIAL_CALL_ID")
        except (AgiProtocolError, AgiHangup) as exc:
            self.by_env[name] = exc
            raise


async def _peer(port: int, header: bytes, reply: bytes, *, close: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    if reply:
        await asyncio.wait_for(reader.readline(), 5)  # the command
        writer.write(reply)
    if close:
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 5)
    else:
        await asyncio.wait_for(reader.readline(), 5)
        writer.write(GOOD_REPLY)
        await asyncio.wait_for(reader.read(), 5)
    writer.close()


async def _one_bad_peer(header: bytes, reply: bytes) -> None:
    outcomes = Outcomes()
    server = FastAgiServer(outcomes.handler, header_timeout=2)
    port = await server.start("127.0.0.1", 0)
    good_header = HEADER.replace(b"agi_callerid: ", b"agi_callerid: good")
    try:
        await asyncio.gather(
            _peer(port, header, reply, close=True), _peer(port, good_header, b"", close=False)
        )
        await server.stop(grace=5)
    finally:
        await server.stop(grace=0)
    good = next(v for k, v in outcomes.by_env.items() if k.startswith("good"))
    assert getattr(good, "data", None) == "call-0"  # the other connection got its answer
    bad = {k: v for k, v in outcomes.by_env.items() if not k.startswith("good")}
    if not bad:  # the header never completed: refused and counted, nothing else ran
        assert server.rejected == 1
        return
    (outcome,) = bad.values()
    assert isinstance(outcome, AgiProtocolError | AgiHangup) or hasattr(outcome, "code")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams)
def test_any_bytes_end_one_fastagi_connection_clearly(stream: tuple[bytes, bytes]) -> None:
    asyncio.run(_one_bad_peer(*stream))
