"""Engagement on every channel, consent and do-not-contact per channel, and the follow-ups
chosen: the facts the follow-up planner (crm/followup.py) decides from.

A person is their phone number, so a lead's channel history is that of every lead with its
number, in every campaign. A contact is a call attempt that reached a line, or a message (the
CRM's events about one message share its `contact_id`); a response is a call a person
answered, a reply, a click or an open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from store.db import execute_count
from store.leads import set_call_consent

CHANNELS = ("call", "sms", "push")
MESSAGE_CHANNELS = ("sms", "push")
# The event kinds each channel has; the ones that are a response to the contact.
KINDS = {
    "call": ("answered", "missed"),
    "sms": ("sent", "delivered", "failed", "replied", "clicked"),
    "push": ("sent", "delivered", "failed", "opened", "clicked"),
}
RESPONSES = frozenset({"answered", "replied", "clicked", "opened"})
# Call attempts that reached a line, and those a person answered (dialer dispositions).
_CALL_CONTACTS = (
    "('answered', 'completed', 'transferred', 'abandoned', 'busy', 'no-answer', 'machine')"
)
_CALL_RESPONSES = "('answered', 'completed', 'transferred', 'abandoned')"


@dataclass(frozen=True)
class EngagementEvent:
    lead_id: int
    event_id: str  # the CRM's id of the event: the same id twice is one event
    channel: str
    kind: str
    occurred_at: datetime
    contact_id: str | None = None  # the message (or call) the event is about


@dataclass(frozen=True)
class Recorded:
    recorded: int
    duplicates: int


async def usable_leads(
    conn: asyncpg.Connection | asyncpg.Pool, lead_ids: Sequence[int]
) -> set[int]:
    """The ids among `lead_ids` of leads that exist and were not erased."""
    rows = await conn.fetch(
        "SELECT id FROM leads WHERE id = ANY($1::bigint[]) AND erased_at IS NULL", list(lead_ids)
    )
    return {r["id"] for r in rows}


async def record_events(conn: asyncpg.Connection, events: Sequence[EngagementEvent]) -> Recorded:
    """Store the events; one already stored (same lead and event id) counts as a duplicate."""
    if not events:
        return Recorded(0, 0)
    rows = await conn.fetch(
        """INSERT INTO engagement_events (lead_id, event_id, channel, kind, contact_id,
                                          responded, occurred_at)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::boolean[], $7::timestamptz[])
           ON CONFLICT (lead_id, event_id) DO NOTHING
           RETURNING id""",
        [e.lead_id for e in events],
        [e.event_id for e in events],
        [e.channel for e in events],
        [e.kind for e in events],
        [e.contact_id for e in events],
        [e.kind in RESPONSES for e in events],
        [e.occurred_at for e in events],
    )
    return Recorded(len(rows), len(events) - len(rows))


async def set_consent(
    conn: asyncpg.Connection, lead_id: int, channel: str, granted: bool, source: str
) -> None:
    """Consent to a channel; a call's consent is the lead's own `consent`."""
    if channel == "call":
        await set_call_consent(conn, lead_id, granted)
        return
    await conn.execute(
        """INSERT INTO channel_consents (lead_id, channel, granted, source)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (lead_id, channel) DO UPDATE
           SET granted = EXCLUDED.granted, source = EXCLUDED.source, recorded_at = now()""",
        lead_id,
        channel,
        granted,
        source,
    )


async def grant_consents(
    conn: asyncpg.Connection, lead_ids: Sequence[int], channels: Sequence[str], source: str
) -> None:
    """Consent to each of `channels` (message channels, not "call") for each lead."""
    await conn.execute(
        """INSERT INTO channel_consents (lead_id, channel, granted, source)
           SELECT l, c, true, $3
           FROM unnest($1::bigint[]) AS l, unnest($2::text[]) AS c""",
        list(lead_ids),
        list(channels),
        source,
    )


@dataclass
class Tally:
    contacts: int = 0
    responses: int = 0

    def add(self, contacts: int, responses: int) -> None:
        self.contacts += contacts
        self.responses += responses


def _hours() -> list[Tally]:
    return [Tally() for _ in range(24)]


@dataclass
class ChannelHistory:
    """Contacts and responses per channel, and per channel and local hour of the contact."""

    totals: dict[str, Tally] = field(default_factory=lambda: {c: Tally() for c in CHANNELS})
    hourly: dict[str, list[Tally]] = field(default_factory=lambda: {c: _hours() for c in CHANNELS})

    def add(self, channel: str, hour: int, contacts: int, responses: int) -> None:
        self.totals[channel].add(contacts, responses)
        self.hourly[channel][hour].add(contacts, responses)


def _contacts_sql(members: str, since: str) -> str:
    """Contacts of `members` (rows: key, tz, member lead id) before $2 (and after `since`)."""
    return f"""
    contacts AS (
        SELECT mb.key, mb.tz, 'call'::text AS channel, a.started_at AS at,
               a.disposition IN {_CALL_RESPONSES} AS responded
        FROM {members} mb JOIN call_attempts a ON a.lead_id = mb.member
        WHERE a.started_at < $2 AND {since.format(col="a.started_at")}
          AND a.disposition IN {_CALL_CONTACTS}
        UNION ALL
        SELECT mb.key, mb.tz, e.channel, min(e.occurred_at), bool_or(e.responded)
        FROM {members} mb JOIN engagement_events e ON e.lead_id = mb.member
        WHERE e.occurred_at < $2 AND {since.format(col="e.occurred_at")}
        GROUP BY mb.key, mb.tz, e.channel, e.lead_id, coalesce(e.contact_id, e.event_id))
    SELECT key, channel, extract(hour FROM at AT TIME ZONE tz)::int AS hour,
           count(*) AS contacts, count(*) FILTER (WHERE responded) AS responses
    FROM contacts GROUP BY 1, 2, 3"""


async def lead_histories(
    conn: asyncpg.Connection | asyncpg.Pool, lead_ids: Sequence[int], as_of: datetime
) -> dict[int, ChannelHistory]:
    """Each lead's person's contacts before `as_of`, by channel and the lead's local hour."""
    rows = await conn.fetch(
        """WITH target AS (
               SELECT l.id AS key, l.phone_e164, coalesce(z.name, 'UTC') AS tz
               FROM leads l LEFT JOIN pg_timezone_names z ON z.name = l.timezone
               WHERE l.id = ANY($1::bigint[]) AND l.phone_e164 IS NOT NULL),
           members AS (
               SELECT t.key, t.tz, m.id AS member
               FROM target t JOIN leads m ON m.phone_e164 = t.phone_e164),"""
        + _contacts_sql("members", "true"),
        list(lead_ids),
        as_of,
    )
    histories = {lead_id: ChannelHistory() for lead_id in lead_ids}
    for r in rows:
        histories[r["key"]].add(r["channel"], r["hour"], r["contacts"], r["responses"])
    return histories


