"""Erasure and access on request: everything held about one person, found, shown or erased.

A person is their phone number: every lead with it, in every campaign, and everything those
leads' calls left (docs/privacy.md lists each place). Erasure anonymises in one transaction:
rows that statistics count stay without anything of the person, rows that only carry the
person's data go. The one thing kept is what honours an opt-out: a do-not-call entry as the
keyed hash of the number alone (`subject_hash`, migration 090).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from store import calls as calls_table
from store import churn, compliance_events, dnc, engagement, outbox, tokens, turns
from store import leads as leads_table


class SubjectError(ValueError):
    """No such person, or one who cannot be erased right now."""


@dataclass(frozen=True)
class Subject:
    """One person: their number and the ids of their (not yet erased) leads."""

    phone_e164: str
    lead_ids: tuple[int, ...]


@dataclass(frozen=True)
class ErasureReport:
    leads: int
    calls: int
    call_attempts: int
    turns: int
    compliance_events: int
    outbox_events: int
    dnc_entries_kept_as_hash: int
    audit_rows: int
    recordings: int
    # Channels, follow-ups and churn risk (migrations 101, 102): deleted.
    engagement_events: int = 0
    channel_consents: int = 0
    follow_ups: int = 0
    churn_rows: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def find_subject(
    conn: asyncpg.Connection | asyncpg.Pool, *, phone: str | None = None, lead_id: int | None = None
) -> Subject:
    """The person with this E.164 number, or the person of this lead (their number's leads in
    every campaign). SubjectError when nothing is held about them."""
    if (phone is None) == (lead_id is None):
        raise ValueError("give a phone number or a lead id")
    if lead_id is not None:
        row = await conn.fetchrow("SELECT phone_e164, erased_at FROM leads WHERE id = $1", lead_id)
        if row is None:
            raise SubjectError(f"no lead with id {lead_id}")
        if row["erased_at"] is not None:
            raise SubjectError(f"lead {lead_id} was erased on {row['erased_at']:%Y-%m-%d}")
        phone = row["phone_e164"]
    assert phone is not None
    ids = await conn.fetch("SELECT id FROM leads WHERE phone_e164 = $1 ORDER BY id", phone)
    listed = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM dnc WHERE phone_hash = subject_hash($1))", phone
    )
    if not ids and not listed:
        raise SubjectError("nothing is held about this number")
    return Subject(phone, tuple(r["id"] for r in ids))


# The calls of the subject's leads, whether the dialer or the bot session recorded them.
_CALL_IDS = """
SELECT call_id FROM call_attempts WHERE lead_id = ANY($1::bigint[])
UNION SELECT call_id FROM calls WHERE lead_id = ANY($1::bigint[])
"""


async def erase_subject(
    conn: asyncpg.Connection, subject: Subject, who: str, *, token_id: int | None = None
) -> ErasureReport:
    """Erase the person everywhere, audited as done by `who`; all or nothing. Each table's
    owning module writes it; the order is the erasure's (the leads last, then the CRM's event
    and the audit row)."""
    async with conn.transaction():
        leads = list(subject.lead_ids)
        busy = await conn.fetch(
            "SELECT id, status FROM leads WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            leads,
        )
        on_call = [r["id"] for r in busy if r["status"] == "leased"]
        if on_call:
            raise SubjectError(
                f"lead {on_call[0]} is being dialled now; erase it when the call has ended"
            )
        calls = [r["call_id"] for r in await conn.fetch(_CALL_IDS, leads)]
        report = ErasureReport(
            turns=await turns.scrub_turns_of_calls(conn, calls),
            calls=await calls_table.scrub_calls(conn, calls),
            call_attempts=await calls_table.scrub_attempt_channels(conn, calls),
            compliance_events=await compliance_events.scrub_events_of(conn, leads, calls),
            outbox_events=await outbox.delete_events_of(conn, leads, calls),
            dnc_entries_kept_as_hash=await dnc.keep_only_hash(conn, subject.phone_e164),
            audit_rows=await tokens.scrub_audit_of_leads(conn, leads, subject.phone_e164),
            recordings=await calls_table.erase_recordings(conn, calls),
            **await engagement.erase_of_leads(conn, leads),
            churn_rows=await churn.erase_of_leads(conn, leads),
            leads=await leads_table.anonymise_erased(conn, leads),
        )
        await outbox.enqueue_erased(conn, leads)
        await tokens.record_access(
            conn,
            who,
            "personal_data.erase",
            "subject",
            subject.phone_e164,
            report.as_dict(),
            token_id,
        )
    return report


# What the follow-up planner and the churn model hold about a person, by lead id (the
# erasure deletes them through store/engagement.py and store/churn.py).
_DECISION_TABLES = {
    "engagement_events": ("engagement_events",),
    "channel_consents": ("channel_consents",),
    "follow_ups": ("follow_ups",),
    "churn_rows": ("churn_labels", "churn_scores"),
}


async def export_subject(conn: asyncpg.Connection, subject: Subject) -> dict[str, Any]:
    """Everything held about the person, as plain data (GDPR art. 15, PIPL art. 45)."""
    leads = list(subject.lead_ids)
    calls = [r["call_id"] for r in await conn.fetch(_CALL_IDS, leads)]
    sections = {
        "leads": ("SELECT l.*, c.name AS campaign FROM leads l JOIN campaigns c "
                  "ON c.id = l.campaign_id WHERE l.id = ANY($1::bigint[]) ORDER BY l.id", leads),
        "call_attempts": ("SELECT * FROM call_attempts WHERE call_id = ANY($1::text[]) "
                          "ORDER BY started_at", calls),
        "calls": ("SELECT * FROM calls WHERE call_id = ANY($1::text[]) ORDER BY started_at",
                  calls),
        "turns": ("SELECT * FROM turns WHERE call_id = ANY($1::text[]) ORDER BY call_id, seq",
                  calls),
        "compliance_events": ("SELECT * FROM compliance_events WHERE call_id = ANY($1::text[]) "
                              "ORDER BY id", calls),
        "outbox": ("SELECT id, event_type, payload, created_at, delivered_at FROM outbox "
                   "WHERE call_id = ANY($1::text[]) ORDER BY id", calls),
        **{table: (f"SELECT * FROM {table} WHERE lead_id = ANY($1::bigint[]) ORDER BY lead_id",
                   leads)
           for tables in _DECISION_TABLES.values() for table in tables},
    }  # fmt: skip
    data: dict[str, Any] = {"phone": subject.phone_e164}
    for name, (sql, arg) in sections.items():
        data[name] = [_plain(dict(r)) for r in await conn.fetch(sql, arg)]
    data["dnc"] = [
        _plain(dict(r))
        for r in await conn.fetch(
            """SELECT d.id, c.name AS campaign, d.source, d.reason, d.created_at
               FROM dnc d LEFT JOIN campaigns c ON c.id = d.campaign_id
               WHERE d.phone_hash = subject_hash($1) ORDER BY d.id""",
            subject.phone_e164,
        )
    ]
    return data


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, dict, list, type(None))) else str(v)
            for k, v in row.items()}  # fmt: skip
