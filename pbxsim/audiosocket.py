"""AudioSocket client: the media half of a call, as Asterisk's `AudioSocket()` application runs it.

Frames are `kind (1 byte) | length (2 bytes, big-endian) | payload`. Asterisk sends one `0x01`
frame with the 16-byte binary UUID, then `0x10` audio only while the far end produces media
(320 bytes = 20 ms of 8 kHz slin16, except the last frame of a file playback, which is
partial; `0x11`-`0x18` at wideband rates from `chan_audiosocket`), `0x03` DTMF digits, and
hangs up by closing the TCP connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
# slin, slin12, slin16, slin24, slin32, slin44, slin48, slin96, slin192 (res_audiosocket.h).
AUDIO_KINDS = {
    "slin": 0x10,
    "slin12": 0x11,
    "slin16": 0x12,
    "slin24": 0x13,
    "slin32": 0x14,
    "slin44": 0x15,
    "slin48": 0x16,
    "slin96": 0x17,
    "slin192": 0x18,
}
KNOWN_KINDS = {KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_ERROR, *AUDIO_KINDS.values()}

FRAME_BYTES = 320
FRAME_SECONDS = 0.02
# Asterisk refuses audio payloads beyond what one frame of slin could hold in a packet.
MAX_AUDIO_PAYLOAD = 8192
HEADER = struct.Struct("!BH")


class AudioSocketProtocolError(ValueError):
    """Bytes from the server that are not AudioSocket frames."""


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


@dataclass
class FrameReader:
    """Incremental frame splitter for what the AudioSocket server sends back."""

    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Whole frames in `data`; raises on an unknown kind or an oversized length."""
        self.buffer += data
        frames: list[tuple[int, bytes]] = []
        while len(self.buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(self.buffer)
            if kind not in KNOWN_KINDS:
                raise AudioSocketProtocolError(f"unknown frame kind 0x{kind:02x}")
            if kind == KIND_AUDIO and length > MAX_AUDIO_PAYLOAD:
                raise AudioSocketProtocolError(f"audio frame of {length} bytes is oversized")
            if len(self.buffer) < HEADER.size + length:
                break
            payload = bytes(self.buffer[HEADER.size : HEADER.size + length])
            del self.buffer[: HEADER.size + length]
            frames.append((kind, payload))
        return frames


@dataclass(frozen=True)
class BotFrame:
    """One `0x10` frame from the server, with its arrival time (time.monotonic())."""

    t: float
    payload: bytes


class EndReason:
    SERVER_CLOSED = "server_closed"
    SERVER_HANGUP_FRAME = "server_hangup_frame"
    SERVER_ERROR = "server_error"
    PROTOCOL_ERROR = "protocol_error"
    CUSTOMER_HANGUP = "customer_hangup"
    CONNECT_FAILED = "connect_failed"


@dataclass
class AudioSocketFaults:
    """Misbehaviour to inject on the media connection (counted in audio frames sent)."""

    reset_mid_frame_after: int | None = None
    oversized_length_after: int | None = None
    unknown_kind_after: int | None = None


class AudioSocketClient(asyncio.Protocol):
    """One media connection; audio leaves through `send_audio`, called by the shared ticker."""

    def __init__(
        self,
        *,
        on_bot_frame: Callable[[BotFrame], None],
        record_payloads: bool,
        faults: AudioSocketFaults,
    ) -> None:
        self.on_bot_frame = on_bot_frame
        self.record_payloads = record_payloads
        self.faults = faults
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader()
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.frames_sent = 0
        self.error: str | None = None

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.ended.done():
            return
        try:
            frames = self.reader.feed(data)
        except AudioSocketProtocolError as exc:
            log.error("AudioSocket server sent garbage: %s", exc)
            self._finish(EndReason.PROTOCOL_ERROR, str(exc))
            return
        now = time.monotonic()
        for kind, payload in frames:
            if kind in AUDIO_KINDS.values():
                self.on_bot_frame(BotFrame(now, payload if self.record_payloads else b""))
            elif kind == KIND_HANGUP:
                self._finish(EndReason.SERVER_HANGUP_FRAME)
                return
            elif kind == KIND_ERROR:
                log.error("AudioSocket server sent an error frame: %r", payload[:16])
                self._finish(EndReason.SERVER_ERROR, f"error frame {payload[:16]!r}")
                return
            else:
                # The server has no business sending UUID or DTMF frames; Asterisk ignores them.
                log.warning("AudioSocket server sent unexpected frame kind 0x%02x", kind)

    def eof_received(self) -> bool:
        self._finish(EndReason.SERVER_CLOSED)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._finish(EndReason.SERVER_CLOSED if exc is None else EndReason.SERVER_ERROR, exc)

    # ours ---------------------------------------------------------------------------------------
    def _finish(self, reason: str, detail: object = None) -> None:
        if detail is not None and self.error is None:
            self.error = str(detail)
        if not self.ended.done():
            self.ended.set_result(reason)
        if self.transport is not None and reason != EndReason.SERVER_CLOSED:
            self.transport.close()

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.ended.done()

    def send_uuid(self, call_uuid: uuid.UUID) -> None:
        self._write(encode_frame(KIND_UUID, call_uuid.bytes))

    def send_dtmf(self, digit: str) -> None:
        self._write(encode_frame(KIND_DTMF, digit.encode("ascii")))

    def send_audio(self, payload: bytes, kind: int = KIND_AUDIO) -> None:
        """One audio message, from the shared 20 ms ticker while the customer talks; never
        awaits drain."""
        if not self.open:
            return
        self.frames_sent += 1
        if self._inject_fault():
            return
        self._write(encode_frame(kind, payload))

    def hang_up(self, *, with_frame: bool) -> None:
        """The customer hung up: a plain TCP close, as real Asterisk does, or a `0x00` frame."""
        if self.transport is not None:
            if with_frame:
                self._write(encode_frame(KIND_HANGUP))
            self.transport.close()
        if not self.ended.done():
            self.ended.set_result(EndReason.CUSTOMER_HANGUP)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _inject_fault(self) -> bool:
        n, f = self.frames_sent, self.faults
        transport = self.transport
        assert transport is not None
        if f.reset_mid_frame_after is not None and n > f.reset_mid_frame_after:
            transport.write(encode_frame(KIND_AUDIO, bytes(FRAME_BYTES))[: FRAME_BYTES // 2])
            _abort_with_rst(transport)
            self._finish(EndReason.SERVER_ERROR, "fault: reset mid-frame")
            return True
        if f.oversized_length_after is not None and n > f.oversized_length_after:
            transport.write(HEADER.pack(KIND_AUDIO, 0xFFFF) + bytes(FRAME_BYTES))
            self.faults = AudioSocketFaults()
            return True
        if f.unknown_kind_after is not None and n > f.unknown_kind_after:
            transport.write(encode_frame(0x42, b"junk"))
            self.faults = AudioSocketFaults()
            return True
        return False


def _abort_with_rst(transport: asyncio.Transport) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than a FIN, like a crashed peer."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def connect(
    host: str,
    port: int,
    call_uuid: uuid.UUID,
    *,
    on_bot_frame: Callable[[BotFrame], None],
    record_payloads: bool,
    faults: AudioSocketFaults,
) -> AudioSocketClient:
    """Open the media connection and send the `0x01` UUID frame first, as Asterisk does."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: AudioSocketClient(
            on_bot_frame=on_bot_frame, record_payloads=record_payloads, faults=faults
        ),
        host,
        port,
    )
    client.send_uuid(call_uuid)
    return client
