"""A call's outcome once it has ended: what the PBX said, or the call session's own verdict."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg

from dialer.dispositions import (
    Disposition,
    from_amd,
    from_hangup_cause,
    from_originate_reason,
    next_step,
    parse_session_disposition,
)
from dialer.leasing import AttemptResult
from dialer.settings import DialerSettings
from dialer.tracking import LiveCall
from store.calls import session_outcome
from store.db import DATABASE_ERRORS
from store.outage import OutageLog

log = logging.getLogger(__name__)

_SESSION_POLL_S = 0.1


class Settler:
    """Turns an ended `LiveCall` into the `AttemptResult` the dialer writes."""

    def __init__(
        self, pool: asyncpg.Pool, settings: DialerSettings, clock: Callable[[], datetime]
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock
        # Every call ending in a database outage: one WARNING for the outage.
        self._outage = OutageLog(log)

    async def settle(self, call: LiveCall) -> AttemptResult:
        ended_at = self._clock()
        hangup = call.final_hangup
        if call.rejected is not None:
            disposition = Disposition.ERROR
        elif call.reason is not None and not call.answered:
            disposition = from_originate_reason(call.reason)
        elif call.answered or call.lost:
            session = await self._session_disposition(call.call_id)
            if session is not None:
                disposition = session
            elif call.answered:
                disposition = from_amd(call.amd_status, self._settings)
            else:
                disposition = Disposition.ERROR  # nothing left to tell what happened
        elif hangup is not None and hangup.cause is not None:
            disposition = from_hangup_cause(hangup.cause, was_up=False)
        else:
            disposition = Disposition.ERROR
        return AttemptResult(
            call_id=call.call_id,
            disposition=disposition,
            next_step=next_step(disposition, ended_at, self._settings),
            ended_at=ended_at,
            answered_at=call.answered_at,
            channel=call.channel,
            uniqueid=call.primary,
            ami_reason=call.reason,
            hangup_cause=hangup.cause if hangup else None,
            hangup_cause_txt=hangup.cause_txt if hangup else None,
            amd_status=call.amd_status,
            amd_cause=call.amd_cause,
        )

    async def _session_disposition(self, call_id: str) -> Disposition | None:
        """The call session's own outcome: wait (bounded) if its row exists but is open."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.session_result_wait_s
        while True:
            try:
                outcome = await session_outcome(self._pool, call_id)
            except DATABASE_ERRORS as exc:
                self._outage.failed("call %s: cannot read the session's outcome: %s", call_id, exc)
                return None
            self._outage.succeeded()
            if outcome is None:
                return None  # no session ever started for this call
            if outcome.ended or loop.time() >= deadline:
                return parse_session_disposition(outcome.disposition)
            await asyncio.sleep(_SESSION_POLL_S)