async def segment_histories(
    conn: asyncpg.Connection | asyncpg.Pool, segment_field: str, since: datetime, as_of: datetime
) -> dict[str, ChannelHistory]:
    """Contacts in [since, as_of) of every lead, pooled by the value of its `segment_field`
    (leads without one form the segment ''), by channel and local hour."""
    rows = await conn.fetch(
        """WITH members AS (
               SELECT coalesce(l.fields ->> $1, '') AS key, coalesce(z.name, 'UTC') AS tz,
                      l.id AS member
               FROM leads l LEFT JOIN pg_timezone_names z ON z.name = l.timezone),"""
        + _contacts_sql("members", "{col} >= $3"),
        segment_field,
        as_of,
        since,
    )
    histories: dict[str, ChannelHistory] = {}
    for r in rows:
        histories.setdefault(r["key"], ChannelHistory()).add(
            r["channel"], r["hour"], r["contacts"], r["responses"]
        )
    return histories


@dataclass(frozen=True)
class LeadChannels:
    """What decides which channels may reach a lead, and what its messages are made of."""

    lead_id: int
    campaign_id: int
    campaign_settings: dict[str, Any]
    script_name: str
    timezone: str
    consent: bool  # to calls
    fields: dict[str, Any]
    erased: bool
    dnc: frozenset[str]  # channels on a do-not-contact list (global or the campaign's)
    consented: frozenset[str]  # message channels the person agreed to
    segment: str


