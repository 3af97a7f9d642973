"""One originated call: a Local channel pair, the customer leg's script and the bot's dialplan.

The call holds what its parts share (the two channels, the record, the media stream, the
hang-up flags) and the order of its life; its parts each own one side of it:
`CallEvents` (the AMI events, in the captures' order), `CustomerLeg` (the simulated
customer's audio and steps), `BotDialplan` (the bot leg's dialplan, AMD and MixMonitor) and
`AgiCommands` (the replies to the bot's AGI commands, AudioSocket included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from pbxsim import audiosocket
from pbxsim.agi import AgiSession
from pbxsim.agicommands import AgiCommands
from pbxsim.audiosocket import AudioSocketClient, BotFrame
from pbxsim.botleg import BotDialplan
from pbxsim.callevents import CallEvents
from pbxsim.channels import STATE_RING, Channel
from pbxsim.customer import CustomerLeg
from pbxsim.dialplan import app_seconds
from pbxsim.records import CallRecord, Transfer
from pbxsim.scenario import Customer, Outcome

if TYPE_CHECKING:
    from pbxsim.eagi import EagiSession
    from pbxsim.sim import PbxSim

log = logging.getLogger(__name__)


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
        self.seq = sim.next_channel_seq()
        base = f"Local/{dial}-{self.seq:08x}"
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
        self.media: AudioSocketClient | EagiSession | None = None
        self.agi: AgiSession | None = None
        self.bot_dead = False  # soft hang-up requested on ;1 (AGI HANGUP, customer gone, AMI)
        self.customer_gone = asyncio.Event()
        self.interrupted = asyncio.Event()  # ends AMD()/Wait() early: a hang-up or a redirect
        self.bot_finished = asyncio.Event()
        self.pending_goto: tuple[str, str, int] | None = None
        self.customer_task: asyncio.Task[None] | None = None
        self.events = CallEvents(self)
        self.customer_leg = CustomerLeg(self)
        self.dialplan = BotDialplan(self)
        self.commands = AgiCommands(self)

    # -- shared by the parts --------------------------------------------------------------------
    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds / self.sim.config.speed)

    async def wait_or_hangup(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.interrupted.wait(), seconds / self.sim.config.speed)

    async def wait_or_set(self, app: str, data: str) -> None:
        """Wait(seconds) or Set(name=value) on the bot leg, from the dialplan or AGI EXEC."""
        if app == "wait":
            await self.wait_or_hangup(app_seconds(data))
        elif "=" in data:
            name, _, value = data.partition("=")
            self.events.set_var(self.bot, name, value)

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
        try:
            await asyncio.wait([*ours, *ended], return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the call is cancelled (the PBX stops): no waiter outlives it
            for task in ours:  # never the stream's own future, which others await
                task.cancel()

    def send_frame(self, payload: bytes, kind: int = audiosocket.KIND_AUDIO) -> None:
        # The bot leg reads the customer's audio whether or not anything listens to it yet.
        # MixMonitor files are 8 kHz: a wideband line (a test switch) is not recorded here.
        if kind == audiosocket.KIND_AUDIO:
            self.dialplan.monitors.hear("read", payload)
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
        self.dialplan.monitors.hear("write", frame.payload)
        self.customer_leg.ears.hear(frame, frame.payload)
        self.customer_leg.mouth.hear_bot(frame.payload)

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            self.events.setup()
            if self.outcome in ("answer", "machine"):
                await self._ring_then_answer()
            elif self.outcome == "busy":
                self.events.busy()
            elif self.outcome == "congestion":
                self.events.congestion()
            else:
                self.events.ringing()
                await self.sleep(self.timeout)
                self.events.ring_timeout()
        except Exception as exc:
            log.exception("call %s failed inside pbxsim", self.bot.name)
            self.record.errors.append(f"internal: {exc!r}")
        finally:
            self.customer_leg.mouth.stop()
            if self.customer_task is not None:
                self.customer_task.cancel()
            self.dialplan.monitors.stop()  # a recording ends when its channel hangs up
            self.record.done = True
            self.sim.call_finished(self)

    async def _ring_then_answer(self) -> None:
        if self.ring >= self.timeout:
            self.events.ringing()
            await self.sleep(self.timeout)
            self.events.ring_timeout()
            return
        await self.sleep(self.ring)
        self.events.answered()
        self.customer_task = asyncio.create_task(self.customer_leg.run())
        await self.dialplan.run()

    def bot_hangs_up(self) -> None:
        """The bot leg stops: the customer leg is hung up too (unless it already left)."""
        self.bot_finished.set()
        if self.record.hangup_side is None:
            self.record.hangup_side = "bot"
        self.customer_leg.mouth.stop()
        if self.customer_task is not None:
            self.customer_task.cancel()
        customer_there = not self.customer_gone.is_set()
        self.customer_gone.set()
        self.events.bot_hung_up(customer_there=customer_there)

    def customer_hangs_up(self, cause: int = 16) -> None:
        """The far end hung up: tear down `;2` now; `;1` follows when its dialplan stops."""
        if self.customer_gone.is_set():
            return
        self.customer_gone.set()
        self.customer_leg.mouth.stop()
        if self.record.hangup_side is None:
            self.record.hangup_side = "customer"
        self.events.customer_hung_up(cause)
        self._end_bot_media(with_frame=self.sim.config.hangup_frame)

    # -- AMI-driven changes ----------------------------------------------------------------------
    def ami_hangup(self, channel: Channel) -> None:
        if channel is self.cust:
            self.customer_hangs_up()
            return
        self.record.hangup_side = self.record.hangup_side or "ami"
        self.events.cause("SoftHangupRequest", self.bot, 16)
        self._end_bot_media(with_frame=False)

    def ami_redirect(self, context: str, exten: str, priority: int) -> None:
        self.record.transfer = Transfer("Redirect", f"{context},{exten},{priority}")
        self.pending_goto = (context, exten, priority)
        self.interrupted.set()
        self._close_media(with_frame=False)

    def _end_bot_media(self, *, with_frame: bool) -> None:
        """`;1` is hung up: its apps stop, its media closes, its AGI gets the hang-up notice."""
        self.bot_dead = True
        self.interrupted.set()
        self._close_media(with_frame=with_frame)

    def _close_media(self, *, with_frame: bool) -> None:
        if self.media is not None:
            self.media.hang_up(with_frame=with_frame)
        if self.agi is not None:
            self.agi.notify_hangup()
