"""A/B allocation of new calls to script variants: Thompson sampling on success, or a fixed split.

Thompson sampling draws a success rate for each active variant from its Beta(1 + successes,
1 + failures) posterior and takes the highest draw, so the better variant gets most calls while
the others keep getting enough to be measured.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from analytics.settings import AbSettings
from analytics.variants import ACTIVE, clean_variant_names
from store.scripts import VariantOutcome, register_variants, variant_outcomes

log = logging.getLogger(__name__)


def thompson_pick(outcomes: Sequence[VariantOutcome], rng: random.Random) -> str:
    """The variant with the highest draw from its Beta posterior (uniform prior)."""
    draws = {
        o.variant: rng.betavariate(1 + o.successes, 1 + (o.completed - o.successes))
        for o in outcomes
    }
    return max(draws, key=draws.__getitem__)


def fixed_pick(names: Sequence[str], weights: dict[str, float] | None, rng: random.Random) -> str:
    """A weighted draw; without usable weights for these names, an even split."""
    chosen = [weights.get(n, 0.0) for n in names] if weights else []
    if not chosen or sum(chosen) <= 0:
        chosen = [1.0] * len(names)
    return rng.choices(list(names), weights=chosen, k=1)[0]


def usable(outcomes: Sequence[VariantOutcome], declared: Sequence[str]) -> list[VariantOutcome]:
    """The declared variants that are active, in declaration order."""
    by_name = {o.variant: o for o in outcomes}
    active = [by_name[n] for n in declared if n in by_name and by_name[n].status == ACTIVE]
    if active:
        return active
    # The script now declares only retired variants; calling still has to go on.
    log.warning("every declared variant is retired; allocating among all of them")
    return [by_name.get(n, VariantOutcome(n, ACTIVE, 0, 0)) for n in declared]


class VariantAllocator:
    """Chooses the variant for each new call; one per daemon, shared by all call sessions."""

    def __init__(
        self, pool: asyncpg.Pool, settings: AbSettings, *, rng: random.Random | None = None
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._rng = rng or random.Random()
        # (script, declared names) -> (monotonic time read, outcomes): counting a week of calls
        # on every call start is wasted work when a few seconds' staleness changes nothing.
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, list[VariantOutcome]]] = {}

    async def _outcomes(self, script_name: str, names: list[str]) -> list[VariantOutcome]:
        key = (script_name, tuple(names))
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self._settings.allocation_refresh_s:
            return cached[1]
        since = datetime.now(UTC) - timedelta(hours=self._settings.window_hours)
        async with self._pool.acquire() as conn:
            await register_variants(conn, script_name, names)
            outcomes = usable(await variant_outcomes(conn, script_name, since), names)
        self._cache[key] = (time.monotonic(), outcomes)
        return outcomes

    async def choose(self, script_name: str, variants: Sequence[str]) -> str:
        names = clean_variant_names(variants)
        outcomes = await self._outcomes(script_name, names)
        if len(outcomes) == 1:
            return outcomes[0].variant
        if self._settings.allocation == "fixed":
            split = self._settings.fixed_split.get(script_name)
            return fixed_pick([o.variant for o in outcomes], split, self._rng)
        return thompson_pick(outcomes, self._rng)


async def choose_variant(
    pool: asyncpg.Pool,
    script_name: str,
    variants: Sequence[str],
    *,
    settings: AbSettings | None = None,
    rng: random.Random | None = None,
) -> str:
    """One-off form of `VariantAllocator.choose` (the daemon keeps one allocator instead)."""
    allocator = VariantAllocator(pool, settings or AbSettings(), rng=rng)
    return await allocator.choose(script_name, variants)
