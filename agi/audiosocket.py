"""AudioSocket: the media half of a live call (Asterisk `app_audiosocket`).

Frames are `kind (1 byte) | length (2 bytes, big-endian) | payload`: `0x01` the call's
16-byte UUID (first), `0x10` 8 kHz signed 16-bit LE mono audio (`0x11`-`0x18` the same at
12 ... 192 kHz, from `chan_audiosocket` on a wideband codec), `0x03` one DTMF digit, `0x00`
hang-up, `0xff` an error code. Asterisk hangs up with a plain TCP close as often as with
`0x00`, and sends nothing at all while the far end is silent (see asterisk-captures), so every
timer in the call runs on the wall clock, never on frame counts.

Inbound audio is received here and nowhere else: each message is taken as Asterisk framed it
(any even length: the last frame of a file playback is partial, transcoded sources send what
their codec framed), resampled to 8 kHz when it is wideband, and handed on as fixed 20 ms
frames (`voice.framing.Reframer`). Outbound audio is always `0x10`: Asterisk accepts a frame
of any format and sets up the translation itself (main/channel.c, `__ast_read`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from agi import eagi_protocol
from voice.framing import Reframer

log = logging.getLogger(__name__)

HEADER_BYTES = 3
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit mono
FRAME_SECONDS = 0.020
MAX_PAYLOAD = 65535
SILENCE_FRAME = bytes(FRAME_BYTES)
# Asterisk sends one voice frame per message (20 ms, up to a codec's packet time): more than
# this much audio in one message is not a frame but a broken peer.
MAX_AUDIO_MS = 200
# A partial frame is padded and handed on when no more audio follows within this time.
PARTIAL_FRAME_WAIT_S = 0.06
# A media tick this late (2.5 frames) means the event loop stood still, not that it was
# merely busy; the latest stalls are kept for the calls' silence timers.
STALL_S = 0.05
_STALLS_KEPT = 64


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    AUDIO_SLIN12 = 0x11
    AUDIO_SLIN16 = 0x12
    AUDIO_SLIN24 = 0x13
    AUDIO_SLIN32 = 0x14
    AUDIO_SLIN44 = 0x15
    AUDIO_SLIN48 = 0x16
    AUDIO_SLIN96 = 0x17
    AUDIO_SLIN192 = 0x18
    ERROR = 0xFF
    # outdial's EAGI bridge only (agi/eagi_protocol.py); Asterisk never sends these.
    EAGI_HELLO = eagi_protocol.HELLO
    EAGI_GRANT = eagi_protocol.GRANT
    EAGI_PROMPT_END = eagi_protocol.PROMPT_END
    EAGI_PLAYED = eagi_protocol.PLAYED
    EAGI_OUTCOME = eagi_protocol.OUTCOME


# Sample rate of each audio kind (include/asterisk/res_audiosocket.h upstream).
AUDIO_RATES: dict[Kind, int] = {
    Kind.AUDIO: 8000,
    Kind.AUDIO_SLIN12: 12000,
    Kind.AUDIO_SLIN16: 16000,
    Kind.AUDIO_SLIN24: 24000,
    Kind.AUDIO_SLIN32: 32000,
    Kind.AUDIO_SLIN44: 44100,
    Kind.AUDIO_SLIN48: 48000,
    Kind.AUDIO_SLIN96: 96000,
    Kind.AUDIO_SLIN192: 192000,
}
# What a plain AudioSocket peer (Asterisk) may send; anything else is refused as unknown.
ASTERISK_KINDS = frozenset({Kind.HANGUP, Kind.UUID, Kind.DTMF, Kind.ERROR, *AUDIO_RATES})


class FrameError(Exception):
    """A frame that breaks the protocol; the connection is closed and counted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    kind: Kind
    payload: bytes


