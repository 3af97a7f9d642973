"""The call path's writes besides turns: the `calls` row, DNC entries, compliance events.

Each write is small and retried briefly; the call itself never waits for the database longer
than that, and a failure is logged with the call id (never the number).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from agi.call.outcome import CallContext, CallOutcome
from dialog import ComplianceHit
from store.outbox import enqueue_lead_paused

log = logging.getLogger(__name__)

CALL_DISPOSITIONS = frozenset(
    {"completed", "transferred", "abandoned", "machine", "failed", "error", "early-hangup"}
)
_RETRIES = 3


@dataclass
class CallStore:
    pool: asyncpg.Pool

    async def _execute(self, sql: str, *args: Any) -> None:
        await self._retrying(lambda: self.pool.execute(sql, *args))

    async def _retrying(self, write: Callable[[], Awaitable[object]]) -> None:
        for attempt in range(1, _RETRIES + 1):
            try:
                await write()
                return
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                if attempt == _RETRIES:
                    raise
                log.warning("database write failed (%s), retrying", type(exc).__name__)
                await asyncio.sleep(0.2 * attempt)

    async def lookup(self, call_id: str) -> CallContext | None:
        row = await self.pool.fetchrow(
            """SELECT a.campaign_id, a.lead_id, c.name AS campaign, c.script_name,
                      l.phone_e164, l.timezone,
                      l.fields, l.external_id
                 FROM call_attempts a
                 JOIN leads l ON l.id = a.lead_id
                 JOIN campaigns c ON c.id = a.campaign_id
                WHERE a.call_id = $1""",
            call_id,
        )
        if row is None:
            return None
        variables = dict(row["fields"] or {})
        return CallContext(
            call_id=call_id,
            campaign=row["campaign"],
            campaign_id=row["campaign_id"],
            script_name=row["script_name"],
            lead_id=row["lead_id"],
            phone_e164=row["phone_e164"],
            timezone=row["timezone"],
            variables=variables,
        )

    async def script_of(self, campaign_id: int) -> str | None:
        return await self.pool.fetchval(
            "SELECT script_name FROM campaigns WHERE id = $1", campaign_id
        )

    async def start(
        self,
        context: CallContext,
        script: str,
        version: int,
        variant: str | None,
        language_pack: str,
        half_duplex: bool = False,
    ) -> None:
        await self._execute(
            """INSERT INTO calls (call_id, campaign_id, lead_id, script_name, script_version,
                                  variant, amd_status, language_pack, half_duplex, recording_path)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (call_id) DO NOTHING""",
            context.call_id,
            context.campaign_id,
            context.lead_id,
            script,
            version,
            variant,
            context.amd_status,
            language_pack,
            half_duplex,
            context.recording_path,
        )

    async def finish(self, context: CallContext, outcome: CallOutcome, summary: str | None) -> None:
        disposition = (
            outcome.disposition if outcome.disposition in CALL_DISPOSITIONS else "completed"
        )
        result = outcome.outcome or (
            None if disposition == outcome.disposition else outcome.disposition
        )
        transfer = outcome.transfer
        await self._execute(
            """INSERT INTO calls (call_id, campaign_id, lead_id, amd_status, recording_path)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_id) DO NOTHING""",
            context.call_id,
            context.campaign_id,
            context.lead_id,
            context.amd_status,
            context.recording_path,
        )
        await self._execute(
            """UPDATE calls SET ended_at = now(), disposition = $2, outcome = $3, success = $4,
                      transfer_target = $5, transfer_reason = $6, hangup_side = $7,
                      greeting_latency_ms = $8, summary = $9, grade = $10, grade_reason = $11,
                      captured = $12
                WHERE call_id = $1""",
            context.call_id,
            disposition,
            result,
            outcome.success,
            transfer.target if transfer else None,
            transfer.reason if transfer else None,
            outcome.hangup_side,
            outcome.greeting_latency_ms,
            summary,
            outcome.grade,
            outcome.grade_reason,
            outcome.captured,
        )

    async def add_dnc(self, context: CallContext) -> None:
        if context.phone_e164 is None:
            return
        # A customer's refusal covers every campaign: the company-wide list.
        await self._execute(
            """INSERT INTO dnc (phone_e164, campaign_id, source, reason)
               VALUES ($1, NULL, 'opt_out', 'customer asked on call ' || $2)
               ON CONFLICT DO NOTHING""",
            context.phone_e164,
            context.call_id,
        )

    async def pause_lead(self, context: CallContext, reason: str) -> None:
        """Stop calling the lead in this campaign (blocked, with `reason`) and queue a
        `lead.paused` event for the CRM, in one transaction. The dialer's end of the attempt
        moves only a lead still leased, so the block stays."""

        async def write() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """UPDATE leads SET status = 'blocked', block_reason = $2,
                              lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
                        WHERE id = $1""",
                    context.lead_id,
                    reason,
                )
                await enqueue_lead_paused(
                    conn, call_id=context.call_id, lead_id=context.lead_id, reason=reason
                )

        await self._retrying(write)

    async def compliance_event(
        self, context: CallContext, hit: ComplianceHit | dict[str, Any]
    ) -> None:
        if isinstance(hit, ComplianceHit):
            direction, category, action = hit.source, hit.category, hit.action
            detail = {"node": hit.node, "term": hit.term, "blocked": hit.blocked}
        else:
            direction, category, action = hit["direction"], hit["category"], hit["action"]
            detail = {}
        await self._execute(
            """INSERT INTO compliance_events (call_id, lead_id, campaign_id, direction, category,
                                              action, detail)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            context.call_id,
            context.lead_id,
            context.campaign_id,
            direction,
            category,
            action,
            detail,
        )
