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
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dialer import metrics
from dialer.ami import AmiConnection, AmiDisconnected, AmiEndpoint
from dialer.campaigns import CallingPolicy, Campaign, abandoned_rate_30d, calling_policy
from dialer.campaigns import list_campaigns as db_list_campaigns
from dialer.dispositions import (
    ANSWERED,
    Disposition,
    from_amd,
    from_hangup_cause,
    from_originate_reason,
    next_step,
    parse_session_disposition,
)
from dialer.leasing import (
    AttemptRequest,
    AttemptResult,
    Lead,
    OutcomeAdvisor,
    claim_attempts,
    finish_attempts,
    lease_eligible,
    reclaim_expired,
    release_leases,
    renew_leases,
)
from dialer.masking import mask_number
from dialer.pacing import AnswerRate, PacingInput, TokenBucket, calls_to_start
from dialer.settings import DialerSettings, TrunkSettings
from dialer.tracking import CallTracker, LiveCall

log = logging.getLogger(__name__)

UNLIMITED_SESSIONS = 1_000_000
_TICK_S = 0.01
_SESSION_POLL_S = 0.1
_HANGUP_GRACE_S = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PbxLink:
    """One AMI connection and the calls that went out over it."""

    conn: AmiConnection
    tracker: CallTracker


@dataclass
class _Trunk:
    settings: TrunkSettings
    link: PbxLink
    bucket: TokenBucket
    live: int = 0


@dataclass
class _CampaignState:
    campaign: Campaign
    policy: CallingPolicy
    bucket: TokenBucket | None
    answer_rate: AnswerRate
    buffer: list[Lead] = field(default_factory=list)
    live: int = 0
    idle_until: float = 0.0  # no due leads were found; look again after this (loop time)
    abandoned_rate: float | None = None


class OutageLog:
    """One WARNING per outage for a step retried on every poll, DEBUG for the retries (the
    daemon's health monitor says when the database is lost and when it is back)."""

    def __init__(self) -> None:
        self.failures = 0  # in a row

    def failed(self, message: str, *args: object) -> None:
        self.failures += 1
        log.log(logging.WARNING if self.failures == 1 else logging.DEBUG, message, *args)

    def succeeded(self) -> None:
        self.failures = 0


