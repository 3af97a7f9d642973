"""The AGI commands a call's bot leg answers (FastAGI and EAGI share them), including
`EXEC AudioSocket`, which opens the media stream, and the hand-overs `EXEC Dial|Queue|Goto`."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from pbxsim import audiosocket
from pbxsim.agi import (
    DEAD_ALLOWED,
    DEAD_REPLY,
    DEAD_TEXT,
    INVALID_REPLY,
    INVALID_TEXT,
    USAGE_REPLY,
    AgiSession,
    Reply,
    ok,
)
from pbxsim.audiosocket import EndReason
from pbxsim.channels import STATE_UP
from pbxsim.dialplan import goto_target, substitute
from pbxsim.records import Transfer

if TYPE_CHECKING:
    from collections.abc import Callable

    from pbxsim.call import Call
    from pbxsim.eagi import EagiSession

log = logging.getLogger(__name__)

KNOWN_EXEC_APPS = {"audiosocket", "dial", "queue", "goto", "wait", "playback", "set", "verbose"}
KNOWN_EXEC_APPS |= {"noop", "answer", "hangup"}
_COMMANDS = {"ANSWER", "HANGUP", "GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE"}
_COMMANDS |= {"VERBOSE", "NOOP", "EXEC"}


class AgiCommands:
    """Replies to one call's AGI commands as Asterisk does (codes and texts as captured)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self._handlers: dict[str, Callable[[list[str]], Reply]] = {
            "ANSWER": self._answer,
            "HANGUP": self.hangup,
            "GET VARIABLE": self._get_variable,
            "GET FULL VARIABLE": self._get_full_variable,
            "SET VARIABLE": self._set_variable,
            "VERBOSE": self._verbose,
            "NOOP": self._noop,
        }

    async def run(self, args: list[str], session: AgiSession | EagiSession) -> Reply:
        name, rest = _command_name(args)
        if name is None:
            return Reply(INVALID_REPLY, 510, INVALID_TEXT)
        if self.call.bot_dead and name not in DEAD_ALLOWED:
            return Reply(DEAD_REPLY, 511, DEAD_TEXT)
        handler = self._handlers.get(name)
        if handler is not None:
            return handler(rest)
        return await self._exec(rest)

    def _answer(self, _: list[str]) -> Reply:
        return ok("200 result=0")

    def hangup(self, _: list[str]) -> Reply:
        call = self.call
        call.events.cause("SoftHangupRequest", call.bot, 32)
        call.bot_dead = True
        call.interrupted.set()
        call.record.hangup_side = call.record.hangup_side or "bot"
        if call.agi is not None:
            call.agi.notify_hangup()
        return ok("200 result=1")

    def _get_variable(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("GET VARIABLE <variablename>")
        value = self._lookup(rest[0])
        return ok("200 result=0") if value is None else ok(f"200 result=1 ({value})")

    def _get_full_variable(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("GET FULL VARIABLE <expression> [<channelname>]")
        text = substitute(rest[0], self._expression_values())
        return ok(f"200 result=1 ({text})")

    def _set_variable(self, rest: list[str]) -> Reply:
        if len(rest) < 2:
            return _usage("SET VARIABLE <variablename> <value>")
        self.call.events.set_var(self.call.bot, rest[0], rest[1])
        return ok("200 result=1")

    def _verbose(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("VERBOSE <message> <level>")
        return ok("200 result=1")

    def _noop(self, _: list[str]) -> Reply:
        # Captured: after the hang-up notice, NOOP gets no reply line at all.
        return Reply(None if self.call.bot_dead else "200 result=0", 200, "Success")

    async def _exec(self, rest: list[str]) -> Reply:
        if not rest:
            return _usage("EXEC <application> <options>")
        app, options = rest[0], " ".join(rest[1:])
        self.call.bot.application, self.call.bot.app_data = app, options
        result = await self._exec_app(app.lower(), options)
        return ok(f"200 result={result}", "Success" if result >= 0 else "Unknown Result")

    async def _exec_app(self, app: str, options: str) -> int:
        call = self.call
        if app not in KNOWN_EXEC_APPS:
            log.warning("AGI EXEC of an application pbxsim does not know: %s", app)
            return -2
        if call.bot_dead and app != "goto":
            return -1
        if app == "audiosocket":
            return await self._audiosocket(options)
        if app in ("dial", "queue"):
            return await self._dial_transfer(app, options)
        if app == "goto":
            call.record.transfer = Transfer("Goto", options)
            call.pending_goto = goto_target(options, call.bot)
            return 0
        if app in ("wait", "set"):
            await call.wait_or_set(app, options)
        elif app == "hangup":
            self.hangup([])
            return -1
        return 0

    async def _audiosocket(self, options: str) -> int:
        call, record = self.call, self.call.record
        try:
            call_uuid, host, port = _audiosocket_args(options)
        except ValueError as exc:
            log.error("EXEC AudioSocket %r: %s", options, exc)
            record.errors.append(f"audiosocket args: {exc}")
            return -1
        try:
            client = await audiosocket.connect(
                host,
                port,
                call_uuid,
                on_bot_frame=call.on_bot_frame,
                record_payloads=call.sim.config.record_audio,
                faults=call.sim.config.faults.audiosocket(),
            )
        except OSError as exc:
            log.error("AudioSocket server %s:%d unreachable: %s", host, port, exc)
            record.errors.append(f"audiosocket connect: {exc}")
            record.audiosocket_results.append(-1)
            return -1
        call.media = client
        record.media_connected_at.append(time.monotonic())
        call.customer_leg.mouth.open_line()
        reason = await client.ended
        call.media = None
        if client.error:
            record.errors.append(f"audiosocket: {client.error}")
        result = 0 if reason == EndReason.SERVER_CLOSED else -1
        record.audiosocket_results.append(result)
        return result

    async def _dial_transfer(self, app: str, options: str) -> int:
        """The customer is bridged to an agent, talks for a while, then hangs up."""
        call = self.call
        call.record.transfer = Transfer(app.capitalize(), options)
        await call.wait_or_hangup(call.sim.config.transfer_talk_seconds)
        call.customer_hangs_up()
        return -1

    def _lookup(self, name: str) -> str | None:
        if name in self.call.bot.variables:
            return self.call.bot.variables[name]
        return self.call.sim.global_vars.get(name)

    def _expression_values(self) -> dict[str, str]:
        bot = self.call.bot
        values = {**self.call.sim.global_vars, **bot.variables}
        values.update(
            {
                "CHANNEL(state)": "Up" if bot.state == STATE_UP else "Down",
                "CHANNEL(name)": bot.name,
                "CHANNEL": bot.name,
                "UNIQUEID": bot.uniqueid,
                "CALLERID(num)": _known(bot.caller_num),
                "CALLERID(name)": _known(bot.caller_name),
                "CONTEXT": bot.context,
                "EXTEN": bot.exten,
            }
        )
        return values


def _command_name(args: list[str]) -> tuple[str | None, list[str]]:
    upper = [a.upper() for a in args]
    for size in (3, 2, 1):
        name = " ".join(upper[:size])
        if name in _COMMANDS:
            return name, args[size:]
    return None, args


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


def _known(value: str) -> str:
    return "" if value == "<unknown>" else value
