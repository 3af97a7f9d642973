"""API tokens and the API's audit rows: `api_tokens` and `api_audit` (besides the audit of
reads and erasures, store/erasure.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from store.db import execute_count


@dataclass(frozen=True)
class TokenRow:
    """An active token as the API checks it."""

    id: int
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


async def insert_token(
    conn: asyncpg.Connection, name: str, secret_hash: bytes, scopes: Sequence[str]
) -> int | None:
    """The new token's id; None when an active token already has this name."""
    return await conn.fetchval(
        """INSERT INTO api_tokens (name, token_hash, scopes) VALUES ($1, $2, $3)
           ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING id""",
        name,
        secret_hash,
        list(scopes),
    )


async def revoke_token_named(conn: asyncpg.Connection, name: str) -> int | None:
    """The revoked token's id; None when no active token has this name."""
    return await conn.fetchval(
        """UPDATE api_tokens SET revoked_at = now()
           WHERE name = $1 AND revoked_at IS NULL RETURNING id""",
        name,
    )


async def list_tokens(
    conn: asyncpg.Connection, *, include_revoked: bool = False
) -> list[TokenInfo]:
    rows = await conn.fetch(
        """SELECT id, name, scopes, created_at, revoked_at FROM api_tokens
           WHERE $1 OR revoked_at IS NULL ORDER BY name, id""",
        include_revoked,
    )
    return [
        TokenInfo(r["id"], r["name"], tuple(r["scopes"]), r["created_at"], r["revoked_at"])
        for r in rows
    ]


async def active_token(
    conn: asyncpg.Connection | asyncpg.Pool, secret_hash: bytes
) -> TokenRow | None:
    row = await conn.fetchrow(
        "SELECT id, name, scopes FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        secret_hash,
    )
    return None if row is None else TokenRow(row["id"], row["name"], tuple(row["scopes"]))


# --- audit


async def record_access(
    conn: asyncpg.Connection | asyncpg.Pool,
    who: str,
    action: str,
    target: str,
    phone: str | None,
    detail: dict[str, Any] | None = None,
    token_id: int | None = None,
) -> None:
    """An audit row: `who` did `action` to `target`, about the person with `phone` (kept only
    as its hash). Never put a number or a lead's field values in `target` or `detail`."""
    await conn.execute(
        """INSERT INTO api_audit (token_id, token_name, action, target, detail, subject)
           VALUES ($1, $2, $3, $4, $5::text::jsonb, subject_hash($6))""",
        token_id,
        who,
        action,
        target,
        json.dumps(detail or {}),
        phone,
    )


async def audit_many(
    conn: asyncpg.Connection,
    token_id: int,
    token_name: str,
    actions: Sequence[str],
    targets: Sequence[str],
) -> None:
    """One audit row per (action, target) pair, all done by the same token."""
    await conn.execute(
        """INSERT INTO api_audit (token_id, token_name, action, target)
           SELECT $1, $2, t.action, t.target
           FROM unnest($3::text[], $4::text[]) AS t(action, target)""",
        token_id,
        token_name,
        list(actions),
        list(targets),
    )


async def scrub_audit_of_leads(
    conn: asyncpg.Connection, lead_ids: list[int], phone_e164: str
) -> int:
    """Erasure: audit rows about the leads keep who did what and when, but name the lead by
    its id (the CRM's id of the lead goes) and the person by the hash alone."""
    return await execute_count(
        conn,
        """UPDATE api_audit a
           SET target = 'campaign/' || mine.campaign || '/lead/erased-' || mine.id,
               subject = subject_hash($2)
           FROM (SELECT l.id, c.name AS campaign,
                        'campaign/' || c.name || '/lead/' || l.external_id AS target
                 FROM leads l JOIN campaigns c ON c.id = l.campaign_id
                 WHERE l.id = ANY($1::bigint[]) AND l.external_id IS NOT NULL) AS mine
           WHERE a.target = mine.target""",
        lead_ids,
        phone_e164,
    )
