"""Bad bytes on AMI: after a valid login, the PBX side sends random bytes, truncated or
never-ending messages, repeated and empty headers. The connection either skips what it cannot
read or drops and remakes itself; either way the events that follow reach the dialer, and
nothing escapes into the event loop."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.ami import MAX_MESSAGE_CHARS, AmiConnection, AmiEndpoint

BANNER = b"Asterisk Call Manager/13.0.0\r\n"
EVENT = b"Event: VarSet\r\nChannel: Local/1@c-1;1\r\nVariable: AMDSTATUS\r\nValue: HUMAN\r\n\r\n"

headers = st.sampled_from(
    [b"Event: VarSet", b"Event: Hangup", b"Event: Shutdown", b"Response: Success",
     b"Response: Follows", b"ActionID: x", b"Event: ", b": ", b"Uniqueid: 1.2", b"Cause: x"]
)  # fmt: skip
messages = st.lists(st.one_of(headers, st.binary(max_size=40)), max_size=6).map(
    lambda parts: b"\r\n".join(parts) + b"\r\n\r\n"
)
garbage = st.one_of(
    st.binary(max_size=400),
    st.lists(messages, max_size=5).map(b"".join),
    st.lists(messages, max_size=3).map(lambda m: b"".join(m)[:-2]),  # a message cut short
    st.just(b"Event: VarSet\r\nValue: " + b"9" * (MAX_MESSAGE_CHARS + 10)),  # never ends
)


class FakePbx:
    """Logs anyone in, then sends `garbage` on the first connection only, and EVENT on all."""

    def __init__(self, garbage: bytes) -> None:
        self.garbage = garbage
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(BANNER)
        login = await reader.readuntil(b"\r\n\r\n")
        action_id = next(
            line.split(b": ", 1)[1] for line in login.split(b"\r\n") if line.startswith(b"ActionID")
        )
        writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\nMessage: ok\r\n\r\n")
        if self.connections == 1:
            writer.write(self.garbage)
            writer.write(b"\r\n\r\n")  # whatever was cut short ends here
        writer.write(EVENT)
        await writer.drain()
        await reader.read()  # until the client goes


async def _after_garbage(data: bytes) -> None:
    loop = asyncio.get_running_loop()
    leaked: list[object] = []
    loop.set_exception_handler(lambda _loop, context: leaked.append(context))
    pbx = FakePbx(data)
    server = await asyncio.start_server(pbx.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    seen = asyncio.Event()

    def on_event(message: object) -> None:
        if getattr(message, "Variable", None) == "AMDSTATUS":
            seen.set()

    async def on_up() -> None:
        return None

    conn = AmiConnection(
        AmiEndpoint("127.0.0.1", port, "outdial", "s"),
        on_event,
        on_up,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        timeout_s=5,
    )
    conn.start()
    try:
        await asyncio.wait_for(seen.wait(), 10)
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()
    assert pbx.connections <= 2
    assert leaked == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=garbage)
def test_any_bytes_after_login_leave_the_events_flowing(data: bytes) -> None:
    asyncio.run(_after_garbage(data))
