"""One call over AMI: the Originate action, sent once, then its end awaited (or forced)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

from dialer.ami import AmiDisconnected
from dialer.campaigns import Campaign
from dialer.leasing import Lead
from dialer.settings import TrunkSettings
from dialer.tracking import LiveCall
from dialer.trunks import PbxLink

log = logging.getLogger(__name__)

_HANGUP_GRACE_S = 5.0


def originate_action(
    campaign: Campaign, trunk: TrunkSettings, call: LiveCall, lead: Lead
) -> dict[str, Any]:
    action: dict[str, Any] = {
        "Action": "Originate",
        "ActionID": call.action_id,
        "Channel": trunk.dial_string.format(number=lead.phone_e164),
        "Context": trunk.context,
        "Exten": trunk.exten,
        "Priority": str(trunk.priority),
        "Async": "true",
        "Timeout": str(int(trunk.ring_timeout_s * 1000)),
        "Variable": [
            f"OUTDIAL_CALL_ID={call.call_id}",
            f"OUTDIAL_CAMPAIGN={campaign.name}",
            f"OUTDIAL_LEAD={lead.id}",
        ],
    }
    if campaign.settings.caller_id:
        action["CallerID"] = campaign.settings.caller_id
    if campaign.settings.record:
        action["Variable"].append("OUTDIAL_RECORD=1")
    return action


async def originate(link: PbxLink, call: LiveCall, action: dict[str, Any]) -> None:
    """Send the Originate once and apply its reply; it is never sent again."""
    try:
        sent = link.conn.send(action)
    except AmiDisconnected:
        call.lost = True  # never written to the PBX: nothing was dialled
        call.ended.set()
        return
    try:
        reply = await sent
    except AmiDisconnected:
        # The reply died with the link: the resync after the reconnect settles the call.
        log.warning("call %s: link dropped around its Originate", call.call_id)
        return
    messages = reply if isinstance(reply, list) else [reply]
    final = next((m for m in messages if m.get("Event") == "OriginateResponse"), messages[-1])
    link.tracker.apply_originate_response(call, final)


async def await_end(link: PbxLink, call: LiveCall, max_call_s: float) -> None:
    try:
        await asyncio.wait_for(call.ended.wait(), max_call_s)
    except TimeoutError:
        # No end seen in time: ask the PBX, hang up whatever is left, settle.
        log.warning("call %s: no end after %.0fs, checking the PBX", call.call_id, max_call_s)
        await hang_up(link, [call])


async def hang_up(link: PbxLink, calls: Collection[LiveCall]) -> None:
    """Hang up the calls' channels, then give them one grace together to report their ends;
    a call still not ended is lost (nothing more will tell). One grace for all: with the PBX
    gone, a grace per call held a SIGTERM'd daemon for 5 s a live call (bench/chaos.py)."""
    wanted = {uid for call in calls for uid in call.uniqueids}
    with contextlib.suppress(AmiDisconnected, TimeoutError):
        for ev in await link.conn.core_show_channels():
            if ev.get("Uniqueid") in wanted:
                await link.conn.hangup(ev.get("Channel", ""))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_HANGUP_GRACE_S):
            for call in calls:
                await call.ended.wait()
    for call in calls:
        if not call.ended.is_set():
            call.lost = True
            call.ended.set()
