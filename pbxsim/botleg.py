"""The bot leg's dialplan: priorities run one after another (Answer, AMD, MixMonitor, AGI,
EAGI, Wait, Set, Goto, ExecIf), and the MixMonitor recordings it starts."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pbxsim.agi import AgiSession, AgiUrlError, parse_agi_url
from pbxsim.dialplan import (
    DialplanStep,
    goto_target,
    split_condition,
    substitute,
    truthy,
)
from pbxsim.eagi import run_eagi
from pbxsim.mixmonitor import MixMonitor, MixMonitorError, MixOptions, full_path, split_args

if TYPE_CHECKING:
    from pbxsim.call import Call

log = logging.getLogger(__name__)

Jump = tuple[str, str, int]


class BotDialplan:
    """Runs `;1` through the dialplan from the originate's target until it hangs up."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.monitors = CallMonitors(call)

    async def run(self) -> None:
        call = self.call
        context, exten, priority = call.target
        bot = call.bot
        first = True
        while not call.bot_finished.is_set():
            steps = call.sim.dialplan.get(context, [])
            if priority > len(steps):
                break  # off the end of the dialplan: Asterisk hangs the channel up
            bot.context, bot.exten, bot.priority = context, exten, priority
            step = steps[priority - 1]
            data = substitute(step.data, bot.variables)
            call.events.newexten(bot, step.app, data)
            if first:
                first = False
                call.events.originate_response(success=True)
            if call.bot_dead and step.app.lower() != "agi":
                break
            jump = await self._run_app(step, data)
            if jump is None and call.pending_goto is not None:  # an AMI Redirect
                jump, call.pending_goto = call.pending_goto, None
                call.interrupted.clear()
            if step.app.lower() == "hangup" or (call.bot_dead and jump is None):
                break
            if jump is not None:
                context, exten, priority = jump
            else:
                priority += 1
        call.bot_hangs_up()

    async def _run_app(self, step: DialplanStep, data: str) -> Jump | None:
        call = self.call
        app = step.app.lower()
        if app == "amd":
            await self._amd()
        elif app == "agi":
            return await self._agi(data)
        elif app == "eagi":
            return await run_eagi(call, data)
        elif app in ("wait", "set"):
            await call.wait_or_set(app, data)
        elif app == "goto":
            return goto_target(data, call.bot)
        elif app == "execif":
            return await self._exec_if(data)
        elif app == "mixmonitor":
            self.monitors.start(data)
        elif app == "stopmixmonitor":
            self.monitors.stop()
        return None

    async def _exec_if(self, data: str) -> Jump | None:
        """ExecIf(cond?App(args)[:App(args)]); `data` was substituted, so the condition has been
        evaluated. A malformed one fails the application, as in Asterisk (logged, channel goes
        on to the next priority here)."""
        try:
            condition, if_true, if_false = split_condition(data)
        except ValueError as exc:
            log.error("dialplan ExecIf(%s): %s", data, exc)
            self.call.record.errors.append(f"ExecIf: {exc}")
            return None
        step = if_true if truthy(condition) else if_false
        return None if step is None else await self._run_app(step, step.data)

    async def _amd(self) -> None:
        """AMD() as pbxsim models it: the customer's verdict after its decision time (AMD
        listens to the customer's greeting before the bot can speak)."""
        call = self.call
        verdict = call.customer.verdict(call.outcome)
        started = time.monotonic()
        await call.wait_or_hangup(verdict.seconds)
        call.record.amd_seconds = time.monotonic() - started
        status, cause = (verdict.status, verdict.cause)
        if call.customer_gone.is_set():
            status, cause = "HANGUP", ""
        call.record.amd_status, call.record.amd_cause = status, cause
        call.events.set_var(call.bot, "AMDSTATUS", status)
        call.events.set_var(call.bot, "AMDCAUSE", cause)

    async def _agi(self, url: str) -> Jump | None:
        call = self.call
        try:
            target = parse_agi_url(url)
        except AgiUrlError as exc:
            log.error("dialplan AGI(%s): %s", url, exc)
            call.record.errors.append(str(exc))
            call.events.set_var(call.bot, "AGISTATUS", "FAILURE")
            return None
        if call.record.agi_started_at is None:
            call.record.agi_started_at = time.monotonic()
        call.agi = AgiSession(call, target)
        reached = await call.agi.run()
        call.agi = None
        status = "FAILURE" if not reached else ("HANGUP" if call.bot_dead else "SUCCESS")
        call.record.agi_status = status
        call.events.set_var(call.bot, "AGISTATUS", status)
        jump, call.pending_goto = call.pending_goto, None
        return jump


class CallMonitors:
    """MixMonitor(file.ext[,options[,command]]) recordings on the bot leg: both directions."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.active: list[MixMonitor] = []

    def start(self, data: str) -> None:
        call = self.call
        args = split_args(data)
        config = call.sim.config
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
            call.record.errors.append(f"MixMonitor: {exc}")
            return
        self.active.append(monitor)
        call.events.set_var(call.bot, "MIXMONITOR_FILENAME", str(monitor.path))
        if monitor.options.id_variable:
            call.events.set_var(call.bot, monitor.options.id_variable, monitor.ident)
        call.events.emit("MixMonitorStart", call.bot.header())

    def hear(self, direction: Literal["read", "write"], payload: bytes) -> None:
        now = time.monotonic()
        for monitor in self.active:
            monitor.hear(direction, payload, now)

    def stop(self) -> None:
        """The recordings end (StopMixMonitor, or the channel hangs up)."""
        for monitor in self.active:
            if monitor.stopped:
                continue
            self.call.record.recordings += monitor.stop()
            self.call.events.emit("MixMonitorStop", self.call.bot.header())
