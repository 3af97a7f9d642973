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

from store.recordings import ERASE_RECORDINGS
from store.tokens import record_access

ERASED_EVENT = "lead.erased"


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

# Turn columns holding what the person said or how they sounded; the rest (speaker, node,
# intent, timings) keeps counting in the script statistics.
TURN_CONTENT_SCRUB = """text = '', dtmf = NULL, entities = '{}'::jsonb, emotion = '{}'::jsonb,
    agitation = NULL"""


async def erase_subject(
    conn: asyncpg.Connection, subject: Subject, who: str, *, token_id: int | None = None
) -> ErasureReport:
    """Erase the person everywhere, audited as done by `who`; all or nothing."""
    async with conn.transaction():
        leads = subject.lead_ids
        busy = await conn.fetch(
            "SELECT id, status FROM leads WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            list(leads),
        )
        on_call = [r["id"] for r in busy if r["status"] == "leased"]
        if on_call:
            raise SubjectError(
                f"lead {on_call[0]} is being dialled now; erase it when the call has ended"
            )
        calls = [r["call_id"] for r in await conn.fetch(_CALL_IDS, list(leads))]
        report = ErasureReport(
            turns=await _count(
                conn,
                f"UPDATE turns SET {TURN_CONTENT_SCRUB} WHERE call_id = ANY($1::text[])",
                calls,
            ),
            calls=await _count(
                conn,
                """UPDATE calls SET summary = NULL, captured = '{}'::jsonb
                   WHERE call_id = ANY($1::text[])""",
                calls,
            ),
            # A channel name can hold the dialled number (Local/5550100@customers).
            call_attempts=await _count(
                conn,
                "UPDATE call_attempts SET channel = NULL WHERE call_id = ANY($1::text[])",
                calls,
            ),
            compliance_events=await _count(
                conn,
                """UPDATE compliance_events SET detail = '{}'::jsonb
                   WHERE lead_id = ANY($1::bigint[]) OR call_id = ANY($2::text[])""",
                list(leads),
                calls,
            ),
            outbox_events=await _count(
                conn,
                """DELETE FROM outbox
                   WHERE lead_id = ANY($1::bigint[]) OR call_id = ANY($2::text[])""",
                list(leads),
                calls,
            ),
            dnc_entries_kept_as_hash=await _count(
                conn,
                """UPDATE dnc SET phone_e164 = NULL, reason = NULL
                   WHERE phone_hash = subject_hash($1)""",
                subject.phone_e164,
            ),
            audit_rows=await _scrub_audit(conn, subject),
            recordings=await _count(conn, ERASE_RECORDINGS, calls),
            **await _erase_decisions(conn, leads),
            leads=await _count(
                conn,
                """UPDATE leads SET phone_e164 = NULL, external_id = NULL, fields = '{}'::jsonb,
                          timezone = 'UTC', consent = false, status = 'blocked',
                          block_reason = 'erased', erased_at = now(), updated_at = now()
                   WHERE id = ANY($1::bigint[])""",
                list(leads),
            ),
        )
        await _tell_the_crm(conn, leads)
        await record_access(
            conn,
            who,
            "personal_data.erase",
            "subject",
            subject.phone_e164,
            report.as_dict(),
            token_id,
        )
    return report


# What the follow-up planner and the churn model hold about a person, deleted by lead id.
_DECISION_TABLES = {
    "engagement_events": ("engagement_events",),
    "channel_consents": ("channel_consents",),
    "follow_ups": ("follow_ups",),
    "churn_rows": ("churn_labels", "churn_scores"),
}


async def _erase_decisions(conn: asyncpg.Connection, lead_ids: tuple[int, ...]) -> dict[str, int]:
    counts = {}
    for key, tables in _DECISION_TABLES.items():
        counts[key] = 0
        for table in tables:
            counts[key] += await _count(
                conn, f"DELETE FROM {table} WHERE lead_id = ANY($1::bigint[])", list(lead_ids)
            )
    return counts


async def _count(conn: asyncpg.Connection, sql: str, *args: Any) -> int:
    status = await conn.execute(sql, *args)
    return int(status.rsplit(" ", 1)[-1])


async def _scrub_audit(conn: asyncpg.Connection, subject: Subject) -> int:
    """Audit rows about the person's leads keep who did what and when, but name the lead by
    its id (the CRM's id of the lead goes) and the person by the hash alone."""
    return await _count(
        conn,
        """UPDATE api_audit a
           SET target = 'campaign/' || mine.campaign || '/lead/erased-' || mine.id,
               subject = subject_hash($2)
           FROM (SELECT l.id, c.name AS campaign,
                        'campaign/' || c.name || '/lead/' || l.external_id AS target
                 FROM leads l JOIN campaigns c ON c.id = l.campaign_id
                 WHERE l.id = ANY($1::bigint[]) AND l.external_id IS NOT NULL) AS mine
           WHERE a.target = mine.target""",
        list(subject.lead_ids),
        subject.phone_e164,
    )


async def _tell_the_crm(conn: asyncpg.Connection, lead_ids: tuple[int, ...]) -> None:
    """A `lead.erased` event per lead (GDPR art. 19: recipients hear of the erasure). It names
    the lead by outdial's id, which the CRM got when it wrote the lead: nothing of the person."""
    await conn.execute(
        """INSERT INTO outbox (idempotency_key, lead_id, event_type, payload)
           SELECT $2 || ':' || l.id, l.id, $2,
                  jsonb_build_object('event', $2, 'idempotency_key', $2 || ':' || l.id,
                                     'lead_id', l.id, 'campaign', c.name,
                                     'occurred_at', now())
           FROM leads l JOIN campaigns c ON c.id = l.campaign_id
           WHERE l.id = ANY($1::bigint[])
           ON CONFLICT (idempotency_key) DO NOTHING""",
        list(lead_ids),
        ERASED_EVENT,
    )


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
