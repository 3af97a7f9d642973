"""The AMI events of one call's Local channel pair, in the order the captures show.

`;1` is the originated (bot) half, `;2` the customer half. Where two threads race in real
Asterisk the order seen in tests/fixtures/asterisk-captures is used; within one leg the order
is always the captured one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pbxsim.ami_codec import Fields
from pbxsim.channels import CAUSE_TEXT, STATE_BUSY, STATE_RINGING, STATE_UP, Channel

if TYPE_CHECKING:
    from pbxsim.call import Call

REASON = {"answer": 4, "machine": 4, "busy": 5, "no_answer": 3, "congestion": 8}
_CID_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")


class CallEvents:
    """Emits one call's AMI events and keeps its channels' state (variables, application,
    state) in step with what it announced."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.bot, self.cust = call.bot, call.cust

    # -- single events --------------------------------------------------------------------------
    def emit(self, event: str, fields: Fields, privilege: str = "call,all") -> None:
        self.call.sim.emit([("Event", event), ("Privilege", privilege), *fields])

    def set_var(self, chan: Channel, name: str, value: str) -> None:
        chan.variables[name] = value
        if chan is self.bot:
            record = self.call.record
            record.variables[name] = value
            if name == "OUTDIAL_CALL_ID":
                record.call_id = value
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

    def cause(self, event: str, chan: Channel, cause: int) -> None:
        self.emit(event, [*chan.header(), ("Cause", str(cause))])

    def hangup(self, chan: Channel, cause: int) -> None:
        chan.hung_up = True
        self.emit(
            "Hangup", [*chan.header(), ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT[cause])]
        )

    def dial(self, event: str, extra: Fields) -> None:
        self.emit(event, [*self.bot.header("Dest"), *extra])

    def agi_start(self, command_id: str, command: str) -> None:
        self.emit(
            "AGIExecStart",
            [*self.bot.header(), ("CommandId", command_id), ("Command", command)],
            "agi,all",
        )

    def agi_end(self, command_id: str, command: str, code: int, result: str) -> None:
        fields = [("CommandId", command_id), ("Command", command)]
        fields += [("ResultCode", str(code)), ("Result", result)]
        self.emit("AGIExecEnd", [*self.bot.header(), *fields], "agi,all")

    # -- sequences ------------------------------------------------------------------------------
    def setup(self) -> None:
        """The channel pair comes up: Newchannel, variables, caller ID, LocalBridge."""
        bot, cust, call = self.bot, self.cust, self.call
        self.emit("Newchannel", bot.header())
        self.emit("Newchannel", cust.header())
        self.newexten(bot, "AppDial2", "(Outgoing Line)")
        for name, value in call.variables:
            self.set_var(bot, name, value)
        if call.caller is not None:
            bot.caller_name, bot.caller_num = call.caller
            self.emit("NewCallerid", [*bot.header(), _CID_PRES])
            bot.connected_name, bot.connected_num = call.caller
            self.emit("NewConnectedLine", bot.header())
        for name, value in call.variables:
            self.set_var(cust, name, value)
        if call.caller is not None:
            cust.caller_name, cust.caller_num = call.caller
            cust.connected_name, cust.connected_num = call.caller
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

    def originate_response(self, *, success: bool) -> None:
        call, bot = self.call, self.bot
        if success:
            channel, context, exten = bot.name, bot.context, bot.exten
            reason, uniqueid = 4, bot.uniqueid
        else:
            context, exten, _ = call.target
            channel, reason, uniqueid = f"Local/{call.dial}", REASON[call.outcome], "<unknown>"
            call.record.reason = reason
        self.emit(
            "OriginateResponse",
            [
                *([("ActionID", call.action_id)] if call.action_id else []),
                ("Response", "Success" if success else "Failure"),
                ("Channel", channel),
                ("Context", context),
                ("Exten", exten),
                ("Reason", str(reason)),
                ("Uniqueid", uniqueid),
                ("CallerIDNum", bot.caller_num),
                ("CallerIDName", bot.caller_name),
            ],
        )
        call.sim.originate_done(call, success=success)

    def busy(self) -> None:
        self.dial("DialBegin", [("DialString", self.call.dial)])
        self.newexten(self.cust, "Busy", "5")
        self.newstate(self.cust, STATE_BUSY)
        self.dial("DialEnd", [("DialStatus", "BUSY")])
        self.cause("HangupRequest", self.cust, 0)
        self.cause("SoftHangupRequest", self.cust, 16)
        self.hangup(self.bot, 0)
        self.hangup(self.cust, 17)
        self.originate_response(success=False)

    def congestion(self) -> None:
        self.dial("DialBegin", [("DialString", self.call.dial)])
        self.newexten(self.cust, "Congestion", "5")
        self.newstate(self.cust, STATE_BUSY)
        self.originate_response(success=False)
        self.dial("DialEnd", [("DialStatus", "CONGESTION")])
        self.cause("HangupRequest", self.cust, 0)
        self.hangup(self.bot, 0)
        self.cause("SoftHangupRequest", self.cust, 16)
        self.hangup(self.cust, 34)

    def ringing(self) -> None:
        self.dial("DialBegin", [("DialString", self.call.dial)])
        self.newexten(self.cust, "Ringing", "")
        self.newstate(self.bot, STATE_RINGING)
        self.cust.priority = 2
        self.newexten(self.cust, "Wait", "60")
        self.dial("DialState", [("DialStatus", "RINGING")])

    def ring_timeout(self) -> None:
        self.call.outcome = "no_answer"
        self.call.record.outcome = "no_answer"
        self.cause("HangupRequest", self.cust, 19)
        self.originate_response(success=False)
        self.hangup(self.bot, 19)
        self.cause("SoftHangupRequest", self.cust, 16)
        self.hangup(self.cust, 19)

    def answered(self) -> None:
        self.newexten(self.cust, "Answer", "")
        self.newstate(self.cust, STATE_UP)
        self.dial("DialBegin", [("DialString", self.call.dial)])
        self.newstate(self.bot, STATE_UP)
        self.dial("DialEnd", [("DialStatus", "ANSWER")])
        self.call.record.reason = 4

    def bot_hung_up(self, *, customer_there: bool) -> None:
        """`;1` ends its dialplan: its soft hang-up, then `;2` goes too if still there."""
        bot, cust = self.bot, self.cust
        self.cause("SoftHangupRequest", bot, 16)
        if customer_there:
            self.cause("HangupRequest", cust, 0)
            if cust.application == "Playback":
                self.set_var(cust, "PLAYBACKSTATUS", "SUCCESS")
            self.cause("SoftHangupRequest", cust, 16)
            self.hangup(cust, 0)
        self.hangup(bot, 0)

    def customer_hung_up(self, cause: int) -> None:
        self.cause("SoftHangupRequest", self.cust, cause)
        self.cause("HangupRequest", self.bot, cause)
        self.hangup(self.cust, cause)
