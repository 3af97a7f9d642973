"""Do-not-call lists: `dnc`, the global list (no campaign) and each campaign's own.

Entries match by the keyed hash of the number (`subject_hash`, migration 090), so an entry
kept after an erasure still matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from store.batchwriter import RowKind, copy_into
from store.copyinsert import CopyTarget, copy_insert_ignore
from store.db import execute_count


@dataclass(frozen=True)
class DncListing:
    on_global: bool
    on_campaign: bool


async def add_entry(
    conn: asyncpg.Connection,
    phone_e164: str,
    campaign_id: int | None,
    reason: str | None,
    channel: str,
) -> bool:
    """Add a number given through the API; False when it was listed already."""
    added = await conn.fetchval(
        """INSERT INTO dnc (phone_e164, campaign_id, source, reason, channel)
           VALUES ($1, $2, 'api', $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        phone_e164,
        campaign_id,
        reason,
        channel,
    )
    return bool(added)


async def remove_entry(
    conn: asyncpg.Connection, phone_e164: str, campaign_id: int | None, channel: str
) -> bool:
    """False when the number was not on that list."""
    removed = await conn.fetchval(
        """DELETE FROM dnc WHERE phone_hash = subject_hash($1)
             AND campaign_id IS NOT DISTINCT FROM $2 AND channel = $3
           RETURNING true""",
        phone_e164,
        campaign_id,
        channel,
    )
    return bool(removed)


async def listing(
    conn: asyncpg.Connection, phone_e164: str, campaign_id: int | None, channel: str
) -> DncListing:
    """Whether the number is on the global list, and on the campaign's."""
    row = await conn.fetchrow(
        """SELECT coalesce(bool_or(campaign_id IS NULL), false) AS on_global,
                  coalesce(bool_or(campaign_id = $2), false) AS on_campaign
           FROM dnc WHERE phone_hash = subject_hash($1) AND channel = $3""",
        phone_e164,
        campaign_id,
        channel,
    )
    return DncListing(row["on_global"], row["on_campaign"])


# A customer's refusal on a call, as a row of `dnc`: written at once, or kept by a batch
# writer while the database is away (store/kept.py).
OPT_OUT_TARGET = CopyTarget(table="dnc", columns=("phone_e164", "campaign_id", "source", "reason"))


def opt_out_row(phone_e164: str, call_id: str) -> tuple[str, None, str, str]:
    """The company-wide entry (no campaign: it covers every campaign)."""
    return (phone_e164, None, "opt_out", f"customer asked on call {call_id}")


async def add_opt_out(conn: asyncpg.Connection, phone_e164: str, call_id: str) -> None:
    await copy_insert_ignore(conn, OPT_OUT_TARGET, [opt_out_row(phone_e164, call_id)])


OPT_OUTS = RowKind.of_columns("opt_outs", copy_into(OPT_OUT_TARGET), OPT_OUT_TARGET.columns)


async def add_opt_out_of_lead(conn: asyncpg.Connection, lead_id: int, call_id: str) -> None:
    """`add_opt_out` for the number of a lead (the history simulator's calls)."""
    await conn.execute(
        """INSERT INTO dnc (phone_e164, campaign_id, source, reason)
           SELECT phone_e164, NULL, 'opt_out', 'customer asked on call ' || $2
           FROM leads WHERE id = $1
           ON CONFLICT DO NOTHING""",
        lead_id,
        call_id,
    )


async def keep_only_hash(conn: asyncpg.Connection, phone_e164: str) -> int:
    """Erasure: the person's entries keep honouring the opt-out by the number's hash alone."""
    return await execute_count(
        conn,
        """UPDATE dnc SET phone_e164 = NULL, reason = NULL
                   WHERE phone_hash = subject_hash($1)""",
        phone_e164,
    )
