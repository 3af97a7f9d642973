"""The active campaigns the dialer serves: their rules, pacing state and leased leads.

Refreshed on every poll (leases renewed, expired ones reclaimed, campaigns re-read); a
campaign that is no longer active gives its unused leases back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from dialer import metrics
from dialer.campaigns import CallingPolicy, Campaign, abandoned_rate_30d, calling_policy
from dialer.campaigns import list_campaigns as db_list_campaigns
from dialer.leasing import Lead, lease_eligible, reclaim_expired
from dialer.pacing import AnswerRate, TokenBucket
from dialer.settings import DialerSettings
from store.db import DATABASE_ERRORS
from store.leads import release_leases, renew_leases
from store.outage import OutageLog

log = logging.getLogger(__name__)


@dataclass
class CampaignState:
    campaign: Campaign
    policy: CallingPolicy
    bucket: TokenBucket | None
    answer_rate: AnswerRate
    buffer: list[Lead] = field(default_factory=list)  # leased, not dialled yet
    live: int = 0
    idle_until: float = 0.0  # no due leads were found; look again after this (loop time)
    abandoned_rate: float | None = None


class CampaignRoster:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: DialerSettings,
        owner: str,
        clock: Callable[[], datetime],
        only: Collection[int] | None,
    ) -> None:
        """`only`: serve these campaign ids and touch no other campaign's leads (not even
        to reclaim expired leases)."""
        self._pool = pool
        self._settings = settings
        self._owner = owner
        self._clock = clock
        self._only = frozenset(only) if only is not None else None
        self._states: dict[int, CampaignState] = {}
        self._refresh_log = OutageLog(log)
        self._leasing_log = OutageLog(log)

    def __iter__(self) -> Iterator[CampaignState]:
        return iter(list(self._states.values()))

    def get(self, campaign_id: int) -> CampaignState | None:
        return self._states.get(campaign_id)

    @property
    def leads_waiting(self) -> bool:
        """Some campaign holds leased leads not dialled yet."""
        return any(s.buffer for s in self._states.values())

    async def refresh(self) -> None:
        """Renew our leases, reclaim expired ones, re-read the active campaigns."""
        now = self._clock()
        try:
            async with self._pool.acquire() as conn:
                await renew_leases(conn, self._owner, now, self._settings.lease_s)
                if self._only is None:
                    await reclaim_expired(conn, now)
                campaigns = await db_list_campaigns(conn, active_only=True)
                if self._only is not None:
                    campaigns = [c for c in campaigns if c.id in self._only]
                for campaign in campaigns:
                    rate = await abandoned_rate_30d(conn, campaign.id)
                    self._state_of(campaign).abandoned_rate = rate
                    metrics.ABANDONED_RATE.labels(campaign.name).set(rate or 0.0)
        except DATABASE_ERRORS as exc:
            self._refresh_log.failed("dialer housekeeping failed (will retry): %s", exc)
            return
        self._refresh_log.succeeded()
        active = {c.id for c in campaigns}
        for campaign_id in list(self._states):
            if campaign_id not in active:
                await self._drop(campaign_id)

    def _state_of(self, campaign: Campaign) -> CampaignState:
        state = self._states.get(campaign.id)
        if state is None:
            cps = campaign.settings.cps
            state = CampaignState(
                campaign=campaign,
                policy=calling_policy(campaign.settings, self._settings),
                bucket=TokenBucket(cps) if cps else None,
                answer_rate=AnswerRate(self._settings.answer_rate_window),
            )
            self._states[campaign.id] = state
        else:
            state.campaign = campaign
            state.policy = calling_policy(campaign.settings, self._settings)
        return state

    async def _drop(self, campaign_id: int) -> None:
        """A paused or finished campaign: give its unused leases back."""
        state = self._states.pop(campaign_id)
        if state.buffer:
            # Best effort: a lease not given back expires after lease_s and is reclaimed.
            with contextlib.suppress(*DATABASE_ERRORS):
                async with self._pool.acquire() as conn:
                    await release_leases(conn, self._owner, [lead.id for lead in state.buffer])
            state.buffer.clear()

    async def refill(self, state: CampaignState, want: int, now: float) -> None:
        """Lease up to `want` more leads the gates let through into the campaign's buffer."""
        try:
            leads = await lease_eligible(
                self._pool,
                state.campaign.id,
                state.campaign.name,
                state.policy,
                self._owner,
                want,
                self._clock(),
                self._settings.lease_s,
            )
        except DATABASE_ERRORS as exc:
            self._leasing_log.failed("leasing failed (will retry): %s", exc)
            leads = []
        else:
            self._leasing_log.succeeded()
        state.buffer.extend(leads)
        if len(leads) < want:
            state.idle_until = now + self._settings.poll_interval_s

    async def release_buffers(self) -> None:
        """On the drain: the leased leads not dialled go back (best effort)."""
        buffered = [lead.id for s in self._states.values() for lead in s.buffer]
        for state in self._states.values():
            state.buffer.clear()
        if buffered:
            with contextlib.suppress(*DATABASE_ERRORS):
                async with self._pool.acquire() as conn:
                    await release_leases(conn, self._owner, buffered)
