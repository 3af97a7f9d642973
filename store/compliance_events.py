"""Compliance events: what a compliance rule did to a lead or call, kept as proof."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class DialerBlock:
    """The dialer's gates stopped a lead: `blocked` for good or `postponed`."""

    lead_id: int
    campaign_id: int
    category: str
    action: str
    detail: dict[str, Any]


async def record_dialer_blocks(
    conn: asyncpg.Connection, blocks: Sequence[DialerBlock], at: datetime
) -> None:
    await conn.executemany(
        """INSERT INTO compliance_events (lead_id, campaign_id, direction, category, action,
                                          detail, created_at)
           VALUES ($1, $2, 'dialer', $3, $4, $5, $6)""",
        [(b.lead_id, b.campaign_id, b.category, b.action, b.detail, at) for b in blocks],
    )
