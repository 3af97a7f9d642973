"""One originated call: a Local channel pair, the customer leg's script and the bot's dialplan.

Event order and fields follow the captures in tests/fixtures/asterisk-captures: `;1` is the
originated (bot) half, `;2` the customer half. Where two threads race in real Asterisk the order
seen in the captures is used; within one leg the order is always the captured one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from pbxsim import audiosocket
from pbxsim.agi import (
    DEAD_ALLOWED,
    DEAD_REPLY,
    DEAD_TEXT,
    INVALID_REPLY,
    INVALID_TEXT,
    USAGE_REPLY,
    AgiSession,
    AgiUrlError,
    Reply,
    ok,
    parse_agi_url,
)
from pbxsim.ami_codec import Fields
from pbxsim.audio import step_source
from pbxsim.audiosocket import AudioSocketClient, BotFrame, EndReason
from pbxsim.channels import (
    CAUSE_TEXT,
    STATE_BUSY,
    STATE_RING,
    STATE_RINGING,
    STATE_UP,
    Channel,
)
from pbxsim.dialplan import DialplanStep, split_condition, substitute, truthy
from pbxsim.eagi import run_eagi
from pbxsim.mixmonitor import MixMonitor, MixMonitorError, MixOptions, full_path, split_args
from pbxsim.records import CallRecord, Transfer
from pbxsim.scenario import (
    BargeInStep,
    Customer,
    DtmfStep,
    HangupStep,
    Media,
    Outcome,
    SayStep,
    SayTextStep,
    SilenceStep,
    WaitForBotStep,
)

if TYPE_CHECKING:
    from pbxsim.eagi import EagiSession
    from pbxsim.sim import PbxSim

log = logging.getLogger(__name__)

REASON = {"answer": 4, "machine": 4, "busy": 5, "no_answer": 3, "congestion": 8}
DTMF_SPACING = 0.35  # SendDTMF: 100 ms tone + 250 ms gap, as captured (1.715, 2.066, 2.416 s)
KNOWN_EXEC_APPS = {"audiosocket", "dial", "queue", "goto", "wait", "playback", "set", "verbose"}
KNOWN_EXEC_APPS |= {"noop", "answer", "hangup"}
_CID_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")


class Mouth:
    """The customer's outgoing audio, sent on the shared 20 ms ticker as the line frames it
    (scenario `media`): whole 20 ms frames with a partial last one, or random even lengths,
    at the line's rate, and line noise in silence on a trunk."""

    def __init__(self, call: Call, media: Media, seed: int) -> None:
        self.call = call
        self.media = media
        self.kind = audiosocket.AUDIO_KINDS[media.kind]
        self.frame_bytes = media.rate // 50 * 2
        self.rng = random.Random(seed)
        self.clip = b""
        self.pos = 0
        self.owed = 0  # random framing: bytes due on the line but not sent yet
        self.done: asyncio.Future[None] | None = None
        self.on_ticker = False
        self._noise = _line_noise(media) if media.line == "trunk" else b""
        self._noise_pos = 0

    def play(self, clip: bytes) -> asyncio.Future[None]:
        self.clip, self.pos, self.owed = clip, 0, 0
        self.done = asyncio.get_running_loop().create_future()
        self._run()
        return self.done

    def open_line(self) -> None:
        """The media connected: a trunk sends its noise from now on."""
        if self._noise:
            self._run()

    def _run(self) -> None:
        if not self.on_ticker:
            self.on_ticker = True
            self.call.sim.ticker.add(self)

    def stop(self) -> None:
        self.clip = b""
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def tick(self) -> bool:
        if self.pos < len(self.clip):
            self._speak()
            if self.pos >= len(self.clip):
                self.stop()
            return True
        self.stop()
        if self._noise and self.call.media is not None and not self.call.customer_gone.is_set():
            self._hiss()
            return True
        self.on_ticker = False
        return False

    def _speak(self) -> None:
        if self.media.framing == "asterisk":
            # 20 ms frames; the last one is what is left of the clip, unpadded (as captured).
            self._send(self.clip[self.pos : self.pos + self.frame_bytes])
            return
        self.owed += self.frame_bytes
        if self.owed < 2 * self.frame_bytes and self.rng.random() < 0.25:
            return  # held back a tick: it follows with the next
        for size in self._random_sizes(self.owed):
            self._send(self.clip[self.pos : self.pos + size])
            self.owed -= size
            if self.pos >= len(self.clip):
                return

    def _random_sizes(self, owed: int) -> list[int]:
        """One to three messages of random even lengths: everything owed when the source is
        a tick behind, else a random part of it."""
        total = owed if owed >= 2 * self.frame_bytes else self.rng.randrange(2, owed + 1, 2)
        pieces = self.rng.randrange(3) if total > 2 else 0
        cuts = sorted(self.rng.randrange(2, total, 2) for _ in range(pieces))
        edges = [0, *[c for c in cuts if 0 < c < total], total]
        return [b - a for a, b in itertools.pairwise(edges) if b > a]

    def _send(self, payload: bytes) -> None:
        if payload:
            self.pos += len(payload)
            self.call.send_frame(payload, self.kind)

    def _hiss(self) -> None:
        """One 20 ms frame of the trunk's line noise (a SIP trunk never goes quiet)."""
        noise = self._noise
        frame = (noise + noise)[self._noise_pos : self._noise_pos + self.frame_bytes]
        self._noise_pos = (self._noise_pos + self.frame_bytes) % len(noise)
        self.call.send_frame(frame, self.kind)


