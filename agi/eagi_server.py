"""The daemon's side of the EAGI bridge (`outdial-eagi`, agi/eagi_bridge.py).

PBXes without `app_audiosocket` run `EAGI(outdial-eagi)`; the bridge relays the caller's
audio into our AudioSocket server as a normal client after a hello (agi/eagi_protocol.py).
Here that hello is answered the way the FastAGI path answers a new call (same lookup, AMD
action, script and slot checks, same records), and the call runs in a half-duplex
`CallSession`: the bridge plays each prompt with a blocking `STREAM FILE`, so a prompt is
sent whole and counts as spoken only when the bridge says it has been played.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

from agi import eagi_protocol
from agi.audiosocket import (
    ASTERISK_KINDS,
    FRAME_BYTES,
    Frame,
    FrameError,
    Kind,
    MediaConnection,
    Playback,
    encode_frame,
)
from agi.call.outcome import CallOutcome, failed_outcome
from agi.handover import Admitted, Declined, outcome_variables, refusal_message

if TYPE_CHECKING:
    from agi.service import CallService

log = logging.getLogger(__name__)


class EagiMedia(MediaConnection):
    """A call's media through the bridge: whole prompts out, each done once it was played."""

    accepted_kinds = ASTERISK_KINDS | {Kind.EAGI_PLAYED}

    def __init__(
        self, call_uuid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(call_uuid, reader, writer)
        self._marked: Playback | None = None  # the current prompt, fully sent and marked
        self._unplayed: deque[Playback] = deque()  # marked prompts the bridge has not played

    def tick(self, now: float) -> bool:
        """Send everything synthesised so far (no pacing: the bridge collects a whole prompt)."""
        if self.closed.is_set() or self._writer.is_closing():
            return False
        playback = self.playback
        if playback is None or playback is self._marked:
            return True
        # Only real audio: a prompt waiting for synthesis is not padded with silence here.
        while len(playback.buffer) >= FRAME_BYTES or (playback.complete and playback.buffer):
            frame = playback.next_frame()
            assert frame is not None
            self._send(playback, frame, now)
        if playback.drained:
            self._writer.write(encode_frame(Kind.EAGI_PROMPT_END, eagi_protocol.PLAY))
            self._marked = playback
            self._unplayed.append(playback)
        return True

    def on_control(self, frame: Frame) -> None:
        if frame.kind is not Kind.EAGI_PLAYED or not self._unplayed:
            return
        played = self._unplayed.popleft()
        if played is self.playback:
            self.playback = self._marked = None
        if not played.done.done():
            played.stopped_at = time.monotonic()
            played.done.set_result(True)

    def _end_playback(self, now: float) -> None:
        playback = self.playback
        if (
            playback is not None
            and playback is not self._marked
            and playback.frames_sent
            and not self._writer.is_closing()
        ):
            # Cut off half-sent: the bridge drops what it collected of this prompt.
            self._writer.write(encode_frame(Kind.EAGI_PROMPT_END, eagi_protocol.DROP))
        self._marked = None
        super()._end_playback(now)

    async def close(self) -> None:
        """The session is over; the socket stays open for the outcome (see `finish`)."""
        self._end_playback(time.monotonic())
        self.closed.set()

    async def finish(self, outcome: eagi_protocol.Outcome) -> None:
        """Tell the bridge how to hand the channel back, then end the connection."""
        if not self._writer.is_closing():
            self._writer.write(encode_frame(Kind.EAGI_OUTCOME, outcome.to_payload()))
        await super().close()


class EagiCalls:
    """Answers bridges' hellos and runs their calls (`AudioSocketServer(bridge=...)`)."""

    def __init__(self, service: CallService) -> None:
        self.service = service
        self._calls: set[asyncio.Task[None]] = set()

    @property
    def live(self) -> int:
        """Bridged calls still running (their session or their outcome record)."""
        return len(self._calls)

    # --- AudioSocketServer hooks ------------------------------------------------------------

    async def greet(self, hello: bytes, writer: asyncio.StreamWriter) -> str | None:
        try:
            facts = eagi_protocol.Hello.from_payload(hello)
        except eagi_protocol.ProtocolError as exc:
            raise FrameError("bad_hello", str(exc)) from exc
        try:
            return await self._admit(facts, writer)
        except FrameError:
            raise
        except Exception as exc:
            # The database may be down: the bridge falls back in the dialplan at once.
            log.exception("EAGI bridge on %s: call %s not started", facts.channel, facts.call_id)
            _answer(writer, refusal("internal error"))
            raise FrameError("internal", type(exc).__name__) from exc

    def media(
        self, call_uuid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> MediaConnection:
        return EagiMedia(call_uuid, reader, writer)

    async def drain(self, grace: float) -> None:
        """Let live bridged calls finish within `grace` seconds, then cancel them."""
        if not self._calls:
            return
        _, pending = await asyncio.wait(set(self._calls), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # --- one call ---------------------------------------------------------------------------

    async def _admit(self, facts: eagi_protocol.Hello, writer: asyncio.StreamWriter) -> str | None:
        service = self.service
        known = await service.identify(facts.call_id)
        if isinstance(known, Declined):
            _answer(writer, refusal(known.refusal or ""))
            # Counted with the unknown UUIDs: a stranger asking for a call's media.
            raise FrameError("unknown_call", known.refusal or "")
        admitted = await service.admit(known, facts.amd_status or None)
        if isinstance(admitted, Declined):
            _answer(writer, self._handover(admitted.outcome, admitted.refusal))
            return None
        service.claim_slot()  # before any await, as on the FastAGI path
        try:
            variant = await service.begin(admitted.context, admitted.runtime, half_duplex=True)
        except BaseException:
            service.release_slot()
            raise
        call_uuid, waiting = service.registry.register(admitted.context.call_id)
        task = asyncio.get_running_loop().create_task(
            self._call(admitted, variant, call_uuid, waiting)
        )
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        log.info("EAGI bridge on %s granted media for call %s", facts.channel, facts.call_id)
        writer.write(encode_frame(Kind.EAGI_GRANT, uuid.UUID(call_uuid).bytes))
        return call_uuid

    async def _call(
        self,
        admitted: Admitted,
        variant: str | None,
        call_uuid: str,
        waiting: asyncio.Future[MediaConnection],
    ) -> None:
        service = self.service
        script = admitted.runtime.script
        try:
            media = await self._media(call_uuid, waiting)
            if media is None:
                outcome = failed_outcome(script, "media_connect", hangup_side="customer")
            else:
                outcome = await service.session(media, admitted, variant, half_duplex=True).run()
        except Exception:
            # A bug in one call must not take the process down; the call is settled `error`.
            log.exception("call %s failed", admitted.context.call_id)
            media, outcome = None, failed_outcome(script, "session")
        finally:
            service.release_slot()
        await service.conclude(admitted.context, outcome)
        if media is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await media.finish(self._handover(outcome, None))

    async def _media(
        self, call_uuid: str, waiting: asyncio.Future[MediaConnection]
    ) -> EagiMedia | None:
        """The bridge's connection once it sent the granted UUID; None if it never did."""
        try:
            async with asyncio.timeout(self.service.services.settings.session.media_timeout_s):
                media = await waiting
        except TimeoutError:
            log.warning("EAGI bridge never sent the UUID it was granted (%s)", call_uuid)
            return None
        finally:
            if waiting.cancelled():
                self.service.registry.forget(call_uuid)
        assert isinstance(media, EagiMedia)
        return media

    def _handover(self, outcome: CallOutcome, refusal_reason: str | None) -> eagi_protocol.Outcome:
        if refusal_reason is not None:
            return refusal(refusal_reason)
        variables = outcome_variables(outcome)
        if outcome.transfer is None:
            return eagi_protocol.Outcome("hangup", variables)
        application, options = self.service.transfer_of(outcome.transfer.target)
        return eagi_protocol.Outcome("transfer", variables, application, options)


def refusal(reason: str) -> eagi_protocol.Outcome:
    """As the FastAGI path refuses: say why in the Asterisk log, let the dialplan go on."""
    return eagi_protocol.Outcome(
        "continue", {"OUTDIAL_RESULT": "refused"}, message=refusal_message(reason)
    )


def _answer(writer: asyncio.StreamWriter, outcome: eagi_protocol.Outcome) -> None:
    writer.write(encode_frame(Kind.EAGI_OUTCOME, outcome.to_payload()))