class Dialer:
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
        if not trunks:
            raise ValueError("the dialer needs at least one trunk")
        names = [t.name for t in trunks]
        if len(set(names)) != len(names):
            raise ValueError(f"trunk names must be unique: {names}")
        self.pool = pool
        self.settings = settings
        self.owner = settings.owner or default_owner()
        self._trunk_settings = trunks
        self._capacity = capacity
        self._clock = clock
        self._only = frozenset(only_campaigns) if only_campaigns is not None else None
        self._advisor = advisor  # the follow-up after each call (crm/followup.py)
        self._trunks: dict[str, _Trunk] = {}
        self._campaigns: dict[int, _CampaignState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[tuple[AttemptResult, LiveCall]] = []
        self._results_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._live = 0
        self.originated = 0
        self.settled = 0
        self._housekeeping_log = OutageLog()
        self._leasing_log = OutageLog()
        self._results_log = OutageLog()
        self._build_trunks()

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Begin the drain (safe to call from a signal handler via loop.call_soon_threadsafe)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        for link in self.links:
            link.conn.start()
        writer = asyncio.create_task(self._write_results(), name="dialer results")
        try:
            await self._loop()
        finally:
            await self._drain()
            self._results_ready.set()
            self._stopping.set()
            await writer
            for link in self.links:
                await link.conn.close()
            metrics.AMI_CONNECTED.set(0)
            for name in self._trunks:
                metrics.AMI_UP.labels(trunk=name).set(0)

    async def wait_connected(self) -> None:
        """Until every trunk's AMI link is logged in (bound it with asyncio.timeout)."""
        for trunk in self._trunks.values():
            await trunk.link.conn.wait_ready()

    @property
    def live_calls(self) -> int:
        return self._live

    @property
    def links(self) -> list[PbxLink]:
        """The AMI connections (one per PBX endpoint), in trunk order."""
        return list({id(t.link): t.link for t in self._trunks.values()}.values())

    def _build_trunks(self) -> None:
        links: dict[AmiEndpoint, PbxLink] = {}
        for ts in self._trunk_settings:
            endpoint = AmiEndpoint(ts.host, ts.port, ts.username, ts.secret.get_secret_value())
            if endpoint not in links:
                links[endpoint] = self._new_link(endpoint)
            self._trunks[ts.name] = _Trunk(ts, links[endpoint], TokenBucket(ts.cps))

    def _new_link(self, endpoint: AmiEndpoint) -> PbxLink:
        tracker = CallTracker(self._clock)
        holder: dict[str, AmiConnection] = {}

        async def on_up() -> None:
            self._update_connected_gauge()
            await tracker.resync(holder["conn"])

        conn = AmiConnection(
            endpoint,
            tracker.on_event,
            on_up,
            on_down=self._update_connected_gauge,
            backoff_initial_s=self.settings.reconnect_initial_s,
            backoff_max_s=self.settings.reconnect_max_s,
            timeout_s=self.settings.ami_timeout_s,
        )
        holder["conn"] = conn
        return PbxLink(conn, tracker)

    def trunk_states(self) -> list[tuple[str, bool]]:
        """Each trunk's name and whether its AMI connection is logged in now."""
        return [(name, t.link.conn.connected) for name, t in self._trunks.items()]

    def _update_connected_gauge(self) -> None:
        states = self.trunk_states()
        for name, up in states:
            metrics.AMI_UP.labels(trunk=name).set(1 if up else 0)
        metrics.AMI_CONNECTED.set(1 if all(up for _, up in states) else 0)

    # ------------------------------------------------------------------ the run loop

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_housekeeping = 0.0
        while not self._stopping.is_set():
            if loop.time() >= next_housekeeping:
                await self._housekeeping()
                next_housekeeping = loop.time() + self.settings.poll_interval_s
            started = 0
            for state in list(self._campaigns.values()):
                started += await self._dial_campaign(state, loop.time())
            self._wake.clear()
            # Leads waiting for CPS tokens or channels: look again soon; else sleep until a
            # call ends or the next poll.
            waiting = started or any(s.buffer for s in self._campaigns.values())
            delay = _TICK_S if waiting else self.settings.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _housekeeping(self) -> None:
        now = self._clock()
        try:
            async with self.pool.acquire() as conn:
                await renew_leases(conn, self.owner, now, self.settings.lease_s)
                if self._only is None:
                    await reclaim_expired(conn, now)
                campaigns = await db_list_campaigns(conn, active_only=True)
                if self._only is not None:
                    campaigns = [c for c in campaigns if c.id in self._only]
                for campaign in campaigns:
                    rate = await abandoned_rate_30d(conn, campaign.id)
                    self._campaign_state(campaign).abandoned_rate = rate
                    metrics.ABANDONED_RATE.labels(campaign.name).set(rate or 0.0)
        except (OSError, asyncpg.PostgresError) as exc:
            self._housekeeping_log.failed("dialer housekeeping failed (will retry): %s", exc)
            return
        self._housekeeping_log.succeeded()
        active = {c.id for c in campaigns}
        for campaign_id in list(self._campaigns):
            if campaign_id not in active:
                await self._drop_campaign(campaign_id)

    def _campaign_state(self, campaign: Campaign) -> _CampaignState:
        state = self._campaigns.get(campaign.id)
        if state is None:
            cps = campaign.settings.cps
            state = _CampaignState(
                campaign=campaign,
                policy=calling_policy(campaign.settings, self.settings),
                bucket=TokenBucket(cps) if cps else None,
                answer_rate=AnswerRate(self.settings.answer_rate_window),
            )
            self._campaigns[campaign.id] = state
        else:
            state.campaign = campaign
            state.policy = calling_policy(campaign.settings, self.settings)
        return state

    async def _drop_campaign(self, campaign_id: int) -> None:
        """A paused or finished campaign: give its unused leases back."""
        state = self._campaigns.pop(campaign_id)
        if state.buffer:
            async with self.pool.acquire() as conn:
                await release_leases(conn, self.owner, [lead.id for lead in state.buffer])
            state.buffer.clear()

    def _campaign_trunks(self, state: _CampaignState) -> list[_Trunk]:
        wanted = state.campaign.settings.trunks
        trunks = (
            [self._trunks[n] for n in wanted if n in self._trunks]
            if wanted
            else list(self._trunks.values())
        )
        return [t for t in trunks if t.link.conn.connected]

    def _allowance(self, state: _CampaignState, trunks: list[_Trunk], now: float) -> int:
        campaign_cap = state.campaign.settings.max_channels or self.settings.max_channels
        free_channels = min(
            self.settings.max_channels - self._live,
            campaign_cap - state.live,
            sum(max(0, t.settings.max_channels - t.live) for t in trunks),
        )
        ringing = sum(
            1
            for link in self.links
            for c in link.tracker.calls.values()
            if c.answered_at is None and not c.ended.is_set()
        )
        n = calls_to_start(
            PacingInput(
                free_channels=free_channels,
                free_sessions=self._capacity(),
                ringing=ringing,
                answer_rate=state.answer_rate.value,
                abandoned_rate=state.abandoned_rate,
                abandoned_limit=self.settings.abandoned_limit,
                progressive=self.settings.pacing == "progressive",
            )
        )
        if state.bucket is not None:
            n = min(n, state.bucket.available(now))
        return min(n, sum(t.bucket.available(now) for t in trunks))

    async def _dial_campaign(self, state: _CampaignState, now: float) -> int:
        trunks = self._campaign_trunks(state)
        if not trunks:
            return 0
        n = self._allowance(state, trunks, now)
        if n <= 0:
            return 0
        if len(state.buffer) < n and now >= state.idle_until:
            await self._refill(state, max(n, self.settings.lease_batch) - len(state.buffer), now)
        leads, state.buffer = state.buffer[:n], state.buffer[n:]
        if not leads:
            return 0
        requests = self._assign_trunks(state, leads, trunks, now)
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
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not record attempts (leads stay leased, retried): %s", exc)
            for request in requests:
                self._trunks[request.trunk].live -= 1
            state.buffer[:0] = [r.lead for r in requests]
            return 0
        claimed_ids = {r.call_id for r in claimed}
        for request in requests:
            if request.call_id not in claimed_ids:
                self._trunks[request.trunk].live -= 1  # the gates stopped it at the last moment
        for request in claimed:
            self._launch(state, request)
        return len(claimed)

    async def _refill(self, state: _CampaignState, want: int, now: float) -> None:
        try:
            leads = await lease_eligible(
                self.pool,
                state.campaign.id,
                state.campaign.name,
                state.policy,
                self.owner,
                want,
                self._clock(),
                self.settings.lease_s,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            self._leasing_log.failed("leasing failed (will retry): %s", exc)
            leads = []
        else:
            self._leasing_log.succeeded()
        state.buffer.extend(leads)
        if len(leads) < want:
            state.idle_until = now + self.settings.poll_interval_s

    def _assign_trunks(
        self, state: _CampaignState, leads: list[Lead], trunks: list[_Trunk], now: float
    ) -> list[AttemptRequest]:
        """Spread the calls over the trunks with free CPS tokens and channels."""
        requests = []
        order = sorted(trunks, key=lambda t: t.live)
        i = 0
        for lead in leads:
            for _ in range(len(order)):
                trunk = order[i % len(order)]
                i += 1
                if trunk.bucket.available(now) >= 1 and trunk.live < trunk.settings.max_channels:
                    trunk.bucket.take(1, now)
                    if state.bucket is not None:
                        state.bucket.take(1, now)
                    trunk.live += 1  # reserved now so the next lead sees the channel taken
                    call_id = uuid.uuid4().hex
                    requests.append(
                        AttemptRequest(lead, call_id, trunk.settings.name, f"od-{call_id}")
                    )
                    break
            else:
                state.buffer.append(lead)  # no trunk can take it this tick
        return requests

    # ------------------------------------------------------------------ one call

    def _launch(self, state: _CampaignState, request: AttemptRequest) -> None:
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

    def _originate_action(
        self, state: _CampaignState, trunk: _Trunk, call: LiveCall, lead: Lead
    ) -> dict[str, Any]:
        ts = trunk.settings
        action: dict[str, Any] = {
            "Action": "Originate",
            "ActionID": call.action_id,
            "Channel": ts.dial_string.format(number=lead.phone_e164),
            "Context": ts.context,
            "Exten": ts.exten,
            "Priority": str(ts.priority),
            "Async": "true",
            "Timeout": str(int(ts.ring_timeout_s * 1000)),
            "Variable": [
                f"OUTDIAL_CALL_ID={call.call_id}",
                f"OUTDIAL_CAMPAIGN={state.campaign.name}",
                f"OUTDIAL_LEAD={lead.id}",
            ],
        }
        if state.campaign.settings.caller_id:
            action["CallerID"] = state.campaign.settings.caller_id
        if state.campaign.settings.record:
            action["Variable"].append("OUTDIAL_RECORD=1")
        return action

    async def _follow(
        self, state: _CampaignState, trunk: _Trunk, call: LiveCall, lead: Lead
    ) -> None:
        link = trunk.link
        try:
            await self._originate(link, call, self._originate_action(state, trunk, call, lead))
            await self._await_end(link, call)
        finally:
            trunk.live -= 1
            state.live -= 1
            self._live -= 1
            self._wake.set()
        link.tracker.remove(call)
        result = await self._settle(call)
        self._results.append((result, call))
        self._results_ready.set()

    async def _originate(self, link: PbxLink, call: LiveCall, action: dict[str, Any]) -> None:
        """Send the Originate once and apply its reply; it is never sent again."""
        try:
            sent = link.conn.send(action)
        except AmiDisconnected:
            call.lost = True  # never written to the PBX: nothing was dialled
            call.ended.set()
            return
        try:
            reply = await sent
        except AmiDisconnected:
            # The reply died with the link: the resync after the reconnect settles the call.
            log.warning("call %s: link dropped around its Originate", call.call_id)
            return
        messages = reply if isinstance(reply, list) else [reply]
        final = next((m for m in messages if m.get("Event") == "OriginateResponse"), messages[-1])
        link.tracker.apply_originate_response(call, final)

    async def _await_end(self, link: PbxLink, call: LiveCall) -> None:
        try:
            await asyncio.wait_for(call.ended.wait(), self.settings.max_call_s)
        except TimeoutError:
            # No end seen in time: ask the PBX, hang up whatever is left, settle.
            log.warning(
                "call %s: no end after %.0fs, checking the PBX",
                call.call_id,
                self.settings.max_call_s,
            )
            await self._hang_up(link, call)

    async def _hang_up(self, link: PbxLink, call: LiveCall) -> None:
        with contextlib.suppress(AmiDisconnected, TimeoutError):
            channels = await link.conn.core_show_channels()
            for ev in channels:
                if ev.get("Uniqueid") in call.uniqueids:
                    await link.conn.hangup(ev.get("Channel", ""))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.ended.wait(), _HANGUP_GRACE_S)
        if not call.ended.is_set():
            call.lost = True
            call.ended.set()

    async def _settle(self, call: LiveCall) -> AttemptResult:
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
                disposition = from_amd(call.amd_status, self.settings)
            else:
                disposition = Disposition.ERROR  # nothing left to tell what happened
        elif hangup is not None and hangup.cause is not None:
            disposition = from_hangup_cause(hangup.cause, was_up=False)
        else:
            disposition = Disposition.ERROR
        return AttemptResult(
            call_id=call.call_id,
            disposition=disposition,
            next_step=next_step(disposition, ended_at, self.settings),
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
        deadline = loop.time() + self.settings.session_result_wait_s
        while True:
            try:
                row = await self.pool.fetchrow(
                    "SELECT ended_at, disposition FROM calls WHERE call_id = $1", call_id
                )
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("call %s: cannot read the session's outcome: %s", call_id, exc)
                return None
            if row is None:
                return None  # no session ever started for this call
            if row["ended_at"] is not None or loop.time() >= deadline:
                return parse_session_disposition(row["disposition"])
            await asyncio.sleep(_SESSION_POLL_S)

    # ------------------------------------------------------------------ results

    async def _write_results(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            batch, self._results = self._results, []
            if batch:
                await self._flush(batch)
            if self._stopping.is_set() and not self._tasks and not self._results:
                return

    async def _flush(self, batch: list[tuple[AttemptResult, LiveCall]]) -> None:
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await finish_attempts(conn, self.owner, [r for r, _ in batch], self._advisor)
                self._results_log.succeeded()
                break
            except (OSError, asyncpg.PostgresError) as exc:
                self._results_log.failed("could not write %d call results (retrying): %s",
                                         len(batch), exc)  # fmt: skip
                await asyncio.sleep(self.settings.poll_interval_s)
        for result, call in batch:
            self.settled += 1
            metrics.CALLS.labels(call.campaign_name, str(result.disposition)).inc()
            state = self._campaigns.get(call.campaign_id)
            answered = result.disposition in ANSWERED
            if answered:
                metrics.ANSWERED.labels(call.campaign_name).inc()
            if state is not None:
                state.answer_rate.add(answered)
                metrics.ANSWER_RATE.labels(call.campaign_name).set(state.answer_rate.value)

    # ------------------------------------------------------------------ drain

    async def _drain(self) -> None:
        buffered = [lead.id for s in self._campaigns.values() for lead in s.buffer]
        for state in self._campaigns.values():
            state.buffer.clear()
        if buffered:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                async with self.pool.acquire() as conn:
                    await release_leases(conn, self.owner, buffered)
        if not self._tasks:
            return
        log.info(
            "draining: %d live calls, up to %.0fs", len(self._tasks), self.settings.drain_timeout_s
        )
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.drain_timeout_s)
        if pending:
            log.warning("drain timeout: hanging up %d calls", len(pending))
            for link in self.links:
                for call in list(link.tracker.calls.values()):
                    await self._hang_up(link, call)
            await asyncio.wait(set(self._tasks))