def encode_frame(kind: Kind, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return bytes((kind,)) + len(payload).to_bytes(2, "big") + payload


def max_audio_bytes(kind: Kind) -> int:
    """The largest audio payload of `kind` that is still one frame (MAX_AUDIO_MS of audio)."""
    return min(MAX_PAYLOAD, AUDIO_RATES[kind] * MAX_AUDIO_MS // 1000 * 2)


def _check_length(kind: Kind, length: int) -> None:
    """Refuse an audio length before waiting for its bytes: a peer whose length lies must
    not hold the connection open for bytes that never come."""
    if kind in AUDIO_RATES and length > max_audio_bytes(kind):
        limit = max_audio_bytes(kind)
        raise FrameError("oversized", f"{kind.name} message of {length} bytes (at most {limit})")


def _check_payload(kind: Kind, payload: bytes) -> None:
    size = len(payload)
    if kind is Kind.UUID and size != 16:
        raise FrameError("bad_uuid", f"UUID frame of {size} bytes, expected 16")
    if kind is Kind.DTMF and (size != 1 or chr(payload[0]) not in "0123456789*#ABCD"):
        raise FrameError("bad_dtmf", f"DTMF frame {payload[:4]!r}")
    if kind in AUDIO_RATES and (size == 0 or size % 2):
        raise FrameError("bad_audio", f"audio frame of {size} bytes is not whole 16-bit samples")


async def read_frame(
    reader: asyncio.StreamReader, accept: frozenset[Kind] = ASTERISK_KINDS
) -> Frame | None:
    """The next frame of a kind in `accept`, or None on a clean close between frames."""
    try:
        header = await reader.readexactly(HEADER_BYTES)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("truncated", f"header cut after {len(exc.partial)} bytes") from exc
        return None
    try:
        kind = Kind(header[0])
    except ValueError:
        kind = None
    if kind is None or kind not in accept:
        raise FrameError("unknown_kind", f"frame kind 0x{header[0]:02x}")
    length = int.from_bytes(header[1:3], "big")
    _check_length(kind, length)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        got = len(exc.partial)
        raise FrameError("truncated", f"payload cut at {got} of {length} bytes") from exc
    _check_payload(kind, payload)
    return Frame(kind, payload)


# --- inbound events -------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioIn:
    pcm: bytes
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class DtmfIn:
    digit: str
    at: float


@dataclass(frozen=True)
class HangupIn:
    at: float
    reason: str  # "close", "hangup_frame", "error_frame", "reset", or a FrameError reason
    # The peer broke the protocol (this call only): a failure, not the customer leaving.
    protocol_error: bool = False


MediaEvent = AudioIn | DtmfIn | HangupIn


# --- outbound playback ----------------------------------------------------------------------


@dataclass(eq=False)
class Playback:
    """One prompt being played; `done` resolves True when finished, False when cut off."""

    interruptible: bool = True
    buffer: bytearray = field(default_factory=bytearray)
    complete: bool = False  # the producer has appended everything
    first_frame_at: float | None = None
    stopped_at: float | None = None
    frames_sent: int = 0
    starved_frames: int = 0
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def feed(self, pcm: bytes) -> None:
        self.buffer.extend(pcm)

    def finish(self) -> None:
        self.complete = True

    def next_frame(self) -> bytes | None:
        if len(self.buffer) >= FRAME_BYTES:
            frame = bytes(self.buffer[:FRAME_BYTES])
            del self.buffer[:FRAME_BYTES]
            return frame
        if self.complete and self.buffer:
            frame = bytes(self.buffer).ljust(FRAME_BYTES, b"\x00")
            self.buffer.clear()
            return frame
        if not self.complete and self.first_frame_at is not None:
            # Synthesis fell behind mid-prompt: keep the 20 ms cadence with silence (a longer
            # pause for the listener) rather than leaving a gap in the stream.
            self.starved_frames += 1
            return SILENCE_FRAME
        return None  # not started yet, or finished

    @property
    def drained(self) -> bool:
        return self.complete and not self.buffer


class MediaConnection:
    """One accepted AudioSocket connection: inbound events, paced outbound audio."""

    # Frame kinds the peer may send after its UUID; subclasses widen it (agi/eagi_server.py).
    accepted_kinds: ClassVar[frozenset[Kind]] = ASTERISK_KINDS

    def __init__(
        self, call_uuid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.uuid = call_uuid
        self._reader = reader
        self._writer = writer
        self.events: asyncio.Queue[MediaEvent] = asyncio.Queue()
        self.playback: Playback | None = None
        self.closed = asyncio.Event()
        self.frames_out = 0
        # The frame sent on the latest tick (None: nothing was): barge-in's echo reference.
        self.last_played: bytes | None = None
        self.frames_in = 0  # 20 ms frames handed to the session
        self.messages_in = 0  # audio messages as the peer framed them
        self.call_id: str | None = None  # the dialer's call id, for the logs
        self._reframer = Reframer()
        self._partial_flush: asyncio.TimerHandle | None = None
        self._last_audio_at = float("-inf")

    # inbound
    async def pump(self, on_error: Callable[[str], None]) -> None:
        """Read frames until hang-up or close; every outcome ends with one HangupIn.

        A frame that breaks the protocol ends this call's inbound audio only: the sending half
        stays up (the session may still apologise on it) until the session closes the media,
        and what the peer sends meanwhile is read and dropped so Asterisk never blocks on us.
        """
        ended = await self._read_until_end(on_error)
        if self._partial_flush is not None:
            self._partial_flush.cancel()
        self._emit(self._reframer.flush(), time.monotonic())
        if ended.protocol_error:
            self.events.put_nowait(ended)
            await self._discard_until_closed()
        else:
            self._end_playback(time.monotonic())
            self.events.put_nowait(ended)
        self.closed.set()

    async def _read_until_end(self, on_error: Callable[[str], None]) -> HangupIn:
        try:
            while True:
                frame = await read_frame(self._reader, self.accepted_kinds)
                now = time.monotonic()
                if frame is None:
                    return HangupIn(now, "close")
                if frame.kind in AUDIO_RATES:
                    self._on_audio(frame.kind, frame.payload, now)
                elif frame.kind is Kind.DTMF:
                    self.events.put_nowait(DtmfIn(chr(frame.payload[0]), now))
                elif frame.kind is Kind.HANGUP:
                    return HangupIn(now, "hangup_frame")
                elif frame.kind is Kind.ERROR:
                    return HangupIn(now, "error_frame")
                else:
                    self.on_control(frame)
        except FrameError as exc:
            on_error(exc.reason)
            log.warning("call %s: AudioSocket protocol error: %s", self.label, exc)
            return HangupIn(time.monotonic(), exc.reason, protocol_error=True)
        except (ConnectionError, OSError) as exc:
            log.info("call %s: AudioSocket reset: %s", self.label, exc)
            return HangupIn(time.monotonic(), "reset")

    @property
    def label(self) -> str:
        """How the logs name this call: its call id when known, else the AudioSocket UUID."""
        return self.call_id or f"(AudioSocket {self.uuid})"

    def _on_audio(self, kind: Kind, payload: bytes, now: float) -> None:
        """One audio message as Asterisk framed it, on to the session as 20 ms frames."""
        self.messages_in += 1
        rate = AUDIO_RATES[kind]
        if rate != self._reframer.rate:  # the peer changed format: finish the old audio
            self._emit(self._reframer.flush(), now)
            self._reframer = Reframer(rate)
        self._emit(self._reframer.feed(payload), now)
        if self._partial_flush is not None:
            self._partial_flush.cancel()
            self._partial_flush = None
        if self._reframer.holding:
            self._partial_flush = asyncio.get_running_loop().call_later(
                PARTIAL_FRAME_WAIT_S, self._flush_partial
            )

    def _flush_partial(self) -> None:
        """No more audio followed a partial frame (a playback's last): hand it on padded."""
        self._partial_flush = None
        self._emit(self._reframer.flush(), time.monotonic())

    def _emit(self, frames: list[bytes], now: float) -> None:
        """Frames completed at `now`: the last one ends now, the earlier ones 20 ms apart
        before it (never before a frame already handed on)."""
        count = len(frames)
        for i, pcm in enumerate(frames):
            at = max(self._last_audio_at, now - (count - 1 - i) * FRAME_SECONDS)
            self._last_audio_at = at
            self.frames_in += 1
            self.events.put_nowait(AudioIn(pcm, at))

    async def _discard_until_closed(self) -> None:
        closing = asyncio.ensure_future(self.closed.wait())
        try:
            while not self.closed.is_set():
                read = asyncio.ensure_future(self._reader.read(65536))
                await asyncio.wait({read, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    return
                if not read.result():
                    return  # the peer is gone too
        except (ConnectionError, OSError):
            return
        finally:
            closing.cancel()

    def on_control(self, frame: Frame) -> None:
        """A frame that is neither media nor hang-up: a repeated UUID carries nothing new."""

    # outbound
    def start_playback(self, playback: Playback) -> None:
        """Replace whatever is playing; the media clock sends it frame by frame."""
        self._end_playback(time.monotonic())
        self.playback = playback

    def stop_playback(self) -> Playback | None:
        """Barge-in: stop sending now (the next clock tick sends nothing)."""
        stopped = self.playback
        self._end_playback(time.monotonic())
        return stopped

    def _end_playback(self, now: float) -> None:
        playback, self.playback = self.playback, None
        if playback is not None and not playback.done.done():
            playback.stopped_at = now
            playback.done.set_result(False)

    def tick(self, now: float) -> bool:
        """Send at most one frame; returns False once the connection is closed."""
        if self.closed.is_set() or self._writer.is_closing():
            return False
        playback = self.playback
        self.last_played = None
        if playback is None:
            return True
        frame = playback.next_frame()
        self.last_played = frame
        if frame is not None:
            self._send(playback, frame, now)
        elif playback.drained:
            self.playback = None
            playback.stopped_at = now
            if not playback.done.done():
                playback.done.set_result(True)
        return True

    def _send(self, playback: Playback, frame: bytes, now: float) -> None:
        """One frame of `playback` onto the wire: the one place its counters move."""
        if playback.first_frame_at is None:
            playback.first_frame_at = now
        playback.frames_sent += 1
        self.frames_out += 1
        self._writer.write(encode_frame(Kind.AUDIO, frame))

    async def close(self) -> None:
        """End the media: Asterisk's `EXEC AudioSocket` returns and the dialplan goes on."""
        self._end_playback(time.monotonic())
        self.closed.set()
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class MediaClock:
    """One 20 ms ticker for every call: each tick sends the next frame of each live prompt.

    Deadlines are `start + n * 20 ms` (no drift). When the loop stalls, the missed ticks are
    skipped and counted as late rather than sent in a burst. The stalls are kept a while: the
    calls' silence timers leave them out (`stalled_s`), since the PBX went on sending meanwhile.
    """

    def __init__(self, on_late: Callable[[int], None] | None = None) -> None:
        self._connections: set[MediaConnection] = set()
        self._task: asyncio.Task[None] | None = None
        self._on_late = on_late or (lambda n: None)
        self.late_ticks = 0
        self._stalls: deque[tuple[float, float]] = deque(maxlen=_STALLS_KEPT)
        self._last_tick_at: float | None = None  # None while the clock is not running

    def add(self, connection: MediaConnection) -> None:
        self._connections.add(connection)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, connection: MediaConnection) -> None:
        self._connections.discard(connection)

    def stalled_s(self, since: float, now: float) -> float:
        """How long, between `since` and `now`, the event loop stood still (ran nothing for
        `STALL_S` or more past a tick), counting a stall that is not over for the clock yet."""
        last = self._last_tick_at
        if last is not None and now - last >= FRAME_SECONDS + STALL_S:
            spans = [*self._stalls, (last + FRAME_SECONDS, now)]
        elif self._stalls and self._stalls[-1][1] > since:
            spans = list(self._stalls)
        else:
            return 0.0  # every call asks on every frame: the usual answer costs nothing
        return sum(max(0.0, min(end, now) - max(begin, since)) for begin, end in spans)

    async def _run(self) -> None:
        start = self._last_tick_at = time.monotonic()
        n = 0
        try:
            while self._connections:
                n += 1
                deadline = start + n * FRAME_SECONDS
                delay = deadline - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = self._last_tick_at = time.monotonic()
                if now - deadline >= STALL_S:
                    self._stalls.append((deadline, now))
                behind = int((now - deadline) / FRAME_SECONDS)
                if behind >= 2:
                    self.late_ticks += behind
                    self._on_late(behind)
                    n += behind
                for connection in list(self._connections):
                    if not connection.tick(now):
                        self._connections.discard(connection)
        finally:
            self._last_tick_at = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class UuidRegistry:
    """One-time UUIDs handed out by live AGI sessions; anything else is refused."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[MediaConnection]] = {}
        self._call_ids: dict[str, str | None] = {}

    def register(self, call_id: str | None = None) -> tuple[str, asyncio.Future[MediaConnection]]:
        """A fresh UUID for the call `call_id` (named in the media's logs)."""
        call_uuid = str(uuid.uuid4())
        future: asyncio.Future[MediaConnection] = asyncio.get_running_loop().create_future()
        self._waiting[call_uuid] = future
        self._call_ids[call_uuid] = call_id
        return call_uuid, future

    def forget(self, call_uuid: str) -> None:
        self._call_ids.pop(call_uuid, None)
        future = self._waiting.pop(call_uuid, None)
        if future is not None and not future.done():
            future.cancel()

    def claim(self, call_uuid: str) -> tuple[asyncio.Future[MediaConnection], str | None] | None:
        """Take the UUID's waiting session and its call id (once); None for unknown or
        reused UUIDs."""
        future = self._waiting.pop(call_uuid, None)
        call_id = self._call_ids.pop(call_uuid, None)
        if future is None or future.done():
            return None
        return future, call_id

    def __len__(self) -> int:
        return len(self._waiting)


class BridgeGreeter(Protocol):
    """Answers an EAGI bridge that opens its connection with a hello (agi/eagi_server.py)."""

    async def greet(self, hello: bytes, writer: asyncio.StreamWriter) -> str | None:
        """Grant a one-time UUID (returned), or answer and return None; FrameError refuses."""

    def media(
        self, call_uuid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> MediaConnection:
        """The connection object for a UUID this greeter granted."""


class AudioSocketServer:
    """Accepts AudioSocket connections for registered UUIDs and hands them to their session."""

    def __init__(
        self,
        registry: UuidRegistry,
        clock: MediaClock,
        *,
        on_reject: Callable[[str], None] | None = None,
        first_frame_timeout: float = 5.0,
        bridge: BridgeGreeter | None = None,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.bridge = bridge
        self._on_reject = on_reject or (lambda reason: None)
        self._first_frame_timeout = first_frame_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.rejected: dict[str, int] = {}

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        return self._server.sockets[0].getsockname()[1]

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._on_reject(reason)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            writer.close()  # server shutdown; the connection task ends here
        finally:
            self._tasks.discard(task)

    async def _first_frame(self, reader: asyncio.StreamReader, accept: frozenset[Kind]) -> Frame:
        async with asyncio.timeout(self._first_frame_timeout):
            frame = await read_frame(reader, accept)
        if frame is None:
            raise FrameError("no_uuid", "closed before the UUID frame")
        return frame

    async def _identify(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str | None, bool]:
        """The call's UUID (None: an EAGI bridge was answered without one) and whether a
        bridge asked for it on this connection."""
        accept = ASTERISK_KINDS | ({Kind.EAGI_HELLO} if self.bridge else set())
        frame = await self._first_frame(reader, accept)
        granted = None
        if frame.kind is Kind.EAGI_HELLO and self.bridge is not None:
            granted = await self.bridge.greet(frame.payload, writer)
            if granted is None:
                return None, True
            frame = await self._first_frame(reader, ASTERISK_KINDS)
        if frame.kind is not Kind.UUID:
            raise FrameError("no_uuid", f"first frame is {frame.kind.name}, not UUID")
        call_uuid = str(uuid.UUID(bytes=frame.payload))
        if granted is not None and call_uuid != granted:
            raise FrameError("unknown_uuid", f"bridge sent {call_uuid}, was granted {granted}")
        return call_uuid, granted is not None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            call_uuid, bridged = await self._identify(reader, writer)
        except FrameError as exc:
            self._reject(exc.reason)
            log.warning("AudioSocket connection refused: %s", exc)
            writer.close()
            return
        except (TimeoutError, ConnectionError, OSError) as exc:
            self._reject("no_uuid")
            log.warning("AudioSocket connection refused: %s", type(exc).__name__)
            writer.close()
            return
        if call_uuid is None:
            writer.close()  # the bridge has its answer (an outcome frame)
            return
        claimed = self.registry.claim(call_uuid)
        if claimed is None:
            self._reject("unknown_uuid")
            log.warning("AudioSocket connection with unregistered UUID %s refused", call_uuid)
            writer.close()
            return
        if bridged and self.bridge is not None:
            connection = self.bridge.media(call_uuid, reader, writer)
        else:
            connection = MediaConnection(call_uuid, reader, writer)
        waiting, connection.call_id = claimed
        waiting.set_result(connection)
        self.clock.add(connection)
        try:
            await connection.pump(self._reject)
        finally:
            self.clock.discard(connection)
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await self.clock.stop()
