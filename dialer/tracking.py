"""What the dialer knows about each call it originated, fed by AMI events and resyncs.

A call is followed by its `OUTDIAL_CALL_ID`: `VarSet` events tie the PBX's channels
(Uniqueid) to it, `OriginateResponse` says whether it was answered (and which channel is
ours), and the `Hangup` of that channel ends it. After a reconnect, whatever happened during
the outage is recovered from `CoreShowChannels` and `Getvar OUTDIAL_CALL_ID`; a call with no
channel left and no reply is settled as unknown, never dialled again blindly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from panoramisk.message import Message

from dialer.ami import AmiConnection
from dialer.dispositions import REASON_ANSWERED

log = logging.getLogger(__name__)

CALL_ID_VAR = "OUTDIAL_CALL_ID"
STATE_UP = "6"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass
class HangupInfo:
    cause: int | None
    cause_txt: str | None
    was_up: bool


@dataclass
class LiveCall:
    call_id: str
    action_id: str
    campaign_id: int
    campaign_name: str
    lead_id: int
    trunk: str
    started_at: datetime
    epoch: int  # the connection's login count when the Originate was sent
    uniqueids: set[str] = field(default_factory=set)
    primary: str | None = None
    channel: str | None = None
    reason: int | None = None  # OriginateResponse Reason, once known
    rejected: str | None = None  # the Originate's immediate error reply
    answered_at: datetime | None = None
    seen_up: bool = False
    amd_status: str | None = None
    amd_cause: str | None = None
    hangups: dict[str, HangupInfo] = field(default_factory=dict)
    lost: bool = False  # no channel and no reply left after a reconnect
    awaiting_channels: bool = False  # reply lost, but the resync found its channels
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def response_known(self) -> bool:
        return self.reason is not None or self.rejected is not None

    @property
    def answered(self) -> bool:
        if self.reason is not None:
            return self.reason == REASON_ANSWERED
        return self.seen_up or any(h.was_up for h in self.hangups.values())

    @property
    def final_hangup(self) -> HangupInfo | None:
        if self.primary is not None:
            return self.hangups.get(self.primary)
        return next(iter(self.hangups.values()), None)

    def _check_ended(self) -> None:
        if not self.ended.is_set() and self._is_over():
            self.ended.set()

    def _is_over(self) -> bool:
        if self.rejected is not None or self.lost:
            return True
        if self.reason is not None:
            # A failed Originate has no channel of ours; an answered one ends with it.
            return self.primary is None or self.primary in self.hangups
        # The reply was lost in an outage: the channels the resync found decide.
        return self.awaiting_channels and all(u in self.hangups for u in self.uniqueids)


class CallTracker:
    """The live calls of one AMI connection, keyed by call id, Uniqueid and ActionID."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self.calls: dict[str, LiveCall] = {}
        self._by_uid: dict[str, str] = {}
        self._by_action: dict[str, str] = {}

    def add(self, call: LiveCall) -> None:
        self.calls[call.call_id] = call
        self._by_action[call.action_id] = call.call_id

    def remove(self, call: LiveCall) -> None:
        self.calls.pop(call.call_id, None)
        self._by_action.pop(call.action_id, None)
        for uid in call.uniqueids:
            self._by_uid.pop(uid, None)

    def _attach(self, call: LiveCall, uid: str) -> None:
        call.uniqueids.add(uid)
        self._by_uid[uid] = call.call_id

    def on_event(self, event: Message) -> None:
        name = event.get("Event")
        if name == "VarSet":
            self._on_varset(event)
        elif name == "Hangup":
            self._on_hangup(event)
        elif name == "OriginateResponse":
            # Only a reply that arrives after a reconnect comes as a plain event.
            call_id = self._by_action.get(event.get("ActionID", ""))
            if call_id is not None:
                self.apply_originate_response(self.calls[call_id], event)

    def _on_varset(self, event: Message) -> None:
        variable, uid = event.get("Variable"), event.get("Uniqueid", "")
        if variable == CALL_ID_VAR:
            call = self.calls.get(event.get("Value", ""))
            if call is not None:
                self._attach(call, uid)
            return
        call = self._call_of(uid)
        if call is None:
            return
        if variable == "AMDSTATUS":
            call.amd_status = event.get("Value") or None
        elif variable == "AMDCAUSE":
            call.amd_cause = event.get("Value") or None

    def _on_hangup(self, event: Message) -> None:
        uid = event.get("Uniqueid", "")
        call = self._call_of(uid)
        if call is None:
            return
        call.hangups[uid] = HangupInfo(
            cause=_int(event.get("Cause")),
            cause_txt=event.get("Cause-txt") or None,
            was_up=event.get("ChannelState") == STATE_UP,
        )
        call._check_ended()

    def _call_of(self, uid: str) -> LiveCall | None:
        call_id = self._by_uid.get(uid)
        return self.calls.get(call_id) if call_id is not None else None

    def apply_originate_response(self, call: LiveCall, message: Message) -> None:
        if call.response_known:
            return
        if message.get("Event") != "OriginateResponse":
            call.rejected = message.get("Message") or "Originate refused"
            call._check_ended()
            return
        call.reason = _int(message.get("Reason")) or 0
        uid = message.get("Uniqueid", "")
        if message.get("Response") == "Success" and uid and uid != "<unknown>":
            call.primary = uid
            call.channel = message.get("Channel") or None
            call.answered_at = self._clock()
            self._attach(call, uid)
        call._check_ended()

    async def resync(self, conn: AmiConnection) -> None:
        """After a reconnect: settle the calls whose end or reply may have been missed."""
        epoch = conn.connects
        stale = [c for c in self.calls.values() if c.epoch < epoch and not c.ended.is_set()]
        if not stale:
            return
        channels = {ev.get("Uniqueid", ""): ev for ev in await conn.core_show_channels()}
        if any(c.primary is None for c in stale):
            # Channels we never saw a VarSet for (created during the outage): ask each.
            for uid, ev in channels.items():
                if uid in self._by_uid:
                    continue
                call = self.calls.get(await conn.getvar(ev.get("Channel", ""), CALL_ID_VAR) or "")
                if call is not None:
                    self._attach(call, uid)
        for call in stale:
            if call.ended.is_set():
                continue
            alive = call.uniqueids & channels.keys()
            if any(channels[u].get("ChannelState") == STATE_UP for u in alive):
                call.seen_up = True
            for uid in call.uniqueids - alive:
                call.hangups.setdefault(uid, HangupInfo(None, None, False))
            if not alive:
                call.lost = True
            else:
                call.awaiting_channels = True
                await self._recover_amd(conn, call, channels)
            call._check_ended()
        log.info("AMI resync: %d calls checked, %d PBX channels", len(stale), len(channels))

    async def _recover_amd(
        self, conn: AmiConnection, call: LiveCall, channels: dict[str, Message]
    ) -> None:
        """An AMD verdict set during the outage is still on the channel: read it back."""
        if call.amd_status is not None or call.primary not in channels:
            return
        name = channels[call.primary].get("Channel", "")
        call.amd_status = await conn.getvar(name, "AMDSTATUS")
        call.amd_cause = await conn.getvar(name, "AMDCAUSE")
