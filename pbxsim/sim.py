"""PbxSim: the whole stand-in in one object, for tests, the demo and `python -m pbxsim`."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pbxsim.ami import AmiActions, AmiSession
from pbxsim.ami_codec import Fields
from pbxsim.audio import AudioBank, prepare
from pbxsim.audiosocket import AudioSocketFaults
from pbxsim.call import Call
from pbxsim.channels import Channel
from pbxsim.dialplan import Dialplan, default_dialplan
from pbxsim.records import CallRecord
from pbxsim.scenario import CustomerPicker, Scenario, load_scenario
from pbxsim.ticker import Ticker

log = logging.getLogger(__name__)


class FaultConfig(BaseModel):
    """Misbehaviour switches (all off by default)."""

    model_config = ConfigDict(extra="forbid")
    ami_drop_after_events: int | None = Field(None, ge=1)
    ami_malformed_after_events: int | None = Field(None, ge=1)
    audiosocket_reset_mid_frame_after: int | None = Field(None, ge=0)
    audiosocket_oversized_length_after: int | None = Field(None, ge=0)
    audiosocket_unknown_kind_after: int | None = Field(None, ge=0)
    eagi_malformed_reply_after: int | None = Field(None, ge=0)  # AGI commands answered
    eagi_close_audio_after: int | None = Field(None, ge=0)  # audio frames written to fd 3

    def audiosocket(self) -> AudioSocketFaults:
        return AudioSocketFaults(
            reset_mid_frame_after=self.audiosocket_reset_mid_frame_after,
            oversized_length_after=self.audiosocket_oversized_length_after,
            unknown_kind_after=self.audiosocket_unknown_kind_after,
        )


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    username: str = "outdial"
    secret: str = "s3cret"
    scenario: Scenario = Field(default_factory=Scenario)
    scenario_path: Path | None = Field(None, description="loaded instead of `scenario` if set")
    dialplan: Dialplan = Field(default_factory=default_dialplan)
    speed: float = Field(1.0, gt=0, le=100, description="simulated seconds per wall second")
    bot_silence_gap: float = Field(0.4, gt=0, description="bot silent this long = done talking")
    speech_rms: float = Field(300.0, ge=0, description="bot frames below this RMS are silence")
    hangup_frame: bool = Field(False, description="send 0x00 before closing, unlike Asterisk")
    record_audio: bool = Field(True, description="keep audio payloads in CallRecord")
    transfer_talk_seconds: float = Field(2.0, ge=0, description="customer talk time with agent")
    faults: FaultConfig = Field(default_factory=FaultConfig)
    agi_dir: Path | None = Field(None, description="EAGI() scripts (astagidir); None: PATH")
    monitor_dir: Path | None = Field(
        None, description="MixMonitor() files named without a leading / (Asterisk's monitor dir)"
    )
    sounds_dir: Path = Field(
        Path("/var/lib/asterisk/sounds"), description="STREAM FILE names without a leading /"
    )


class PbxSim:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.scenario = self.config.scenario
        self.dialplan = self.config.dialplan
        self.audio = AudioBank()
        self.ticker = Ticker(self.config.speed)
        self.ami_actions = AmiActions(self)
        self.ami_sessions: set[AmiSession] = set()
        self.global_vars: dict[str, str] = {}
        self.calls: list[CallRecord] = []
        self.started_at = time.time()
        self._live: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._picker = CustomerPicker(self.scenario)
        self._done = asyncio.Condition()
        self._seq = itertools.count(1)
        self._uid = itertools.count(1)
        self.ami_port = 0

    async def start(self) -> None:
        if self.config.scenario_path is not None:
            self.scenario = load_scenario(self.config.scenario_path)
            self._picker = CustomerPicker(self.scenario)
        self.audio = await prepare(self.scenario)
        self._server = await asyncio.start_server(
            self._on_ami_client, self.config.ami_host, self.config.ami_port
        )
        self.ami_port = self._server.sockets[0].getsockname()[1]
        log.info("pbxsim AMI listening on %s:%d", self.config.ami_host, self.ami_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.ami_sessions):
            session.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.ticker.stop()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> PbxSim:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def wait_calls_done(self, n: int, timeout: float) -> list[CallRecord]:  # noqa: ASYNC109
        """Wait until `n` calls have ended; returns their records (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout), self._done:
            await self._done.wait_for(lambda: sum(r.done for r in self.calls) >= n)
        return [r for r in self.calls if r.done]

    # -- used by the AMI actions and the calls ---------------------------------------------------
    async def _on_ami_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        session = AmiSession(self, reader, writer)
        self.ami_sessions.add(session)
        await session.serve()

    def emit(self, fields: Fields) -> None:
        for session in list(self.ami_sessions):
            session.event(fields)

    def next_channel_seq(self) -> int:
        return next(self._seq)

    def next_uniqueid(self) -> str:
        return f"{int(self.started_at)}.{next(self._uid)}"

    def originate(self, **kwargs: object) -> None:
        dial = str(kwargs["dial"])
        name, customer, outcome = self._picker.pick(dial)
        call = Call(self, customer_name=name, customer=customer, outcome=outcome, **kwargs)  # type: ignore[arg-type]
        call.ring = self._picker.ring_time()
        self.calls.append(call.record)
        self._live.append(call)
        task = asyncio.create_task(call.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def originate_done(self, call: Call, *, success: bool) -> None:
        log.info("originate %s: %s", call.action_id, "answered" if success else call.outcome)

    def call_finished(self, call: Call) -> None:
        if call in self._live:
            self._live.remove(call)
        asyncio.get_running_loop().create_task(self._notify_done())

    async def _notify_done(self) -> None:
        async with self._done:
            self._done.notify_all()

    def live_channels(self, customer_first: bool = False) -> list[Channel]:
        out: list[Channel] = []
        for call in self._live:
            pair = [call.cust, call.bot] if customer_first else [call.bot, call.cust]
            out += [c for c in pair if not c.hung_up]
        return out

    def _call_of(self, chan: Channel) -> Call | None:
        return next((c for c in self._live if chan in (c.bot, c.cust)), None)

    def find_channel(self, name: str) -> Channel | None:
        return next((c for c in self.live_channels() if c.name == name), None)

    def hangup_channel(self, chan: Channel) -> None:
        call = self._call_of(chan)
        if call is not None:
            call.ami_hangup(chan)

    def redirect_channel(self, chan: Channel, context: str, exten: str, priority: int) -> None:
        call = self._call_of(chan)
        if call is not None:
            call.ami_redirect(context, exten, priority)

    def set_channel_var(self, chan: Channel, name: str, value: str) -> None:
        call = self._call_of(chan)
        if call is not None:
            call.events.set_var(chan, name, value)
