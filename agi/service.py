"""The call service: FastAGI in, AudioSocket media, one CallSession per answered call.

Flow per call (NOTES §2): read `OUTDIAL_CALL_ID` and `AMDSTATUS`, refuse unknown calls, apply
the AMD action, register a one-time AudioSocket UUID, `EXEC AudioSocket` (which returns when
the session closes the media or the caller hangs up), then transfer with context variables or
hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from agi import metrics
from agi.audiosocket import AudioSocketServer, MediaClock, MediaConnection, UuidRegistry
from agi.call.outcome import (
    EARLY_HANGUP_DISPOSITION,
    CallContext,
    CallOutcome,
    CallRecorder,
    failed_outcome,
)
from agi.callstore import CallStore, DatabaseAway
from agi.eagi_server import EagiCalls
from agi.fastagi import AgiChannel, AgiHangup, FastAgiServer
from agi.handover import Admitted, Declined, outcome_variables, refusal_message
from agi.runtime import CallServices, ScriptRuntime
from agi.session import CallSession
from agi.settings import AgiSettings, AudioSocketSettings
from store.turns import TurnWriter

log = logging.getLogger(__name__)

# Commands after the media ends must not hang on a channel Asterisk has already torn down
# (pbxsim and the captures show NOOP on a dead channel gets no reply at all).
AFTER_MEDIA_TIMEOUT_S = 3.0

VariantChooser = Callable[[ScriptRuntime], Awaitable[str | None]]


@dataclass(frozen=True)
class ScriptSource:
    """How the service finds the script version a new call should run."""

    get: Callable[[str], ScriptRuntime | None]


class CallService:
    def __init__(
        self,
        agi: AgiSettings,
        audiosocket: AudioSocketSettings,
        services: CallServices,
        scripts: ScriptSource,
        store: CallStore,
        turns: TurnWriter,
        choose_variant: VariantChooser,
    ) -> None:
        self.agi_settings = agi
        self.audiosocket_settings = audiosocket
        self.services = services
        self.scripts = scripts
        self.store = store
        self.turns = turns
        self.choose_variant = choose_variant
        self.registry = UuidRegistry()
        self.clock = MediaClock(on_late=metrics.LATE_FRAMES.inc)
        # Calls relayed by the per-call EAGI bridge, for PBXes without app_audiosocket.
        self.eagi = EagiCalls(self)
        self.audiosocket = AudioSocketServer(
            self.registry,
            self.clock,
            on_reject=lambda reason: metrics.AUDIOSOCKET_REJECTED.labels(reason).inc(),
            bridge=self.eagi,
        )
        self.fastagi = FastAgiServer(
            self._handle,
            header_timeout=agi.header_timeout_s,
            reply_timeout=agi.command_timeout_s,
            max_connections=agi.connection_cap(services.settings.session.max_calls),
            on_refuse=lambda reason: metrics.FASTAGI_REFUSED.labels(reason).inc(),
        )
        self._active = 0  # calls holding a slot; changed only by claim_slot/release_slot
        self.finished: list[CallOutcome] = []
        self._draining = False
        self.agi_port = 0
        self.audiosocket_port = 0
        self._background: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        """Calls being talked to (FastAGI and EAGI-bridged alike)."""
        return self._active

    def claim_slot(self) -> None:
        """A call takes one of `max_calls` slots: before any await, so two calls admitted at
        once cannot both take the last one."""
        self._active += 1

    def release_slot(self) -> None:
        self._active -= 1

    @property
    def free_slots(self) -> int:
        if self._draining:
            return 0
        return max(0, self.services.settings.session.max_calls - self.active)

    async def start(self) -> None:
        self.audiosocket_port = await self.audiosocket.start(
            self.audiosocket_settings.host, self.audiosocket_settings.port
        )
        self.agi_port = await self.fastagi.start(self.agi_settings.host, self.agi_settings.port)
        metrics.FASTAGI_CONNECTIONS.set_function(lambda: self.fastagi.connections)

    @property
    def media_address(self) -> str:
        advertised = self.audiosocket_settings.advertise
        return advertised or f"{self.audiosocket_settings.host}:{self.audiosocket_port}"

    async def drain(self, grace: float) -> None:
        """Stop taking calls; let live ones finish within `grace` seconds."""
        self._draining = True
        await asyncio.gather(self.fastagi.stop(grace), self.eagi.drain(grace))
        await self.audiosocket.stop()
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace)

    # --- one call ---------------------------------------------------------------------------

    async def identify(self, call_id: str | None) -> CallContext | Declined:
        """The dialer's record of this call; unknown calls are refused."""
        if not call_id:
            return Declined(CallOutcome(disposition="failed"), "no OUTDIAL_CALL_ID on this channel")
        try:
            context = await self.store.lookup(call_id)
        except DatabaseAway as exc:
            # The call cannot be told from a stranger's: refused, and the dialplan hangs up
            # (a traceback per answered call before, bench/chaos.py).
            return Declined(CallOutcome(disposition="failed"), f"database unreachable: {exc}")
        if context is None:
            return Declined(CallOutcome(disposition="failed"), f"unknown call {call_id}")
        return context

    async def admit(self, context: CallContext, amd: str | None) -> Admitted | Declined:
        """Apply the AMD verdict, find the script and a free slot (declines are recorded)."""
        context = replace(context, amd_status=amd)
        if amd == "HANGUP":  # AMD() saw the customer hang up: nobody left to talk to
            outcome = CallOutcome(disposition=EARLY_HANGUP_DISPOSITION, hangup_side="customer")
            await self._finish(context, outcome, None)
            return Declined(outcome)
        action = self.services.settings.session.amd_actions.get(amd or "HUMAN", "talk")
        if action == "hangup":
            outcome = CallOutcome(disposition="machine")
            await self._finish(context, outcome, None)
            return Declined(outcome)
        runtime = self._runtime_for(context)
        if runtime is None or self.free_slots == 0:
            # Not the customer's doing: the call is settled `error` and the lead called again.
            reason = "no script loaded" if runtime is None else "no free call slot"
            outcome = failed_outcome(runtime.script if runtime else None, "admission")
            await self._finish(context, outcome, reason)
            if outcome.transfer is not None:
                return Declined(outcome)  # to people, as the script asks
            return Declined(outcome, reason)
        return Admitted(context, runtime)

    async def begin(
        self, context: CallContext, runtime: ScriptRuntime, *, half_duplex: bool = False
    ) -> str | None:
        """Pick the call's variant and open its `calls` row; returns the variant."""
        variant = await self.choose_variant(runtime)
        await self.store.start(
            context, runtime.name, runtime.version, variant, runtime.pack.name, half_duplex
        )
        return variant

    def session(
        self,
        media: MediaConnection,
        admitted: Admitted,
        variant: str | None,
        *,
        half_duplex: bool = False,
    ) -> CallSession:
        return CallSession(
            media,
            self.services,
            admitted.runtime,
            admitted.context,
            self._recorder(),
            variant=variant,
            half_duplex=half_duplex,
            clock=self.clock,
        )

    async def conclude(self, context: CallContext, outcome: CallOutcome) -> None:
        """Record how a call that was talked to ended."""
        self.finished.append(outcome)
        summary = outcome.transfer.summary if outcome.transfer else None
        await self._finish(context, outcome, summary)

    async def _handle(self, channel: AgiChannel) -> None:
        known = await self.identify(await channel.get_variable("OUTDIAL_CALL_ID"))
        if isinstance(known, Declined):
            await self._refuse(channel, known.refusal or "")
            return
        # MixMonitor runs before the AGI (deploy/asterisk) when the campaign records.
        recording = await channel.get_variable("MIXMONITOR_FILENAME")
        known = replace(known, recording_path=recording or None)
        admitted = await self.admit(known, await channel.get_variable("AMDSTATUS"))
        if isinstance(admitted, Declined):
            if admitted.refusal is not None:
                await self._refuse(channel, admitted.refusal)
            else:
                await self._after_media(channel, admitted.outcome)
            return
        self.claim_slot()
        try:
            outcome = await self._converse(channel, admitted)
        except (AgiHangup, asyncio.CancelledError):
            raise
        except Exception:
            # A bug in one call must not take the process down; the call is settled `error`.
            log.exception("call %s failed", admitted.context.call_id)
            outcome = failed_outcome(admitted.runtime.script, "session")
        finally:
            self.release_slot()
        await self.conclude(admitted.context, outcome)
        await self._after_media(channel, outcome)

    def _runtime_for(self, context: CallContext) -> ScriptRuntime | None:
        return self.scripts.get(context.script_name) if context.script_name else None

    async def _converse(self, channel: AgiChannel, admitted: Admitted) -> CallOutcome:
        variant = await self.begin(admitted.context, admitted.runtime)
        call_uuid, waiting = self.registry.register(admitted.context.call_id)
        await channel.set_variable("OUTDIAL_STAGE", "started")
        # EXEC AudioSocket returns when the media ends: the session bounds it, not a reply
        # timeout.
        media_exec = asyncio.create_task(
            channel.exec("AudioSocket", f"{call_uuid},{self.media_address}", long_running=True)
        )
        try:
            media = await self._await_media(waiting, media_exec)
        except (TimeoutError, AgiHangup, asyncio.CancelledError) as exc:
            self.registry.forget(call_uuid)
            media_exec.cancel()
            if channel.hung_up or isinstance(exc, asyncio.CancelledError):
                # The customer left before the bot's first word.
                return CallOutcome(disposition=EARLY_HANGUP_DISPOSITION, hangup_side="customer")
            log.warning("call %s: the AudioSocket never connected", admitted.context.call_id)
            return failed_outcome(admitted.runtime.script, "media_connect")
        outcome = await self.session(media, admitted, variant).run()
        with contextlib.suppress(AgiHangup, TimeoutError, ConnectionError):
            async with asyncio.timeout(AFTER_MEDIA_TIMEOUT_S):
                await media_exec
        return outcome

    async def _await_media(
        self, waiting: asyncio.Future[MediaConnection], media_exec: asyncio.Task[object]
    ) -> MediaConnection:
        """The AudioSocket connection, unless EXEC fails or times out first."""
        async with asyncio.timeout(self.services.settings.session.media_timeout_s):
            done, _ = await asyncio.wait({waiting, media_exec}, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            return waiting.result()
        raise AgiHangup("EXEC AudioSocket ended before the media connected")

    def _recorder(self) -> CallRecorder:
        return CallRecorder(
            write_turn=self.turns.write,
            record_compliance=lambda ctx, seq, hit: self._spawn(
                self.store.compliance_event(ctx, seq, hit)
            ),
            opt_out=lambda ctx: self._spawn(self.store.add_dnc(ctx)),
            pause_lead=lambda ctx, reason: self._spawn(self.store.pause_lead(ctx, reason)),
        )

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("call-side database write failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _finish(
        self, context: CallContext, outcome: CallOutcome, summary: str | None
    ) -> None:
        try:
            await self.store.finish(context, outcome, summary)
        except Exception:
            log.exception("call %s: could not record its outcome", context.call_id)

    async def _after_media(self, channel: AgiChannel, outcome: CallOutcome) -> None:
        """Hand the channel back to the dialplan: transfer with context, or hang up."""
        if channel.hung_up:
            return
        with contextlib.suppress(AgiHangup, TimeoutError, ConnectionError):
            async with asyncio.timeout(AFTER_MEDIA_TIMEOUT_S):
                for name, value in outcome_variables(outcome).items():
                    await channel.set_variable(name, value)
                if outcome.transfer is not None:
                    await channel.exec(*self.transfer_of(outcome.transfer.target))
                else:
                    await channel.command("HANGUP")

    def transfer_of(self, target: str) -> tuple[str, str]:
        return transfer_application(target, self.services.settings.session.transfer_context)

    async def _refuse(self, channel: AgiChannel, reason: str) -> None:
        """Unknown or unserviceable call: say why in the Asterisk log and leave the dialplan."""
        log.warning("refusing FastAGI call: %s", reason)
        with contextlib.suppress(AgiHangup, TimeoutError, ConnectionError):
            async with asyncio.timeout(AFTER_MEDIA_TIMEOUT_S):
                await channel.command(f'VERBOSE "{refusal_message(reason)}" 1')
                await channel.set_variable("OUTDIAL_RESULT", "refused")


def transfer_application(target: str, default_context: str) -> tuple[str, str]:
    """Map a script's transfer target to a dialplan application.

    `queue:NAME` -> Queue, `dial:STRING` -> Dial, `ctx,exten,prio` -> Goto, and a bare name
    is a context in which the call starts at `s,1` (`default_context` when empty).
    """
    kind, sep, rest = target.partition(":")
    if sep and kind == "queue":
        return "Queue", rest
    if sep and kind == "dial":
        return "Dial", rest
    if "," in target:
        return "Goto", target
    return "Goto", f"{target or default_context},s,1"


async def _base_variant(_runtime: ScriptRuntime) -> str | None:
    return None  # no allocator: every call on the script's base variant


async def loopback_call_service(
    services: CallServices, scripts: ScriptSource, store: CallStore, turns: TurnWriter
) -> CallService:
    """A started call service on free loopback ports, every call on the base variant and no
    dialer beside it: what script rehearsals (`outdial script test --voice`) and tests run."""
    service = CallService(
        AgiSettings(port=0),
        AudioSocketSettings(port=0),
        services,
        scripts,
        store,
        turns,
        _base_variant,
    )
    await service.start()
    return service
