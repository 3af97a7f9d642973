"""The retention job: purge what is past its time (`privacy.retention`), batch by batch.

The daemon runs a pass every `privacy.purge_interval_s`; `outdial privacy purge` runs one now
(or, with `--dry-run`, counts what would go). The SQL is in store/retention.py.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from analytics.periodic import PeriodicJob
from outdial.recordings import delete_recordings
from store.metrics import ROWS_PURGED
from store.recordings import count_queued
from store.retention import (
    ERASED_LEFTOVERS,
    LATE_TURNS,
    RuleResult,
    active_rules,
    count_expired,
    purge_batch,
)
from store.settings import PrivacySettings

log = logging.getLogger(__name__)

# The result row of the recording files deleted (the metric's `rule` label).
RECORDING_FILES = "recording_files"


async def purge(
    pool: asyncpg.Pool, settings: PrivacySettings, *, webhooks: bool, dry_run: bool = False
) -> list[RuleResult]:
    """One pass over every rule: rows purged (or, dry run, rows that would be) per rule."""
    rules = [
        *active_rules(settings.retention, webhooks=webhooks),
        (LATE_TURNS, 0),
        *((rule, 0) for rule in ERASED_LEFTOVERS),
    ]
    results = []
    for rule, days in rules:
        if dry_run:
            rows = await count_expired(pool, rule, days)
        else:
            rows = 0
            while True:
                done = await purge_batch(pool, rule, days, settings.purge_batch_rows)
                rows += done
                ROWS_PURGED.labels(rule.kind, rule.table).inc(done)
                if done < settings.purge_batch_rows:
                    break
                await asyncio.sleep(settings.purge_pause_s)  # calls get the database between
        results.append(RuleResult(rule.kind, rule.table, rows))
    results.append(await _recording_files(pool, settings, dry_run=dry_run))
    return results


async def _recording_files(
    pool: asyncpg.Pool, settings: PrivacySettings, *, dry_run: bool
) -> RuleResult:
    """The recording files the rules (and erasures) queued: deleted where they can be reached
    (a dry run counts the queue)."""
    if dry_run:
        return RuleResult(RECORDING_FILES, "recording_deletions", await count_queued(pool))
    sweep = await delete_recordings(pool, settings.recordings_dir)
    ROWS_PURGED.labels(RECORDING_FILES, "recording_deletions").inc(sweep.deleted)
    return RuleResult(RECORDING_FILES, "recording_deletions", sweep.deleted)


class RetentionJob(PeriodicJob):
    """Runs `purge` every `purge_interval_s` until stopped (the daemon owns one). A pass may be
    stopped mid-batch: each statement is atomic, nothing is lost."""

    def __init__(self, pool: asyncpg.Pool, settings: PrivacySettings, *, webhooks: bool) -> None:
        async def run_once() -> None:
            results = await purge(pool, settings, webhooks=webhooks)
            purged = ", ".join(f"{r.table} {r.rows}" for r in results if r.rows)
            if purged:
                log.info("retention: purged %s", purged)

        super().__init__("retention", settings.purge_interval_s, run_once)
