"""The call path's writes besides turns: the `calls` row, DNC entries, compliance events, a
paused lead.

Each write is small and retried briefly; the call itself never waits for the database longer
than that, and a failure is logged with the call id (never the number). A call's end, an
opt-out, a compliance event or a lead's pause that cannot be written because the database is
away is kept by a batch writer (store.kept) and written when it is back. Retries warn once per
outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from agi.call.outcome import CallContext, CallOutcome
from dialog import ComplianceHit
from store.batchwriter import BatchWriter
from store.calls import CallEnd, CallEndRecord, CallStart, attempt_of_call, end_call, start_call
from store.campaigns import script_of_campaign
from store.compliance_events import CallComplianceEvent, record_call_event
from store.db import database_unreachable
from store.dnc import add_opt_out, opt_out_row
from store.kept import KeptWrites
from store.outage import OutageLog
from store.pauses import LeadPause, pause_lead

log = logging.getLogger(__name__)

CALL_DISPOSITIONS = frozenset(
    {"completed", "transferred", "abandoned", "machine", "failed", "error", "early-hangup"}
)
_RETRIES = 3
T = TypeVar("T")


def _database_away(exc: BaseException) -> bool:
    # asyncpg's own errors on a session the server cut count too (store.db.DATABASE_ERRORS).
    return database_unreachable(exc) or isinstance(
        exc, asyncpg.InterfaceError | asyncpg.InternalClientError
    )


class DatabaseAway(RuntimeError):
    """The database cannot be reached now (after the brief retries)."""


@dataclass
class CallStore:
    pool: asyncpg.Pool
    kept: KeptWrites  # started and closed by the owner, like the turn writer
    _outage: OutageLog = field(default_factory=lambda: OutageLog(log))

    async def _retrying(self, step: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, _RETRIES + 1):
            try:
                result = await step()
            except Exception as exc:
                if attempt == _RETRIES or not _database_away(exc):
                    raise
                self._outage.failed("database step failed (%s), retrying", type(exc).__name__)
                await asyncio.sleep(0.2 * attempt)
            else:
                self._outage.succeeded()
                return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def lookup(self, call_id: str) -> CallContext | None:
        """The dialer's record of the call; DatabaseAway when it cannot be read now."""
        try:
            attempt = await self._retrying(lambda: attempt_of_call(self.pool, call_id))
        except Exception as exc:
            if not _database_away(exc):
                raise
            raise DatabaseAway(str(exc) or type(exc).__name__) from exc
        if attempt is None:
            return None
        return CallContext(
            call_id=call_id,
            campaign=attempt.campaign,
            campaign_id=attempt.campaign_id,
            script_name=attempt.script_name,
            lead_id=attempt.lead_id,
            phone_e164=attempt.phone_e164,
            timezone=attempt.timezone,
            variables=attempt.fields,
        )

    async def script_of(self, campaign_id: int) -> str | None:
        return await script_of_campaign(self.pool, campaign_id)

    async def start(
        self,
        context: CallContext,
        script: str,
        version: int,
        variant: str | None,
        language_pack: str,
        half_duplex: bool = False,
    ) -> None:
        call = CallStart(
            call_id=context.call_id,
            campaign_id=context.campaign_id,
            lead_id=context.lead_id,
            script_name=script,
            script_version=version,
            variant=variant,
            amd_status=context.amd_status,
            language_pack=language_pack,
            half_duplex=half_duplex,
            recording_path=context.recording_path,
        )
        await self._retrying(lambda: start_call(self.pool, call))

    async def finish(self, context: CallContext, outcome: CallOutcome, summary: str | None) -> None:
        disposition = (
            outcome.disposition if outcome.disposition in CALL_DISPOSITIONS else "completed"
        )
        result = outcome.outcome or (
            None if disposition == outcome.disposition else outcome.disposition
        )
        transfer = outcome.transfer
        call = CallStart(
            call_id=context.call_id,
            campaign_id=context.campaign_id,
            lead_id=context.lead_id,
            amd_status=context.amd_status,
            recording_path=context.recording_path,
        )
        end = CallEnd(
            disposition=disposition,
            outcome=result,
            success=outcome.success,
            transfer_target=transfer.target if transfer else None,
            transfer_reason=transfer.reason if transfer else None,
            hangup_side=outcome.hangup_side,
            greeting_latency_ms=outcome.greeting_latency_ms,
            summary=summary,
            grade=outcome.grade,
            grade_reason=outcome.grade_reason,
            captured=outcome.captured,
        )
        record = CallEndRecord(call, end, datetime.now(UTC))

        async def write() -> None:
            async with self.pool.acquire() as conn:
                await end_call(conn, record)

        await self._write_or_keep(write, self.kept.ends, record.to_row(), context.call_id, "end")

    async def _write_or_keep(
        self,
        write: Callable[[], Awaitable[object]],
        keeper: BatchWriter,
        row: tuple[Any, ...],
        call_id: str,
        what: str,
    ) -> None:
        """Write now; with the database away, `keeper` writes `row` when it is back."""
        try:
            await self._retrying(write)
        except Exception as exc:
            if not _database_away(exc):
                raise
            keeper.put(row)
            log.info("call %s: its %s is kept until the database is back", call_id, what)

    async def add_dnc(self, context: CallContext) -> None:
        phone = context.phone_e164
        if phone is None:
            return

        async def write() -> None:
            async with self.pool.acquire() as conn:
                await add_opt_out(conn, phone, context.call_id)

        row = opt_out_row(phone, context.call_id)
        await self._write_or_keep(write, self.kept.opt_outs, row, context.call_id, "opt-out")

    async def pause_lead(self, context: CallContext, reason: str) -> None:
        """Stop calling the lead in this campaign (blocked, with `reason`) and queue a
        `lead.paused` event for the CRM, in one transaction. The dialer's end of the attempt
        moves only a lead still leased, so the block stays."""
        pause = LeadPause(context.call_id, context.lead_id, reason, datetime.now(UTC))

        async def write() -> None:
            async with self.pool.acquire() as conn:
                await pause_lead(conn, pause)

        row = pause.to_row()
        await self._write_or_keep(write, self.kept.pauses, row, context.call_id, "lead's pause")

    async def compliance_event(
        self, context: CallContext, seq: int, hit: ComplianceHit | dict[str, Any]
    ) -> None:
        """Record the call's `seq`-th compliance event (numbered by the call, from 1: its key)."""
        if isinstance(hit, ComplianceHit):
            direction, category, action = hit.source, hit.category, hit.action
            detail = {"node": hit.node, "term": hit.term, "blocked": hit.blocked}
        else:
            direction, category, action = hit["direction"], hit["category"], hit["action"]
            detail = {}
        event = CallComplianceEvent(
            call_id=context.call_id,
            seq=seq,
            lead_id=context.lead_id,
            campaign_id=context.campaign_id,
            direction=direction,
            category=category,
            action=action,
            at=datetime.now(UTC),
            detail=detail,
        )

        async def write() -> None:
            async with self.pool.acquire() as conn:
                await record_call_event(conn, event)

        row = event.to_row()
        what = "compliance event"
        await self._write_or_keep(write, self.kept.compliance, row, context.call_id, what)
