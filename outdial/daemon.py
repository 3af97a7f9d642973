"""`outdial run`: one asyncio process that dials, talks, logs and reports.

Start order follows what each part needs: database (migrated), models (loaded once, warmed),
scripts (trained, prompts rendered), listeners (FastAGI, AudioSocket, metrics), then the dialer.
READY=1 goes to systemd only after all of that. SIGTERM drains: the dialer stops leasing and
originating, its live calls finish (bounded) while the call listeners keep serving them, leases
are released, then the listeners close and the turn log is flushed.
SIGHUP reloads the scripts: new calls get the new version, live calls keep theirs.
The dialer runs supervised (outdial.supervision): if it dies it is logged with its traceback,
`/readyz` turns 503, STATUS= says so, and it is restarted with backoff.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from agi import metrics
from agi.callstore import CallStore
from agi.catalog import ScriptCatalog
from agi.runtime import CallServices, CallSettings, ScriptRuntime
from agi.service import CallService, ScriptSource
from analytics.allocation import VariantAllocator
from analytics.churn import ChurnScorer, churn_scoring_job
from analytics.retirement import RetirementJob
from api.server import ApiListenError, ApiServer
from compliance.words import WordFilter
from crm.followup import outcome_advisor
from crm.webhooks import WebhookSender
from dialer.campaigns import (
    Campaign,
    CampaignError,
    PauseReason,
    list_campaigns,
    pause_active,
    paused_for,
    restate_pause,
    resume_paused,
)
from dialer.engine import Dialer
from dialog import RECORDING_NOT_ANNOUNCED, Script, announces_recording
from dialog.schema import BASE_VARIANT
from emotion.warmup import warm
from langpacks.install import pack_chooser
from outdial.config import Config
from outdial.credentials import spool_keys
from outdial.errors import UserError
from outdial.health import HealthMonitor
from outdial.health_memory import collect_garbage_every, trim_heap_every
from outdial.metrics import MetricsServer
from outdial.retention import RetentionJob
from outdial.supervision import Backoff, Probe, Readiness, Supervisor
from outdial.systemd import Notifier, start_watchdog
from store.db import Database, ping
from store.kept import KeptWrites
from store.spool import spool_cipher, spool_dir
from store.turns import TurnWriter
from voice.packs import PackLoader, VoicePack

log = logging.getLogger(__name__)


def pack_loader(config: Config) -> PackLoader:
    """The language packs of this process: each loaded once (NOTES §3), the first time a
    script needs it, with its own recognizer pool (`models.packs.<name>.recognizers`)."""
    tts_settings = config.tts
    if not tts_settings.cache_dir.is_absolute():
        tts_settings = tts_settings.model_copy(update={"cache_dir": config.state_dir / "tts-cache"})
    max_calls = config.session.max_calls
    return PackLoader(
        pack_chooser(config),
        config.asr,
        tts_settings,
        lambda name: config.models.recognizers(name, max_calls),
        on_loaded=report_pack,
    )


def report_pack(pack: VoicePack) -> None:
    """Each pack's memory in the log and in /metrics (`outdial_pack_memory_bytes`)."""
    spec = pack.spec
    memory = "unknown" if pack.memory_bytes is None else f"{pack.memory_bytes / 1e6:.0f} MB"
    log.info(
        "language pack %s loaded for %s scripts: ASR %s, voice %s, memory %s",
        spec.name, spec.language, spec.asr_name, spec.voice_name, memory,
    )  # fmt: skip
    if pack.memory_bytes is not None:
        metrics.PACK_MEMORY.labels(spec.name, spec.language).set(pack.memory_bytes)


async def build_call_services(config: Config) -> CallServices:
    """What every call shares; the language packs load as the scripts need them."""
    word_filter = await asyncio.to_thread(WordFilter.from_files, config.compliance.word_lists)
    await asyncio.to_thread(warm)  # librosa's numba kernels, so no call pays for them
    settings = CallSettings(
        session=config.session, emotion=config.emotion, compliance=config.compliance, nlu=config.nlu
    )
    return CallServices(packs=pack_loader(config), word_filter=word_filter, settings=settings)


def script_problem(campaign: Campaign, script: Script) -> str | None:
    """Why the daemon must not serve the campaign's calls with its loaded script: the campaign
    records and the script's identification does not say so."""
    if campaign.settings.record and not announces_recording(script):
        return RECORDING_NOT_ANNOUNCED.format(name=campaign.script_name)
    return None


