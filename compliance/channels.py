"""May this channel reach this person? Do-not-contact lists and consent, per channel. Pure.

Each channel has its own lists: "stop calling" puts the number on the call list, an SMS STOP
on the SMS list. Consent is per channel too: to calls (the lead's `consent`, needed when the
campaign requires it) and to each message channel (needed when the config requires it; no
recorded consent counts as a refusal, as China's rules read it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelFacts:
    dnc: Collection[str]  # channels the number is on a do-not-contact list for
    call_consent: bool
    consented: Collection[str]  # message channels the person agreed to
    calls_need_consent: bool  # the campaign's require_consent
    messages_need_consent: Collection[str]  # message channels that need consent


def channel_block(channel: str, facts: ChannelFacts) -> str | None:
    """Why `channel` may not be used, or None when it may."""
    if channel in facts.dnc:
        return f"on the do-not-contact list for {channel}"
    if channel == "call":
        if facts.calls_need_consent and not facts.call_consent:
            return "no consent to calls"
        return None
    if channel in facts.messages_need_consent and channel not in facts.consented:
        return f"no consent to {channel}"
    return None
