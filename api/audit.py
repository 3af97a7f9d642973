"""The audit log: every write through the API (in the write's transaction) and every read of
personal data."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from api.tokens import Token
from store.tokens import record_access

log = logging.getLogger(__name__)


async def audit(
    conn: asyncpg.Connection | asyncpg.Pool,
    token: Token,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    *,
    subject: str | None = None,
) -> None:
    """Record that `token` did `action` to `target`, about the person with the E.164 number
    `subject` (kept as its hash). No numbers or field values in `target` or `detail`."""
    await record_access(conn, token.name, action, target, subject, detail, token.id)
    log.debug("api: %s %s %s", token.name, action, target)


def lead_target(campaign: str, external_id: str) -> str:
    return f"campaign/{campaign}/lead/{external_id}"
