"""The audit log: every write through the API, in the same transaction as the write."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg

from outdial.api.tokens import Token

log = logging.getLogger(__name__)


async def audit(
    conn: asyncpg.Connection,
    token: Token,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record that `token` did `action` to `target` (no phone numbers in clear in `target`)."""
    await conn.execute(
        """INSERT INTO api_audit (token_id, token_name, action, target, detail)
           VALUES ($1, $2, $3, $4, $5::text::jsonb)""",
        token.id,
        token.name,
        action,
        target,
        json.dumps(detail or {}),
    )
    log.debug("api: %s %s %s", token.name, action, target)


def lead_target(campaign: str, external_id: str) -> str:
    return f"campaign/{campaign}/lead/{external_id}"
