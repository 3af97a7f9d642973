"""The hourly A/B job: retire variants that are clearly losing.

A variant is retired when (1) it has at least `min_calls` completed calls in the window, (2) its
success rate is below `success_threshold`, and (3) a one-sided Fisher exact test says it is worse
than the best active variant of its script at the configured confidence. The best variant is
never a candidate, so a script always keeps an active variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from analytics.metrics import VARIANT_RETIREMENTS, VARIANT_SUCCESS_RATE
from analytics.settings import AbSettings
from analytics.variants import ACTIVE, VariantError, retire_locked
from store.scripts import VariantOutcome, lock_variant_rows, scripts_with_variants, variant_outcomes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    variant: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Retirement:
    script_name: str
    variant: str
    evidence: dict[str, Any]


def _best(active: Sequence[VariantOutcome]) -> VariantOutcome | None:
    measured = [o for o in active if o.completed > 0]
    if not measured:
        return None
    # Ties on rate go to the variant with more evidence.
    return max(measured, key=lambda o: (o.successes / o.completed, o.completed))


def _summary(o: VariantOutcome) -> dict[str, Any]:
    return {
        "variant": o.variant,
        "completed": o.completed,
        "successes": o.successes,
        "success_rate": o.success_rate,
    }


def judge(outcomes: Sequence[VariantOutcome], settings: AbSettings) -> list[Verdict]:
    """Which active variants to retire, with the numbers that justify it (pure)."""
    # scipy.stats takes ~2 s to import; only the job needs it, not every CLI start.
    from scipy.stats import fisher_exact

    active = [o for o in outcomes if o.status == ACTIVE]
    best = _best(active)
    if best is None or len(active) < 2:
        return []
    best_rate = best.successes / best.completed
    verdicts: list[Verdict] = []
    for o in active:
        if o is best or o.completed < settings.min_calls:
            continue
        rate = o.successes / o.completed
        if rate >= settings.success_threshold or rate >= best_rate:
            continue
        table = [
            [o.successes, o.completed - o.successes],
            [best.successes, best.completed - best.successes],
        ]
        p_value = float(fisher_exact(table, alternative="less").pvalue)
        if p_value >= 1.0 - settings.confidence:
            continue
        evidence = {
            "retired_by": "hourly-job",
            "test": "fisher_exact_one_sided",
            "p_value": p_value,
            "confidence": settings.confidence,
            "success_threshold": settings.success_threshold,
            "min_calls": settings.min_calls,
            "window_hours": settings.window_hours,
            "variant": _summary(o),
            "best": _summary(best),
        }
        verdicts.append(Verdict(o.variant, evidence))
    return verdicts


async def _review_script(
    conn: asyncpg.Connection, script_name: str, settings: AbSettings, now: datetime
) -> list[Retirement]:
    since = now - timedelta(hours=settings.window_hours)
    retired: list[Retirement] = []
    async with conn.transaction():
        # Lock first, then measure: an admin's restore cannot slip in between.
        await lock_variant_rows(conn, script_name)
        outcomes = await variant_outcomes(conn, script_name, since)
        for o in outcomes:
            if o.success_rate is not None:
                VARIANT_SUCCESS_RATE.labels(script=script_name, variant=o.variant).set(
                    o.success_rate
                )
        for verdict in judge(outcomes, settings):
            evidence = {
                **verdict.evidence,
                "since": since.isoformat(),
                "retired_at": now.isoformat(),
            }
            await retire_locked(conn, script_name, verdict.variant, evidence, now)
            retired.append(Retirement(script_name, verdict.variant, evidence))
    return retired


async def retire_losers(
    pool: asyncpg.Pool, settings: AbSettings, *, now: datetime | None = None
) -> list[Retirement]:
    """One pass of the job over every script with variants; returns what it retired."""
    now = now or datetime.now(UTC)
    retired: list[Retirement] = []
    async with pool.acquire() as conn:
        for script_name in await scripts_with_variants(conn):
            retired += await _review_script(conn, script_name, settings, now)
    for r in retired:
        VARIANT_RETIREMENTS.labels(script=r.script_name).inc()
        log.info(
            "retired variant %s of script %s (p=%.3g)",
            r.variant,
            r.script_name,
            r.evidence["p_value"],
        )
    return retired


class RetirementJob:
    """Runs `retire_losers` every `retire_interval_s` until stopped (the daemon owns one)."""

    def __init__(self, pool: asyncpg.Pool, settings: AbSettings) -> None:
        self._pool = pool
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="ab-retirement")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        await self._task
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await retire_losers(self._pool, self._settings)
            except (asyncpg.PostgresError, OSError, VariantError) as exc:
                # A database outage must not end the job; the next hour tries again.
                log.warning("A/B retirement pass failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.retire_interval_s)
