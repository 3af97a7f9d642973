"""`outdial run`: one asyncio process that dials, talks, logs and reports.

Start order follows what each part needs: database (migrated), models (loaded once, warmed),
scripts (trained, prompts rendered), listeners (FastAGI, AudioSocket, metrics), then the dialer.
READY=1 goes to systemd only after all of that. SIGTERM drains: the dialer stops leasing and
originating, its live calls finish (bounded) while the call listeners keep serving them, leases
are released, then the listeners close and the turn log is flushed.
SIGHUP reloads the scripts: new calls get the new version, live calls keep theirs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass, field

from agi.callstore import CallStore
from agi.catalog import ScriptCatalog
from agi.runtime import CallServices, CallSettings, ScriptRuntime
from agi.service import CallService, ScriptSource
from analytics.allocation import VariantAllocator
from analytics.churn import ChurnScorer, churn_scoring_job
from analytics.retirement import RetirementJob
from compliance.words import WordFilter
from dialer.engine import Dialer
from dialog.schema import BASE_VARIANT
from emotion.warmup import warm
from outdial.api.server import ApiServer
from outdial.config import Config
from outdial.credentials import spool_keys
from outdial.followup import outcome_advisor
from outdial.metrics import MetricsServer
from outdial.models import voice_settings
from outdial.retention import RetentionJob
from outdial.systemd import Notifier, start_watchdog
from outdial.webhooks import WebhookSender
from store.db import Database
from store.spool import spool_cipher, spool_dir
from store.turns import TurnWriter
from voice.asr import AsrEngine
from voice.tts import TtsEngine

log = logging.getLogger(__name__)


async def build_call_services(config: Config) -> CallServices:
    """Load every model once for the process (NOTES §3), off the event loop."""
    asr_settings, tts_settings = voice_settings(config)  # the installed language pack, if any
    # Recognizers for the first calls are built before READY (about 80 ms each); the rest
    # for `max_calls` follow in the background (Daemon.start).
    prewarm = max(asr_settings.prewarm_recognizers, min(config.session.max_calls, 16))
    asr_settings = asr_settings.model_copy(update={"prewarm_recognizers": prewarm})
    if not tts_settings.cache_dir.is_absolute():
        tts_settings = tts_settings.model_copy(update={"cache_dir": config.state_dir / "tts-cache"})
    asr, tts = await asyncio.gather(AsrEngine.load(asr_settings), TtsEngine.load(tts_settings))
    word_filter = await asyncio.to_thread(WordFilter.from_files, config.compliance.word_lists)
    await asyncio.to_thread(warm)  # librosa's numba kernels, so no call pays for them
    settings = CallSettings(
        session=config.session, emotion=config.emotion, compliance=config.compliance, nlu=config.nlu
    )
    return CallServices(asr=asr, tts=tts, word_filter=word_filter, settings=settings)


@dataclass
class Daemon:
    config: Config
    db: Database | None = None
    services: CallServices | None = None
    catalog: ScriptCatalog | None = None
    turns: TurnWriter | None = None
    calls: CallService | None = None
    dialer: Dialer | None = None
    notifier: Notifier = field(default_factory=Notifier.from_environ)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _closers: list[object] = field(default_factory=list)
    metrics_port: int | None = None

    async def start(self, *, with_dialer: bool = True) -> None:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.db = await Database.open(config.database, config.state_dir)
        pool = self.db.pool
        self.services = await build_call_services(config)
        self.catalog = ScriptCatalog(
            config.scripts_dir, self.services, config.state_dir / "nlu-cache", pool
        )
        loaded = await self.catalog.reload()
        log.info("scripts ready: %s", ", ".join(r.name for r in loaded) or "none")
        self.turns = TurnWriter(
            pool,
            spool_dir(config.database, config.state_dir) / "turns",
            cipher=spool_cipher(spool_keys(config.state_dir)),  # rows hold personal data
        )
        await self.turns.start()
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
            CallStore(pool),
            self.turns,
            choose_variant,
        )
        await self.calls.start()
        await self._start_side_jobs(pool)
        if with_dialer and config.trunks:
            self.dialer = Dialer(
                pool,
                config.dialer,
                config.trunks,
                capacity=lambda: self.calls.free_slots,
                advisor=outcome_advisor(config.analytics, config.dialer),
            )
            self._tasks.append(asyncio.create_task(self.dialer.run(), name="dialer"))
        # Models, scripts and caches live for the whole process: move them out of the
        # collector's way so a full collection does not stall the 20 ms media clock.
        gc.freeze()
        self.notifier.ready("outdial ready")
        # Recognizers beyond the ones built before READY, for a full house of calls.
        fill = self.services.asr.fill_pool(config.session.max_calls)
        self._tasks.append(asyncio.create_task(fill, name="asr-pool"))
        if (task := start_watchdog(self.notifier)) is not None:
            self._tasks.append(task)

    async def _start_side_jobs(self, pool: object) -> None:
        config = self.config
        if config.metrics.enabled:
            metrics = MetricsServer(config.metrics)
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
            await api.start()
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
        self.notifier.ready("outdial ready")

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Drain, then close; whatever the drain raises comes out after the close."""
        self.notifier.stopping("draining")
        try:
            await self._drain()
        finally:
            await self._close()

    async def _drain(self) -> None:
        """The dialer drains first (no new originates; its live calls get
        `dialer.drain_timeout_s`, then are hung up; its leases go back) while FastAGI and
        AudioSocket still serve: a person who answers a call placed before SIGTERM gets the
        bot, not dead air. Then the call service drains what is left."""
        if self.dialer is not None:
            self.dialer.stop()
            dialing = next((t for t in self._tasks if t.get_name() == "dialer"), None)
            if dialing is not None:
                # No timeout of our own: the dialer bounds its drain, and cancelling it midway
                # would leave leases and open attempts behind. TimeoutStopSec is the backstop.
                await dialing
        if self.calls is not None:
            await self.calls.drain(self.config.dialer.drain_timeout_s)

    async def _close(self) -> None:
        # The watchdog pinged all through the drain; it stops only now.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for closer in reversed(self._closers):
            await closer.stop()  # type: ignore[attr-defined]
        if self.turns is not None:
            await self.turns.close()
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