async def lead_channels(
    conn: asyncpg.Connection | asyncpg.Pool, lead_ids: Sequence[int], segment_field: str
) -> dict[int, LeadChannels]:
    rows = await conn.fetch(
        """SELECT l.id, l.campaign_id, cp.settings, cp.script_name, l.timezone, l.consent,
                  l.fields, l.erased_at IS NOT NULL AS erased,
                  coalesce(l.fields ->> $2, '') AS segment,
                  ARRAY(SELECT DISTINCT d.channel FROM dnc d
                        WHERE d.phone_hash = subject_hash(l.phone_e164)
                          AND (d.campaign_id IS NULL OR d.campaign_id = l.campaign_id))
                      AS dnc,
                  ARRAY(SELECT c.channel FROM channel_consents c
                        WHERE c.lead_id = l.id AND c.granted) AS consented
           FROM leads l JOIN campaigns cp ON cp.id = l.campaign_id
           WHERE l.id = ANY($1::bigint[])""",
        list(lead_ids),
        segment_field,
    )
    return {
        r["id"]: LeadChannels(
            lead_id=r["id"],
            campaign_id=r["campaign_id"],
            campaign_settings=dict(r["settings"] or {}),
            script_name=r["script_name"],
            timezone=r["timezone"],
            consent=r["consent"],
            fields=dict(r["fields"] or {}),
            erased=r["erased"],
            dnc=frozenset(r["dnc"]),
            consented=frozenset(r["consented"]),
            segment=r["segment"],
        )
        for r in rows
    }


async def captured_of(
    conn: asyncpg.Connection | asyncpg.Pool, call_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    """What each call captured (a promised date, an amount), for its follow-up message."""
    rows = await conn.fetch(
        "SELECT call_id, captured FROM calls WHERE call_id = ANY($1::text[])", list(call_ids)
    )
    return {r["call_id"]: dict(r["captured"] or {}) for r in rows}


@dataclass(frozen=True)
class FollowUpRow:
    lead_id: int
    campaign_id: int | None
    call_id: str | None
    channel: str | None
    at: datetime | None
    template: str | None
    reason: str


async def record_follow_ups(conn: asyncpg.Connection, rows: Sequence[FollowUpRow]) -> None:
    """The follow-ups chosen after calls (a call's second decision is not stored)."""
    await conn.executemany(
        """INSERT INTO follow_ups (lead_id, campaign_id, call_id, channel, at, template, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (call_id) DO NOTHING""",
        [
            (r.lead_id, r.campaign_id, r.call_id, r.channel, r.at, r.template, r.reason)
            for r in rows
        ],
    )


async def erase_of_leads(conn: asyncpg.Connection, lead_ids: list[int]) -> dict[str, int]:
    """Erasure: the leads' engagement events, channel consents and follow-ups go, in this
    order; rows deleted per table."""
    return {
        "engagement_events": await execute_count(
            conn, "DELETE FROM engagement_events WHERE lead_id = ANY($1::bigint[])", lead_ids
        ),
        "channel_consents": await execute_count(
            conn, "DELETE FROM channel_consents WHERE lead_id = ANY($1::bigint[])", lead_ids
        ),
        "follow_ups": await execute_count(
            conn, "DELETE FROM follow_ups WHERE lead_id = ANY($1::bigint[])", lead_ids
        ),
    }
