"""AMI server: the manager interface a dialer logs into, with Asterisk's replies and events."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pbxsim.ami_codec import AmiParseError, AmiReader, Fields, encode, get, get_all
from pbxsim.channels import Channel, duration_hms

if TYPE_CHECKING:
    from pbxsim.sim import PbxSim

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/13.0.0\r\n"
MALFORMED_MESSAGE = b"Event: Newstate\r\nthis line has no colon\r\nPrivilege call,all\r\n\r\n"


class AmiSession:
    """One manager connection."""

    def __init__(self, sim: PbxSim, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.logged_in = False
        self.events_sent = 0
        self.started = time.time()

    async def serve(self) -> None:
        self.writer.write(BANNER)
        parser = AmiReader()
        try:
            while not self.writer.is_closing():
                data = await self.reader.read(65536)
                if not data:
                    break
                for message in parser.feed(data):
                    if isinstance(message, AmiParseError):
                        log.error("bad AMI message from a client: %s", message)
                        self.reply([("Response", "Error"), ("Message", f"Malformed: {message}")])
                        continue
                    await self.sim.ami_actions.handle(self, message)
        except ConnectionError:
            pass
        finally:
            self.sim.ami_sessions.discard(self)
            self.writer.close()

    def reply(self, fields: Fields) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(fields))

    def event(self, fields: Fields) -> None:
        """Send an event, applying the AMI fault switches."""
        if not self.logged_in or self.writer.is_closing():
            return
        faults = self.sim.config.faults
        self.events_sent += 1
        if faults.ami_malformed_after_events == self.events_sent:
            self.writer.write(MALFORMED_MESSAGE)
        self.writer.write(encode(fields))
        drop_after = faults.ami_drop_after_events
        if drop_after is not None and self.events_sent >= drop_after:
            log.warning("fault injection: dropping the AMI connection")
            self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


def _response(ok: bool, action_id: str | None, *fields: tuple[str, str]) -> Fields:
    out: Fields = [("Response", "Success" if ok else "Error")]
    if action_id is not None:
        out.append(("ActionID", action_id))
    return out + list(fields)


class AmiActions:
    """Action handlers; each writes its replies and events to the session."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim

    async def handle(self, session: AmiSession, msg: Fields) -> None:
        action = (get(msg, "Action") or "").lower()
        aid = get(msg, "ActionID")
        if not action:
            session.reply(_response(False, aid, ("Message", "Missing action in request")))
            return
        if action == "login":
            self.login(session, msg, aid)
            return
        if not session.logged_in:
            session.reply(_response(False, aid, ("Message", "Permission denied")))
            return
        handler = {
            "logoff": self.logoff,
            "ping": self.ping,
            "originate": self.originate,
            "hangup": self.hangup,
            "redirect": self.redirect,
            "setvar": self.setvar,
            "getvar": self.getvar,
            "coreshowchannels": self.core_show_channels,
            "status": self.status,
        }.get(action)
        if handler is None:
            session.reply(_response(False, aid, ("Message", "Invalid/unknown command")))
            return
        handler(session, msg, aid)

    def login(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        cfg = self.sim.config
        if get(msg, "Username") != cfg.username or get(msg, "Secret") != cfg.secret:
            log.warning("AMI login refused for %r", get(msg, "Username"))
            session.reply(_response(False, aid, ("Message", "Authentication failed")))
            session.close()  # Asterisk drops the connection after a failed login
            return
        session.logged_in = True
        session.reply(_response(True, aid, ("Message", "Authentication accepted")))
        uptime = str(int(time.time() - self.sim.started_at))
        session.event(
            [
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", uptime),
                ("LastReload", uptime),
                ("Status", "Fully Booted"),
            ]
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        local = session.writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        remote = session.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        session.event(
            [
                ("Event", "SuccessfulAuth"),
                ("Privilege", "security,all"),
                ("EventTV", now),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", cfg.username),
                ("SessionID", hex(id(session))),
                ("LocalAddress", f"IPV4/TCP/{local[0]}/{local[1]}"),
                ("RemoteAddress", f"IPV4/TCP/{remote[0]}/{remote[1]}"),
                ("UsingPassword", "0"),
                ("SessionTV", now),
            ]
        )

    def logoff(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        fields = [("Response", "Goodbye"), *([("ActionID", aid)] if aid else [])]
        session.reply([*fields, ("Message", "Thanks for all the fish.")])
        session.close()

    def ping(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        session.reply(_response(True, aid, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")))

    def originate(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        channel = get(msg, "Channel")
        if not channel:
            session.reply(_response(False, aid, ("Message", "Channel not specified")))
            return
        tech, _, dial = channel.partition("/")
        if tech.lower() != "local" or "@" not in dial:
            log.error("Originate to an unsupported channel %r", channel)
            session.reply(_response(False, aid, ("Message", "Originate failed")))
            return
        try:
            timeout = int(get(msg, "Timeout") or "30000") / 1000
            priority = int(get(msg, "Priority") or "1")
        except ValueError:
            session.reply(_response(False, aid, ("Message", "Invalid timeout or priority")))
            return
        variables = []
        for item in get_all(msg, "Variable"):
            for assignment in item.split(","):
                name, sep, value = assignment.partition("=")
                if sep:
                    variables.append((name.strip(), value))
        self.sim.originate(
            action_id=aid,
            dial=dial,
            context=get(msg, "Context") or "default",
            exten=get(msg, "Exten") or "s",
            priority=priority,
            caller=_parse_callerid(get(msg, "CallerID")),
            variables=variables,
            timeout=timeout,
        )
        session.reply(_response(True, aid, ("Message", "Originate successfully queued")))

    def _find(self, session: AmiSession, msg: Fields, aid: str | None) -> Channel | None:
        name = get(msg, "Channel")
        chan = self.sim.find_channel(name) if name else None
        if chan is None:
            session.reply(_response(False, aid, ("Message", "No such channel")))
        return chan

    def hangup(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        name = get(msg, "Channel") or ""
        if name.startswith("/") and name.endswith("/") and len(name) > 2:
            try:
                pattern = re.compile(name[1:-1])
            except re.error:
                session.reply(_response(False, aid, ("Message", "Invalid regex")))
                return
            chans = [c for c in self.sim.live_channels() if pattern.search(c.name)]
            session.reply(_response(True, aid, ("Message", f"{len(chans)} channels hung up.")))
            for chan in chans:
                self.sim.hangup_channel(chan)
            return
        chan = self._find(session, msg, aid)
        if chan is not None:
            session.reply(_response(True, aid, ("Message", "Channel Hungup")))
            self.sim.hangup_channel(chan)

    def redirect(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        chan = self._find(session, msg, aid)
        if chan is None:
            return
        context, exten = get(msg, "Context"), get(msg, "Exten")
        if not context or not exten:
            session.reply(_response(False, aid, ("Message", "Context and Exten are required")))
            return
        priority = get(msg, "Priority") or "1"
        if not priority.isdigit():
            session.reply(_response(False, aid, ("Message", "Invalid priority")))
            return
        session.reply(_response(True, aid, ("Message", "Redirect successful")))
        self.sim.redirect_channel(chan, context, exten, int(priority))

    def setvar(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        variable, value = get(msg, "Variable"), get(msg, "Value") or ""
        if not variable:
            session.reply(_response(False, aid, ("Message", "No variable specified")))
            return
        if get(msg, "Channel"):
            chan = self._find(session, msg, aid)
            if chan is None:
                return
            session.reply(_response(True, aid, ("Message", "Variable Set")))
            self.sim.set_channel_var(chan, variable, value)
        else:
            self.sim.global_vars[variable] = value
            session.reply(_response(True, aid, ("Message", "Variable Set")))

    def getvar(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        variable = get(msg, "Variable")
        if not variable:
            session.reply(_response(False, aid, ("Message", "No variable specified")))
            return
        if get(msg, "Channel"):
            chan = self._find(session, msg, aid)
            if chan is None:
                return
            value = chan.variables.get(variable, "")
        else:
            value = self.sim.global_vars.get(variable, "")
        session.reply(_response(True, aid, ("Variable", variable), ("Value", value)))

    def core_show_channels(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        ident = [("ActionID", aid)] if aid else []
        session.reply(
            _response(True, aid, ("EventList", "start"), ("Message", "Channels will follow"))
        )
        chans = self.sim.live_channels(customer_first=True)
        for chan in chans:
            session.reply(
                [
                    ("Event", "CoreShowChannel"),
                    *ident,
                    *chan.header(),
                    ("Application", chan.application),
                    ("ApplicationData", chan.app_data),
                    ("Duration", duration_hms(chan.seconds_up())),
                    ("BridgeId", ""),
                ]
            )
        session.reply(
            [
                ("Event", "CoreShowChannelsComplete"),
                *ident,
                ("EventList", "Complete"),
                ("ListItems", str(len(chans))),
            ]
        )

    def status(self, session: AmiSession, msg: Fields, aid: str | None) -> None:
        if get(msg, "Channel"):
            chan = self._find(session, msg, aid)
            if chan is None:
                return
            chans = [chan]
        else:
            chans = self.sim.live_channels()
        ident = [("ActionID", aid)] if aid else []
        session.reply(
            _response(True, aid, ("EventList", "start"), ("Message", "Channel status will follow"))
        )
        for chan in chans:
            session.reply(
                [("Event", "Status"), ("Privilege", "Call"), *_status_fields(chan)] + ident
            )
        n = str(len(chans))
        session.reply(
            [
                ("Event", "StatusComplete"),
                *ident,
                ("EventList", "Complete"),
                ("ListItems", n),
                ("Items", n),
            ]
        )


def _status_fields(chan: Channel) -> Fields:
    return [
        *chan.header(),
        ("Type", "Local"),
        ("DNID", ""),
        ("EffectiveConnectedLineNum", chan.connected_num),
        ("EffectiveConnectedLineName", chan.connected_name),
        ("TimeToHangup", "0"),
        ("BridgeID", ""),
        ("Application", chan.application),
        ("Data", chan.app_data),
        ("Nativeformats", "(slin)"),
        ("Readformat", "slin"),
        ("Readtrans", ""),
        ("Writeformat", "slin"),
        ("Writetrans", ""),
        ("Callgroup", "0"),
        ("Pickupgroup", "0"),
        ("Seconds", str(chan.seconds_up())),
    ]


_CALLERID_RE = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<num>[^>]*)>\s*$')


def _parse_callerid(value: str | None) -> tuple[str, str] | None:
    """`"Outdial" <4000>` -> (name, number)."""
    if not value:
        return None
    match = _CALLERID_RE.match(value)
    if match is None:
        return ("<unknown>", value.strip())
    return (match["name"] or "<unknown>", match["num"])