@dataclass
class Daemon:
    config: Config
    db: Database | None = None
    services: CallServices | None = None
    catalog: ScriptCatalog | None = None
    turns: TurnWriter | None = None
    kept: KeptWrites | None = None
    calls: CallService | None = None
    dialer: Dialer | None = None
    notifier: Notifier = field(default_factory=Notifier.from_environ)
    readiness: Readiness = field(default_factory=Readiness)
    supervisor: Supervisor | None = None
    health: HealthMonitor | None = None
    health_interval_s: float = 2.0
    backoff: Backoff = field(default_factory=Backoff)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Campaigns paused because this daemon cannot serve their script (for STATUS=).
    unserved: list[str] = field(default_factory=list)
    manages_campaigns: bool = False
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _closers: list[object] = field(default_factory=list)
    metrics_port: int | None = None

    async def start(self, *, with_dialer: bool = True) -> None:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.readiness, self._report_status, self.backoff)
        self.db = await Database.open(config.database, config.state_dir)
        pool = self.db.pool
        self.services = await build_call_services(config)
        self.readiness.add("models", lambda: Probe("models", True, "loaded"))
        self.catalog = ScriptCatalog(
            config.scripts_path, self.services, config.state_dir / "nlu-cache", pool
        )
        await self.catalog.reload()
        if self.catalog.names:
            log.info(
                "scripts ready: %s (from %s)", ", ".join(self.catalog.names), config.scripts_path
            )
        else:
            log.warning(
                "no scripts loaded from %s: every answered call would be refused",
                config.scripts_path,
            )
        # Before the dialer starts: no lead of a campaign without its script is dialled. A
        # daemon that does not dial (the demo's) leaves the campaigns alone.
        self.manages_campaigns = with_dialer
        if self.manages_campaigns:
            await self._pause_unservable_campaigns()
        spooling = spool_dir(config.database, config.state_dir)
        cipher = spool_cipher(spool_keys(config.state_dir))  # rows hold personal data
        self.turns = TurnWriter(pool, spooling / "turns", cipher=cipher)
        await self.turns.start()
        # The call path's writes made while the database is away.
        self.kept = KeptWrites.create(pool, spooling / "calls", cipher=cipher)
        await self.kept.start()
        allocator = VariantAllocator(pool, config.analytics.ab)

        async def choose_variant(runtime: ScriptRuntime) -> str | None:
            # The script as written competes with its variants, so a variant must beat it.
            names = list(runtime.script.variants)
            return await allocator.choose(runtime.name, [BASE_VARIANT, *names]) if names else None

        self.calls = CallService(
            config.agi,
            config.audiosocket,
            self.services,
            ScriptSource(self.catalog.get),
            CallStore(pool, self.kept),
            self.turns,
            choose_variant,
        )
        await self.calls.start()
        self.health = HealthMonitor(
            self.readiness,
            self._ask_database,
            self._trunk_states,
            on_change=self._report_status,
            interval_s=self.health_interval_s,
        )
        await self.health.start()
        self._closers.append(self.health)
        await self._start_side_jobs(pool)
        if with_dialer and config.trunks:
            self.supervisor.supervise("dialer", self._run_dialer)
        # Models, scripts and caches live for the whole process: move them out of the
        # collector's way so a full collection does not stall the 20 ms media clock.
        gc.freeze()
        self.notifier.ready(self.status_text())
        # Recognizers beyond the ones built before READY, for a full house of calls.
        self.services.packs.start_filling()
        if (task := start_watchdog(self.notifier)) is not None:
            self._tasks.append(task)
        self._tasks.append(asyncio.create_task(trim_heap_every(), name="heap-trim"))
        self._tasks.append(asyncio.create_task(collect_garbage_every(), name="gc"))

    async def _ask_database(self) -> None:
        assert self.db is not None
        await ping(self.db.pool)

    def _trunk_states(self) -> list[tuple[str, bool]]:
        if self.dialer is None:
            return []
        return self.dialer.trunk_states()

    def _run_dialer(self) -> Coroutine[Any, Any, None]:
        """A fresh Dialer for each (re)start: a crashed one has already drained itself."""
        assert self.db is not None and self.calls is not None
        calls = self.calls
        self.dialer = Dialer(
            self.db.pool,
            self.config.dialer,
            self.config.trunks,
            capacity=lambda: calls.free_slots,
            advisor=outcome_advisor(self.config.analytics, self.config.dialer),
        )
        return self.dialer.run()

    async def _pause_unservable_campaigns(self) -> None:
        """Pause every active campaign whose script this daemon cannot serve (WARNING, with
        the reason on the campaign); resume the ones it paused once their script loads."""
        try:
            await self._reconcile_campaign_scripts()
        except (OSError, asyncpg.PostgresError, CampaignError) as exc:
            # The dialer's own checks go on; the next start or reload tries again.
            log.error("could not check the campaigns' scripts: %s", exc)
        self._report_status()

    async def _reconcile_campaign_scripts(self) -> None:
        assert self.db is not None
        async with self.db.pool.acquire() as conn:
            for campaign in await list_campaigns(conn, active_only=True):
                why = self._why_unservable(campaign)
                reason = PauseReason.SCRIPT_UNAVAILABLE
                if why is not None and await pause_active(conn, campaign.id, reason, why):
                    log.warning("campaign %s paused: %s", campaign.name, why)
            unserved = []
            for campaign in await paused_for(conn, PauseReason.SCRIPT_UNAVAILABLE):
                if (why := self._why_unservable(campaign)) is not None:
                    unserved.append(campaign.name)
                    # The reason may have changed (the script is back, its pack still missing).
                    reason = PauseReason.SCRIPT_UNAVAILABLE
                    if await restate_pause(conn, campaign.id, reason, why):
                        log.warning("campaign %s still paused: %s", campaign.name, why)
                elif await resume_paused(conn, campaign.id, PauseReason.SCRIPT_UNAVAILABLE):
                    log.info("campaign %s resumed: its script %s loads", campaign.name,
                             campaign.script_name)  # fmt: skip
        self.unserved = unserved

    def _why_unservable(self, campaign: Campaign) -> str | None:
        assert self.catalog is not None
        runtime = self.catalog.get(campaign.script_name)
        if runtime is None:
            return self.catalog.why_not(campaign.script_name)
        return script_problem(campaign, runtime.script)

    def status_text(self) -> str:
        """What systemd's STATUS= shows: ready, or what is degraded."""
        down = [*(self.health.degraded() if self.health else []),
                *(self.supervisor.down() if self.supervisor else [])]  # fmt: skip
        problems = [f"{p.name} {p.detail}" for p in down]
        if self.unserved:
            problems.append(f"campaign(s) paused, script not served: {', '.join(self.unserved)}")
        return "degraded: " + "; ".join(problems) if problems else "ready"

    def _report_status(self) -> None:
        self.notifier.status(self.status_text())

    async def _start_side_jobs(self, pool: object) -> None:
        config = self.config
        if config.metrics.enabled:
            metrics = MetricsServer(config.metrics, self.readiness)
            self.metrics_port = await metrics.start()
            self._closers.append(metrics)
        retirement = RetirementJob(pool, config.analytics.ab)  # type: ignore[arg-type]
        retirement.start()
        self._closers.append(retirement)
        scorer = ChurnScorer(config.analytics.churn, config.analytics.rfm)
        scoring = churn_scoring_job(pool, scorer)  # type: ignore[arg-type]
        scoring.start()
        self._closers.append(scoring)
        sending = bool(config.webhooks.urls)
        retention = RetentionJob(pool, config.privacy, webhooks=sending)  # type: ignore[arg-type]
        retention.start()
        self._closers.append(retention)
        if config.webhooks.urls:
            sender = WebhookSender(pool, config.webhooks)  # type: ignore[arg-type]
            await sender.start()
            self._closers.append(sender)
        if config.api.enabled:
            api = ApiServer(config, pool)  # type: ignore[arg-type]
            try:
                await api.start()
            except ApiListenError as exc:
                raise UserError(str(exc)) from exc
            self._closers.append(api)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def request_reload(self) -> None:
        if self.catalog is not None:
            self._tasks.append(asyncio.create_task(self._reload(), name="reload"))

    async def _reload(self) -> None:
        assert self.catalog is not None
        self.notifier.reloading()
        changed = await self.catalog.reload()
        log.info("reloaded scripts: %s", ", ".join(r.name for r in changed) or "no changes")
        if self.manages_campaigns:
            await self._pause_unservable_campaigns()
        self.notifier.ready(self.status_text())

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Drain, then close; whatever the drain raises comes out after the close."""
        live = self.live_calls()
        log.info(
            "stopping: no new calls; draining %d call%s (up to %.0f s)",
            live,
            "" if live == 1 else "s",
            self.config.dialer.drain_timeout_s,
        )
        self.notifier.stopping(f"draining {live} calls")
        try:
            await self._drain()
        finally:
            await self._close()
        log.info("stopped")

    def live_calls(self) -> int:
        """Calls in progress: dialled by this daemon, or talking to its bot."""
        dialled = self.dialer.live_calls if self.dialer is not None else 0
        talking = self.calls.active if self.calls is not None else 0
        return max(dialled, talking)

    async def _drain(self) -> None:
        """The dialer drains first (no new originates; its live calls get
        `dialer.drain_timeout_s`, then are hung up; its leases go back) while FastAGI and
        AudioSocket still serve: a person who answers a call placed before SIGTERM gets the
        bot, not dead air. Then the call service drains what is left."""
        dialing = self.supervisor.jobs.get("dialer") if self.supervisor else None
        if dialing is not None:
            dialing.request_stop()
            if self.dialer is not None:
                self.dialer.stop()
            # No timeout of our own: the dialer bounds its drain, and cancelling it midway
            # would leave leases and open attempts behind. TimeoutStopSec is the backstop.
            await dialing.wait()
        if self.calls is not None:
            await self.calls.drain(self.config.dialer.drain_timeout_s)
        log.info("calls drained; closing listeners and the database")

    async def _close(self) -> None:
        # The watchdog pinged all through the drain; it stops only now.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.supervisor is not None:
            await self.supervisor.cancel_all()
        for closer in reversed(self._closers):
            await closer.stop()  # type: ignore[attr-defined]
        if self.turns is not None:
            await self.turns.close()
        if self.kept is not None:
            await self.kept.close()
        if self.services is not None:
            self.services.shutdown()
        if self.db is not None:
            await self.db.close()
        self.notifier.close()


async def run_daemon(config: Config) -> None:
    daemon = Daemon(config)
    daemon.install_signal_handlers()
    try:
        await daemon.start()
        await daemon.wait_stopped()
    finally:
        await daemon.stop()