def _line_noise(media: Media) -> bytes:
    """One second of white noise at the line's level and rate (looped)."""
    rms = 32768 * 10 ** (media.noise_dbfs / 20)
    samples = np.random.default_rng(7).normal(0.0, rms, media.rate)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


class Ears:
    """Tracks when the bot speaks (energetic `0x10` frames) for wait_for_bot and barge-in."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.last_speech = -1e9
        self.utterance_start = -1e9
        self.spoke = asyncio.Event()

    def hear(self, frame: BotFrame, payload: bytes) -> None:
        if not _is_speech(payload, self.call.sim.config.speech_rms):
            return
        if frame.t - self.last_speech > self.call.gap:
            self.utterance_start = frame.t
        self.last_speech = frame.t
        self.spoke.set()

    def speaking(self) -> bool:
        return time.monotonic() - self.last_speech < self.call.gap

    async def until_bot_starts(self) -> float:
        """Start time of the bot's current (or next) utterance."""
        if not self.speaking():
            self.spoke.clear()
            await self.call.until_bot_unheard(self.spoke.wait())
        return self.utterance_start

    async def until_bot_stops(self) -> None:
        await self.until_bot_starts()
        while self.call.media is not None:
            remaining = self.last_speech + self.call.gap - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)


def _is_speech(payload: bytes, threshold: float) -> bool:
    samples = np.frombuffer(payload[: len(payload) // 2 * 2], "<i2").astype(np.float32)
    return samples.size > 0 and float(np.sqrt(np.mean(samples * samples))) >= threshold


class Call:
    def __init__(
        self,
        sim: PbxSim,
        *,
        action_id: str | None,
        dial: str,
        context: str,
        exten: str,
        priority: int,
        caller: tuple[str, str] | None,
        variables: list[tuple[str, str]],
        timeout: float,
        customer_name: str,
        customer: Customer,
        outcome: Outcome,
    ) -> None:
        self.sim = sim
        self.action_id = action_id
        self.dial = dial  # "s@customer-answer"
        self.target = (context, exten, priority)
        self.caller = caller
        self.variables = variables
        self.timeout = timeout
        self.customer = customer
        self.outcome = outcome
        cust_exten, _, cust_context = dial.partition("@")
        seq = sim.next_channel_seq()
        base = f"Local/{dial}-{seq:08x}"
        bot_id, cust_id = sim.next_uniqueid(), sim.next_uniqueid()
        self.bot = Channel(f"{base};1", bot_id, bot_id, 0, cust_context or "default", cust_exten)
        self.cust = Channel(
            f"{base};2", cust_id, bot_id, STATE_RING, cust_context or "default", cust_exten
        )
        self.record = CallRecord(
            action_id=action_id,
            channel=self.bot.name,
            number=cust_exten,
            customer=customer_name,
            outcome=outcome,
        )
        self.gap = sim.config.bot_silence_gap / sim.config.speed
        self.ring = sim.scenario.ring_seconds  # drawn per call by the sim (ring_spread)
        self.media_line = customer.media or sim.scenario.media
        self.mouth = Mouth(self, self.media_line, seed=sim.scenario.seed * 100_003 + seq)
        self.ears = Ears(self)
        self.media: AudioSocketClient | EagiSession | None = None
        self.agi: AgiSession | None = None
        self.bot_dead = False  # soft hang-up requested on ;1 (AGI HANGUP, customer gone, AMI)
        self.customer_gone = asyncio.Event()
        self.interrupted = asyncio.Event()  # ends AMD()/Wait() early: a hang-up or a redirect
        self.bot_finished = asyncio.Event()
        self.pending_goto: tuple[str, str, int] | None = None
        self.customer_task: asyncio.Task[None] | None = None
        self.monitors: list[MixMonitor] = []

    # -- helpers --------------------------------------------------------------------------------
    def emit(self, event: str, fields: Fields, privilege: str = "call,all") -> None:
        self.sim.emit([("Event", event), ("Privilege", privilege), *fields])

    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds / self.sim.config.speed)

    def set_var(self, chan: Channel, name: str, value: str) -> None:
        chan.variables[name] = value
        if chan is self.bot:
            self.record.variables[name] = value
            if name == "OUTDIAL_CALL_ID":
                self.record.call_id = value
        self.emit("VarSet", [*chan.header(), ("Variable", name), ("Value", value)], "dialplan,all")

    def newexten(self, chan: Channel, app: str, data: str) -> None:
        chan.application, chan.app_data = app, data
        self.emit(
            "Newexten",
            [*chan.header(), ("Extension", chan.exten), ("Application", app), ("AppData", data)],
            "dialplan,all",
        )

    def newstate(self, chan: Channel, state: int) -> None:
        chan.state = state
        self.emit("Newstate", chan.header())

    def cause_event(self, event: str, chan: Channel, cause: int) -> None:
        self.emit(event, [*chan.header(), ("Cause", str(cause))])

    def hangup_event(self, chan: Channel, cause: int) -> None:
        chan.hung_up = True
        self.emit(
            "Hangup", [*chan.header(), ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT[cause])]
        )

    def dial_event(self, event: str, extra: Fields) -> None:
        self.emit(event, [*self.bot.header("Dest"), *extra])

    def emit_agi_start(self, command_id: str, command: str) -> None:
        self.emit(
            "AGIExecStart",
            [*self.bot.header(), ("CommandId", command_id), ("Command", command)],
            "agi,all",
        )

    def emit_agi_end(self, command_id: str, command: str, code: int, result: str) -> None:
        fields = [("CommandId", command_id), ("Command", command)]
        fields += [("ResultCode", str(code)), ("Result", result)]
        self.emit("AGIExecEnd", [*self.bot.header(), *fields], "agi,all")

    async def until_bot_unheard(self, waiter: Awaitable[object]) -> None:
        """Await `waiter` unless the bot can no longer be heard first: its media stream closed,
        or its leg finished or the customer left. Before the media connects (AMD runs first)
        the customer keeps waiting, as a person who picked up waits for a voice."""
        ours = [
            asyncio.ensure_future(waiter),
            asyncio.ensure_future(self.bot_finished.wait()),
            asyncio.ensure_future(self.customer_gone.wait()),
        ]
        media = self.media
        ended = [media.ended] if media is not None else []
        await asyncio.wait([*ours, *ended], return_when=asyncio.FIRST_COMPLETED)
        for task in ours:  # never the stream's own future, which others await
            task.cancel()

    def send_frame(self, payload: bytes, kind: int = audiosocket.KIND_AUDIO) -> None:
        # The bot leg reads the customer's audio whether or not anything listens to it yet.
        # MixMonitor files are 8 kHz: a wideband line (a test switch) is not recorded here.
        if kind == audiosocket.KIND_AUDIO:
            self._monitors_hear("read", payload)
        media = self.media
        if media is None or not media.open:
            return  # Playback into a channel nobody listens to: the audio is lost
        media.send_audio(payload, kind)
        self.record.audio_sent_times.append(time.monotonic())
        self.record.audio_sent_sizes.append(len(payload))
        if self.sim.config.record_audio:
            self.record.audio_sent += payload

    def on_bot_frame(self, frame: BotFrame) -> None:
        self.record.bot_frames.append(frame)
        self._monitors_hear("write", frame.payload)
        self.ears.hear(frame, frame.payload)

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            self._setup_events()
            if self.outcome in ("answer", "machine"):
                await self._ring_then_answer()
            elif self.outcome == "busy":
                self._busy()
            elif self.outcome == "congestion":
                self._congestion()
            else:
                await self._no_answer()
        except Exception as exc:
            log.exception("call %s failed inside pbxsim", self.bot.name)
            self.record.errors.append(f"internal: {exc!r}")
        finally:
            self.mouth.stop()
            if self.customer_task is not None:
                self.customer_task.cancel()
            self._stop_monitors()  # a recording ends when its channel hangs up
            self.record.done = True
            self.sim.call_finished(self)

    def _setup_events(self) -> None:
        bot, cust = self.bot, self.cust
        self.emit("Newchannel", bot.header())
        self.emit("Newchannel", cust.header())
        self.newexten(bot, "AppDial2", "(Outgoing Line)")
        for name, value in self.variables:
            self.set_var(bot, name, value)
        if self.caller is not None:
            bot.caller_name, bot.caller_num = self.caller
            self.emit("NewCallerid", [*bot.header(), _CID_PRES])
            bot.connected_name, bot.connected_num = self.caller
            self.emit("NewConnectedLine", bot.header())
        for name, value in self.variables:
            self.set_var(cust, name, value)
        if self.caller is not None:
            cust.caller_name, cust.caller_num = self.caller
            cust.connected_name, cust.connected_num = self.caller
            self.emit("NewCallerid", [*cust.header(), _CID_PRES])
            self.emit("NewConnectedLine", cust.header())
        cust.application, cust.app_data = "AppDial2", "(Outgoing Line)"
        self.emit(
            "LocalBridge",
            [
                *bot.header("LocalOne"),
                *cust.header("LocalTwo"),
                ("Context", cust.context),
                ("Exten", cust.exten),
                ("LocalOptimization", "Yes"),
            ],
        )

    def _originate_failure(self) -> None:
        context, exten, _ = self.target
        self.record.reason = REASON[self.outcome]
        self.emit(
            "OriginateResponse",
            [
                *([("ActionID", self.action_id)] if self.action_id else []),
                ("Response", "Failure"),
                ("Channel", f"Local/{self.dial}"),
                ("Context", context),
                ("Exten", exten),
                ("Reason", str(REASON[self.outcome])),
                ("Uniqueid", "<unknown>"),
                ("CallerIDNum", self.bot.caller_num),
                ("CallerIDName", self.bot.caller_name),
            ],
        )
        self.sim.originate_done(self, success=False)

    def _busy(self) -> None:
        self.dial_event("DialBegin", [("DialString", self.dial)])
        self.newexten(self.cust, "Busy", "5")
        self.newstate(self.cust, STATE_BUSY)
        self.dial_event("DialEnd", [("DialStatus", "BUSY")])
        self.cause_event("HangupRequest", self.cust, 0)
        self.cause_event("SoftHangupRequest", self.cust, 16)
        self.hangup_event(self.bot, 0)
        self.hangup_event(self.cust, 17)
        self._originate_failure()

    def _congestion(self) -> None:
        self.dial_event("DialBegin", [("DialString", self.dial)])
        self.newexten(self.cust, "Congestion", "5")
        self.newstate(self.cust, STATE_BUSY)
        self._originate_failure()
        self.dial_event("DialEnd", [("DialStatus", "CONGESTION")])
        self.cause_event("HangupRequest", self.cust, 0)
        self.hangup_event(self.bot, 0)
        self.cause_event("SoftHangupRequest", self.cust, 16)
        self.hangup_event(self.cust, 34)

    async def _no_answer(self) -> None:
        self.dial_event("DialBegin", [("DialString", self.dial)])
        self._ringing()
        await self.sleep(self.timeout)
        self._ring_timeout()

    def _ringing(self) -> None:
        self.newexten(self.cust, "Ringing", "")
        self.newstate(self.bot, STATE_RINGING)
        self.cust.priority = 2
        self.newexten(self.cust, "Wait", "60")
        self.dial_event("DialState", [("DialStatus", "RINGING")])

    def _ring_timeout(self) -> None:
        self.outcome = "no_answer"
        self.record.outcome = "no_answer"
        self.cause_event("HangupRequest", self.cust, 19)
        self._originate_failure()
        self.hangup_event(self.bot, 19)
        self.cause_event("SoftHangupRequest", self.cust, 16)
        self.hangup_event(self.cust, 19)

    async def _ring_then_answer(self) -> None:
        ring = self.ring
        if ring >= self.timeout:
            self.dial_event("DialBegin", [("DialString", self.dial)])
            self._ringing()
            await self.sleep(self.timeout)
            self._ring_timeout()
            return
        await self.sleep(ring)
        cust = self.cust
        self.newexten(cust, "Answer", "")
        self.newstate(cust, STATE_UP)
        self.dial_event("DialBegin", [("DialString", self.dial)])
        self.newstate(self.bot, STATE_UP)
        self.dial_event("DialEnd", [("DialStatus", "ANSWER")])
        self.record.reason = 4
        self.customer_task = asyncio.create_task(self._customer_script())
        await self._run_bot_dialplan()

    # -- the customer leg ------------------------------------------------------------------------
    async def _customer_script(self) -> None:
        cust = self.cust
        await self.sleep(self.customer.answer_delay)
        for step in self.customer.steps:
            if self.customer_gone.is_set():
                return
            if isinstance(step, SayStep | SayTextStep):
                cust.priority += 1
                data = step.say.rsplit(".", 1)[0] if isinstance(step, SayStep) else step.say_text
                self.newexten(cust, "Playback", data)
                agitation = step.agitation or self.customer.agitation
                clip = self.sim.audio.get(step_source(step), agitation, self.mouth.media.rate)
                playing = self.mouth.play(clip)
                if step.dtmf:  # keys pressed while talking: DTMF between the audio frames
                    await self.sleep(step.dtmf_at)
                    for digit in step.dtmf:
                        self._send_dtmf(digit)
                await playing
                self.set_var(cust, "PLAYBACKSTATUS", "SUCCESS")
            elif isinstance(step, SilenceStep):
                cust.priority += 1
                self.newexten(cust, "Wait", _num(step.silence))
                await self.sleep(step.silence)
            elif isinstance(step, DtmfStep):
                cust.priority += 1
                self.newexten(cust, "SendDTMF", step.dtmf)
                for digit in step.dtmf:
                    self._send_dtmf(digit)
                    await self.sleep(DTMF_SPACING)
            elif isinstance(step, WaitForBotStep):
                await self.ears.until_bot_stops()
            elif isinstance(step, BargeInStep):
                started = await self.ears.until_bot_starts()
                delay = started + step.barge_in_after / self.sim.config.speed - time.monotonic()
                await asyncio.sleep(max(0.0, delay))
            elif isinstance(step, HangupStep):
                cust.priority += 1
                self.newexten(cust, "Hangup", "")
                self.customer_hangs_up()
                return

    def _send_dtmf(self, digit: str) -> None:
        self.record.dtmf_sent.append(digit)
        if self.media is not None and self.media.open:
            self.media.send_dtmf(digit)

    def customer_hangs_up(self, cause: int = 16) -> None:
        """The far end hung up: tear down `;2` now; `;1` follows when its dialplan stops."""
        if self.customer_gone.is_set():
            return
        self.customer_gone.set()
        self.mouth.stop()
        if self.record.hangup_side is None:
            self.record.hangup_side = "customer"
        self.cause_event("SoftHangupRequest", self.cust, cause)
        self.cause_event("HangupRequest", self.bot, cause)
        self.hangup_event(self.cust, cause)
        self.bot_dead = True
        self.interrupted.set()
        if self.media is not None:
            self.media.hang_up(with_frame=self.sim.config.hangup_frame)
        if self.agi is not None:
            self.agi.notify_hangup()

    # -- the bot leg's dialplan ------------------------------------------------------------------
    async def _run_bot_dialplan(self) -> None:
        context, exten, priority = self.target
        bot = self.bot
        first = True
        while not self.bot_finished.is_set():
            steps = self.sim.dialplan.get(context, [])
            if priority > len(steps):
                break  # off the end of the dialplan: Asterisk hangs the channel up
            bot.context, bot.exten, bot.priority = context, exten, priority
            step = steps[priority - 1]
            data = substitute(step.data, bot.variables)
            self.newexten(bot, step.app, data)
            if first:
                first = False
                self._originate_success()
            if self.bot_dead and step.app.lower() != "agi":
                break
            jump = await self._run_app(step, data)
            if jump is None and self.pending_goto is not None:  # an AMI Redirect
                jump, self.pending_goto = self.pending_goto, None
                self.interrupted.clear()
            if step.app.lower() == "hangup" or (self.bot_dead and jump is None):
                break
            if jump is not None:
                context, exten, priority = jump
            else:
                priority += 1
        await self._bot_hangs_up()

    def _originate_success(self) -> None:
        self.emit(
            "OriginateResponse",
            [
                *([("ActionID", self.action_id)] if self.action_id else []),
                ("Response", "Success"),
                ("Channel", self.bot.name),
                ("Context", self.bot.context),
                ("Exten", self.bot.exten),
                ("Reason", "4"),
                ("Uniqueid", self.bot.uniqueid),
                ("CallerIDNum", self.bot.caller_num),
                ("CallerIDName", self.bot.caller_name),
            ],
        )
        self.sim.originate_done(self, success=True)

    async def _run_app(self, step: DialplanStep, data: str) -> tuple[str, str, int] | None:
        app = step.app.lower()
        if app == "amd":
            await self._amd()
        elif app == "agi":
            return await self._agi(data)
        elif app == "eagi":
            return await run_eagi(self, data)
        elif app == "wait":
            await self._wait_or_hangup(_float(data))
        elif app == "set" and "=" in data:
            name, _, value = data.partition("=")
            self.set_var(self.bot, name, value)
        elif app == "goto":
            return _goto_target(data, self.bot)
        elif app == "execif":
            return await self._exec_if(data)
        elif app == "mixmonitor":
            self._mix_monitor(data)
        elif app == "stopmixmonitor":
            self._stop_monitors()
        return None

    async def _exec_if(self, data: str) -> tuple[str, str, int] | None:
        """ExecIf(cond?App(args)[:App(args)]); `data` was substituted, so the condition has been
        evaluated. A malformed one fails the application, as in Asterisk (logged, channel goes
        on to the next priority here)."""
        try:
            condition, if_true, if_false = split_condition(data)
        except ValueError as exc:
            log.error("dialplan ExecIf(%s): %s", data, exc)
            self.record.errors.append(f"ExecIf: {exc}")
            return None
        step = if_true if truthy(condition) else if_false
        return None if step is None else await self._run_app(step, step.data)

    def _mix_monitor(self, data: str) -> None:
        """MixMonitor(file.ext[,options[,command]]) on the bot leg: both directions to a file."""
        args = split_args(data)
        config = self.sim.config
        try:
            if not args[0]:
                raise MixMonitorError("MixMonitor requires an argument (filename or ,t(filename))")
            if config.monitor_dir is None and not args[0].startswith("/"):
                raise MixMonitorError("a relative file name and no monitor_dir in SimConfig")
            if not config.record_audio:
                raise MixMonitorError("pbxsim records nothing with record_audio off")
            monitor_dir = config.monitor_dir or Path("/")
            monitor = MixMonitor(
                full_path(args[0], monitor_dir),
                MixOptions.parse(args[1] if len(args) > 1 else ""),
                monitor_dir,
                started=time.monotonic(),
                speed=config.speed,
            )
        except (MixMonitorError, OSError) as exc:
            log.error("dialplan MixMonitor(%s): %s", data, exc)
            self.record.errors.append(f"MixMonitor: {exc}")
            return
        self.monitors.append(monitor)
        self.set_var(self.bot, "MIXMONITOR_FILENAME", str(monitor.path))
        if monitor.options.id_variable:
            self.set_var(self.bot, monitor.options.id_variable, monitor.ident)
        self.emit("MixMonitorStart", self.bot.header())

    def _monitors_hear(self, direction: Literal["read", "write"], payload: bytes) -> None:
        now = time.monotonic()
        for monitor in self.monitors:
            monitor.hear(direction, payload, now)

    def _stop_monitors(self) -> None:
        for monitor in self.monitors:
            if monitor.stopped:
                continue
            self.record.recordings += monitor.stop()
            self.emit("MixMonitorStop", self.bot.header())

    async def _wait_or_hangup(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.interrupted.wait(), seconds / self.sim.config.speed)

    async def _amd(self) -> None:
        verdict = self.customer.verdict(self.outcome)
        started = time.monotonic()
        await self._wait_or_hangup(verdict.seconds)
        self.record.amd_seconds = time.monotonic() - started
        status, cause = (verdict.status, verdict.cause)
        if self.customer_gone.is_set():
            status, cause = "HANGUP", ""
        self.record.amd_status, self.record.amd_cause = status, cause
        self.set_var(self.bot, "AMDSTATUS", status)
        self.set_var(self.bot, "AMDCAUSE", cause)

    async def _agi(self, url: str) -> tuple[str, str, int] | None:
        try:
            target = parse_agi_url(url)
        except AgiUrlError as exc:
            log.error("dialplan AGI(%s): %s", url, exc)
            self.record.errors.append(str(exc))
            self.set_var(self.bot, "AGISTATUS", "FAILURE")
            return None
        if self.record.agi_started_at is None:
            self.record.agi_started_at = time.monotonic()
        self.agi = AgiSession(self, target)
        reached = await self.agi.run()
        self.agi = None
        status = "FAILURE" if not reached else ("HANGUP" if self.bot_dead else "SUCCESS")
        self.record.agi_status = status
        self.set_var(self.bot, "AGISTATUS", status)
        jump, self.pending_goto = self.pending_goto, None
        return jump

    async def _bot_hangs_up(self) -> None:
        """The bot leg stops: the customer leg is hung up too (unless it already left)."""
        bot, cust = self.bot, self.cust
        self.bot_finished.set()
        if self.record.hangup_side is None:
            self.record.hangup_side = "bot"
        self.mouth.stop()
        if self.customer_task is not None:
            self.customer_task.cancel()
        self.cause_event("SoftHangupRequest", bot, 16)
        if not self.customer_gone.is_set():
            self.customer_gone.set()
            self.cause_event("HangupRequest", cust, 0)
            if cust.application == "Playback":
                self.set_var(cust, "PLAYBACKSTATUS", "SUCCESS")
            self.cause_event("SoftHangupRequest", cust, 16)
            self.hangup_event(cust, 0)
        self.hangup_event(bot, 0)

    # -- AGI commands ----------------------------------------------------------------------------
    async def agi_command(self, args: list[str], session: AgiSession | EagiSession) -> Reply:
        name, rest = _command_name(args)
        if name is None:
            return Reply(INVALID_REPLY, 510, INVALID_TEXT)
        if self.bot_dead and name not in DEAD_ALLOWED:
            return Reply(DEAD_REPLY, 511, DEAD_TEXT)
        handler = {
            "ANSWER": self._agi_answer,
            "HANGUP": self._agi_hangup,
            "GET VARIABLE": self._agi_get_variable,
            "GET FULL VARIABLE": self._agi_get_full_variable,
            "SET VARIABLE": self._agi_set_variable,
            "VERBOSE": self._agi_verbose,
            "NOOP": self._agi_noop,
        }.get(name)
        if handler is not None:
            return handler(rest)
        return await self._agi_exec(rest)

    def _agi_answer(self, _: list[str]) -> Reply:
        return ok("200 result=0")

    def _agi_hangup(self, _: list[str]) -> Reply:
        self.cause_event("SoftHangupRequest", self.bot, 32)
        self.bot_dead = True
        self.interrupted.set()
        self.record.hangup_side = self.record.hangup_side or "bot"
        if self.agi is not None:
            self.agi.notify_hangup()
        return ok("200 result=1")

    def _agi_get_variable(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("GET VARIABLE <variablename>")
        value = self._lookup(rest[0])
        return ok("200 result=0") if value is None else ok(f"200 result=1 ({value})")

    def _agi_get_full_variable(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("GET FULL VARIABLE <expression> [<channelname>]")
        text = substitute(rest[0], self._expression_values(rest[0]))
        return ok(f"200 result=1 ({text})")

    def _agi_set_variable(self, rest: list[str]) -> Reply:
        if len(rest) < 2:
            return _usage("SET VARIABLE <variablename> <value>")
        self.set_var(self.bot, rest[0], rest[1])
        return ok("200 result=1")

    def _agi_verbose(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("VERBOSE <message> <level>")
        return ok("200 result=1")

    def _agi_noop(self, _: list[str]) -> Reply:
        # Captured: after the hang-up notice, NOOP gets no reply line at all.
        return Reply(None if self.bot_dead else "200 result=0", 200, "Success")

    async def _agi_exec(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("EXEC <application> <options>")
        app, options = rest[0], " ".join(rest[1:])
        self.bot.application, self.bot.app_data = app, options
        result = await self._exec_app(app.lower(), options)
        return ok(f"200 result={result}", "Success" if result >= 0 else "Unknown Result")

    async def _exec_app(self, app: str, options: str) -> int:
        if app not in KNOWN_EXEC_APPS:
            log.warning("AGI EXEC of an application pbxsim does not know: %s", app)
            return -2
        if self.bot_dead and app != "goto":
            return -1
        if app == "audiosocket":
            return await self._audiosocket(options)
        if app in ("dial", "queue"):
            return await self._dial_transfer(app, options)
        if app == "goto":
            self.record.transfer = Transfer("Goto", options)
            self.pending_goto = _goto_target(options, self.bot)
            return 0
        if app == "wait":
            await self._wait_or_hangup(_float(options))
        elif app == "set" and "=" in options:
            name, _, value = options.partition("=")
            self.set_var(self.bot, name, value)
        elif app == "hangup":
            self._agi_hangup([])
            return -1
        return 0

    async def _audiosocket(self, options: str) -> int:
        try:
            call_uuid, host, port = _audiosocket_args(options)
        except ValueError as exc:
            log.error("EXEC AudioSocket %r: %s", options, exc)
            self.record.errors.append(f"audiosocket args: {exc}")
            return -1
        try:
            client = await audiosocket.connect(
                host,
                port,
                call_uuid,
                on_bot_frame=self.on_bot_frame,
                record_payloads=self.sim.config.record_audio,
                faults=self.sim.config.faults.audiosocket(),
            )
        except OSError as exc:
            log.error("AudioSocket server %s:%d unreachable: %s", host, port, exc)
            self.record.errors.append(f"audiosocket connect: {exc}")
            self.record.audiosocket_results.append(-1)
            return -1
        self.media = client
        self.record.media_connected_at.append(time.monotonic())
        self.mouth.open_line()
        reason = await client.ended
        self.media = None
        if client.error:
            self.record.errors.append(f"audiosocket: {client.error}")
        result = 0 if reason == EndReason.SERVER_CLOSED else -1
        self.record.audiosocket_results.append(result)
        return result

    async def _dial_transfer(self, app: str, options: str) -> int:
        """The customer is bridged to an agent, talks for a while, then hangs up."""
        self.record.transfer = Transfer(app.capitalize(), options)
        await self._wait_or_hangup(self.sim.config.transfer_talk_seconds)
        self.customer_hangs_up()
        return -1

    def _lookup(self, name: str) -> str | None:
        if name in self.bot.variables:
            return self.bot.variables[name]
        return self.sim.global_vars.get(name)

    def _expression_values(self, expression: str) -> dict[str, str]:
        values = {**self.sim.global_vars, **self.bot.variables}
        values.update(
            {
                "CHANNEL(state)": "Up" if self.bot.state == STATE_UP else "Down",
                "CHANNEL(name)": self.bot.name,
                "CHANNEL": self.bot.name,
                "UNIQUEID": self.bot.uniqueid,
                "CALLERID(num)": _known(self.bot.caller_num),
                "CALLERID(name)": _known(self.bot.caller_name),
                "CONTEXT": self.bot.context,
                "EXTEN": self.bot.exten,
            }
        )
        return values

    # -- AMI-driven changes ----------------------------------------------------------------------
    def ami_hangup(self, channel: Channel) -> None:
        if channel is self.cust:
            self.customer_hangs_up()
            return
        self.record.hangup_side = self.record.hangup_side or "ami"
        self.cause_event("SoftHangupRequest", self.bot, 16)
        self.bot_dead = True
        self.interrupted.set()
        if self.media is not None:
            self.media.hang_up(with_frame=False)
        if self.agi is not None:
            self.agi.notify_hangup()

    def ami_redirect(self, context: str, exten: str, priority: int) -> None:
        self.record.transfer = Transfer("Redirect", f"{context},{exten},{priority}")
        self.pending_goto = (context, exten, priority)
        self.interrupted.set()
        if self.media is not None:
            self.media.hang_up(with_frame=False)
        if self.agi is not None:
            self.agi.notify_hangup()


def _command_name(args: list[str]) -> tuple[str | None, list[str]]:
    upper = [a.upper() for a in args]
    for size in (3, 2, 1):
        name = " ".join(upper[:size])
        if name in _COMMANDS:
            return name, args[size:]
    return None, args


_COMMANDS = {"ANSWER", "HANGUP", "GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE"}
_COMMANDS |= {"VERBOSE", "NOOP", "EXEC"}


def _usage(usage: str) -> Reply:
    return Reply(USAGE_REPLY.format(usage=f" Usage: {usage}"), 520, "Usage")


def _audiosocket_args(options: str) -> tuple[uuid.UUID, str, int]:
    ident, sep, address = options.partition(",")
    if not sep:
        raise ValueError("expected <uuid>,<host>:<port>")
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad server address {address!r}")
    return uuid.UUID(ident.strip()), host, int(port)


def _goto_target(data: str, chan: Channel) -> tuple[str, str, int]:
    parts = [p.strip() for p in data.split(",")]
    if len(parts) == 3:
        return parts[0], parts[1], int(parts[2]) if parts[2].isdigit() else 1
    if len(parts) == 2:
        return chan.context, parts[0], int(parts[1]) if parts[1].isdigit() else 1
    return chan.context, chan.exten, int(parts[0]) if parts[0].isdigit() else 1


def _float(text: str) -> float:
    try:
        return float(text.split(",")[0] or 0)
    except ValueError:
        return 0.0


def _num(value: float) -> str:
    return f"{value:g}"


def _known(value: str) -> str:
    return "" if value == "<unknown>" else value
