"""The Dialer: lease leads, pace and originate calls, follow them over AMI, settle outcomes.

One `Dialer` per process; several processes share a database through leases. `run()` works
until `stop()` (the daemon calls it on SIGTERM), then drains: no more leasing or originating,
live calls get `drain_timeout_s` to finish, the rest are hung up and settled, unused leases
are released, and `run()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Collection
from datetime import UTC, datetime

import asyncpg

from dialer import metrics
from dialer.dispositions import ANSWERED
from dialer.leasing import (
    AttemptRequest,
    AttemptResult,
    Lead,
    OutcomeAdvisor,
    claim_attempts,
)
from dialer.masking import mask_number
from dialer.origination import await_end, hang_up, originate, originate_action
from dialer.pacing import PacingInput, calls_to_start
from dialer.results import ResultWriter
from dialer.roster import CampaignRoster, CampaignState
from dialer.settings import DialerSettings, TrunkSettings
from dialer.settling import Settler
from dialer.tracking import LiveCall
from dialer.trunks import PbxLink, Trunk, Trunks, assign_trunks
from store.db import DATABASE_ERRORS
from store.outage import OutageLog

log = logging.getLogger(__name__)

UNLIMITED_SESSIONS = 1_000_000
_TICK_S = 0.01


def utc_now() -> datetime:
    return datetime.now(UTC)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Dialer:
    """The pacing loop and each call's launch and drain; trunks (`Trunks`), campaigns and
    leases (`CampaignRoster`), outcomes (`Settler`) and result writes (`ResultWriter`) are
    their own parts."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: DialerSettings,
        trunks: list[TrunkSettings],
        *,
        capacity: Callable[[], int] = lambda: UNLIMITED_SESSIONS,
        clock: Callable[[], datetime] = utc_now,
        only_campaigns: Collection[int] | None = None,
        advisor: OutcomeAdvisor | None = None,
    ) -> None:
        """`only_campaigns`: dial these campaign ids and touch no other campaign's leads
        (not even to reclaim expired leases): the demo's dialer beside real campaigns."""
        self.pool = pool
        self.settings = settings
        self.owner = settings.owner or default_owner()
        self._trunks = Trunks(trunks, settings, clock)
        self._capacity = capacity
        self._clock = clock
        self._campaigns = CampaignRoster(pool, settings, self.owner, clock, only_campaigns)
        self._settler = Settler(pool, settings, clock)
        self._results = ResultWriter(
            pool, self.owner, advisor, settings.poll_interval_s, self._count_result
        )
        self._claim_log = OutageLog(log)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._live = 0
        self.originated = 0

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Begin the drain (safe to call from a signal handler via loop.call_soon_threadsafe)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        self._trunks.start()
        writer = asyncio.create_task(self._results.run(), name="dialer results")
        try:
            await self._loop()
        finally:
            await self._drain()
            self._results.close()
            await writer
            await self._trunks.close()

    async def wait_connected(self) -> None:
        """Until every trunk's AMI link is logged in (bound it with asyncio.timeout)."""
        await self._trunks.wait_connected()

    @property
    def live_calls(self) -> int:
        return self._live

    @property
    def settled(self) -> int:
        """Calls whose results are written."""
        return self._results.written

    @property
    def links(self) -> list[PbxLink]:
        """The AMI connections (one per PBX endpoint), in trunk order."""
        return self._trunks.links

    def trunk_states(self) -> list[tuple[str, bool]]:
        """Each trunk's name and whether its AMI connection is logged in now."""
        return self._trunks.states()

    # ------------------------------------------------------------------ the run loop

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_housekeeping = 0.0
        while not self._stopping.is_set():
            if loop.time() >= next_housekeeping:
                await self._campaigns.refresh()
                next_housekeeping = loop.time() + self.settings.poll_interval_s
            started = 0
            for state in self._campaigns:
                started += await self._dial_campaign(state, loop.time())
            self._wake.clear()
            # Leads waiting for CPS tokens or channels: look again soon; else sleep until a
            # call ends or the next poll.
            waiting = started or self._campaigns.leads_waiting
            delay = _TICK_S if waiting else self.settings.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _allowance(self, state: CampaignState, trunks: list[Trunk], now: float) -> int:
        campaign_cap = state.campaign.settings.max_channels or self.settings.max_channels
        free_channels = min(
            self.settings.max_channels - self._live,
            campaign_cap - state.live,
            sum(max(0, t.settings.max_channels - t.live) for t in trunks),
        )
        n = calls_to_start(
            PacingInput(
                free_channels=free_channels,
                free_sessions=self._capacity(),
                ringing=self._trunks.ringing(),
                answer_rate=state.answer_rate.value,
                abandoned_rate=state.abandoned_rate,
                abandoned_limit=self.settings.abandoned_limit,
                progressive=self.settings.pacing == "progressive",
            )
        )
        if state.bucket is not None:
            n = min(n, state.bucket.available(now))
        return min(n, sum(t.bucket.available(now) for t in trunks))

    async def _dial_campaign(self, state: CampaignState, now: float) -> int:
        trunks = self._trunks.connected(state.campaign.settings.trunks)
        if not trunks:
            return 0
        n = self._allowance(state, trunks, now)
        if n <= 0:
            return 0
        if len(state.buffer) < n and now >= state.idle_until:
            await self._campaigns.refill(
                state, max(n, self.settings.lease_batch) - len(state.buffer), now
            )
        leads, state.buffer = state.buffer[:n], state.buffer[n:]
        if not leads:
            return 0
        requests, left = assign_trunks(leads, trunks, state.bucket, now)
        state.buffer.extend(left)  # no trunk can take them this tick
        try:
            claimed = await claim_attempts(
                self.pool,
                state.campaign.name,
                requests,
                state.policy,
                self.owner,
                self._clock(),
                self.settings.lease_s,
            )
        except DATABASE_ERRORS as exc:
            self._claim_log.failed(
                "could not record attempts (leads stay leased, retried): %s", exc
            )
            for request in requests:
                self._trunks[request.trunk].live -= 1
            state.buffer[:0] = [r.lead for r in requests]
            return 0
        self._claim_log.succeeded()
        claimed_ids = {r.call_id for r in claimed}
        for request in requests:
            if request.call_id not in claimed_ids:
                self._trunks[request.trunk].live -= 1  # the gates stopped it at the last moment
        for request in claimed:
            self._launch(state, request)
        return len(claimed)

    # ------------------------------------------------------------------ one call

    def _launch(self, state: CampaignState, request: AttemptRequest) -> None:
        trunk = self._trunks[request.trunk]
        call = LiveCall(
            call_id=request.call_id,
            action_id=request.action_id,
            campaign_id=state.campaign.id,
            campaign_name=state.campaign.name,
            lead_id=request.lead.id,
            trunk=request.trunk,
            started_at=self._clock(),
            epoch=trunk.link.conn.connects,
        )
        trunk.link.tracker.add(call)
        state.live += 1
        self._live += 1
        self.originated += 1
        metrics.ORIGINATES.labels(state.campaign.name).inc()
        log.debug(
            "originating call %s to %s on %s for %s",
            call.call_id,
            mask_number(request.lead.phone_e164),
            request.trunk,
            state.campaign.name,
        )
        task = asyncio.create_task(self._follow(state, trunk, call, request.lead))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, state: CampaignState, trunk: Trunk, call: LiveCall, lead: Lead) -> None:
        link = trunk.link
        try:
            action = originate_action(state.campaign, trunk.settings, call, lead)
            await originate(link, call, action)
            await await_end(link, call, self.settings.max_call_s)
        finally:
            trunk.live -= 1
            state.live -= 1
            self._live -= 1
            self._wake.set()
        link.tracker.remove(call)
        self._results.add(await self._settler.settle(call), call)

    def _count_result(self, result: AttemptResult, call: LiveCall) -> None:
        """A written result: the metrics, and the answer rate that paces its campaign."""
        metrics.CALLS.labels(call.campaign_name, str(result.disposition)).inc()
        answered = result.disposition in ANSWERED
        if answered:
            metrics.ANSWERED.labels(call.campaign_name).inc()
        state = self._campaigns.get(call.campaign_id)
        if state is not None:
            state.answer_rate.add(answered)
            metrics.ANSWER_RATE.labels(call.campaign_name).set(state.answer_rate.value)

    # ------------------------------------------------------------------ drain

    async def _drain(self) -> None:
        await self._campaigns.release_buffers()
        if not self._tasks:
            return
        log.info(
            "draining: %d live calls, up to %.0fs", len(self._tasks), self.settings.drain_timeout_s
        )
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.drain_timeout_s)
        if pending:
            log.warning("drain timeout: hanging up %d calls", len(pending))
            await asyncio.gather(
                *(hang_up(link, list(link.tracker.calls.values())) for link in self.links)
            )
            await asyncio.wait(set(self._tasks))
