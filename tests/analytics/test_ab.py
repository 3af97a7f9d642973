"""A/B: Thompson allocation, fixed split, hourly retirement, admin retire and restore."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from analytics.allocation import VariantAllocator, choose_variant
from analytics.retirement import RetirementJob, judge, retire_losers
from analytics.settings import AbSettings
from analytics.variants import VariantError, restore_variant, retire_variant
from store.scripts import VariantOutcome, list_variants, register_variants
from tests.analytics import seeding

SETTINGS = AbSettings(min_calls=100, success_threshold=0.2, confidence=0.95, window_hours=24)
EARLIER = datetime.now(UTC) - timedelta(hours=2)


async def statuses(pool: asyncpg.Pool, script: str) -> dict[str, str]:
    return {v.variant: v.status for v in await list_variants(pool, script)}


async def register(pool: asyncpg.Pool, script: str, names: list[str]) -> None:
    async with pool.acquire() as conn:
        await register_variants(conn, script, names)


def retirements(script: str) -> float:
    value = REGISTRY.get_sample_value("outdial_variant_retirements_total", {"script": script})
    return value or 0.0


async def test_losing_variant_with_enough_calls_is_retired_and_one_with_too_few_is_not(
    db_pool: asyncpg.Pool,
) -> None:
    await register(db_pool, "order", ["a", "b", "c"])
    await seeding.outcomes(db_pool, "order", "a", completed=300, successes=120, started_at=EARLIER)
    await seeding.outcomes(db_pool, "order", "b", completed=300, successes=30, started_at=EARLIER)
    # c is even worse but has fewer than min_calls completed calls.
    await seeding.outcomes(db_pool, "order", "c", completed=99, successes=2, started_at=EARLIER)
    before = retirements("order")

    retired = await retire_losers(db_pool, SETTINGS)

    assert [(r.script_name, r.variant) for r in retired] == [("order", "b")]
    assert await statuses(db_pool, "order") == {"a": "active", "b": "retired", "c": "active"}
    [b] = [v for v in await list_variants(db_pool, "order") if v.variant == "b"]
    assert b.retired_at is not None
    evidence = b.evidence
    assert evidence["retired_by"] == "hourly-job"
    assert evidence["p_value"] < 0.05
    assert evidence["variant"] == {
        "variant": "b",
        "completed": 300,
        "successes": 30,
        "success_rate": pytest.approx(0.1),
    }
    assert evidence["best"]["variant"] == "a" and evidence["best"]["successes"] == 120
    assert retirements("order") == before + 1
    rate = REGISTRY.get_sample_value(
        "outdial_variant_success_rate", {"script": "order", "variant": "a"}
    )
    assert rate == pytest.approx(0.4)
    # A second pass finds nothing new.
    assert await retire_losers(db_pool, SETTINGS) == []


async def test_calls_outside_the_window_do_not_count(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b"])
    old = datetime.now(UTC) - timedelta(hours=48)
    await seeding.outcomes(db_pool, "order", "a", completed=300, successes=120, started_at=old)
    await seeding.outcomes(db_pool, "order", "b", completed=300, successes=30, started_at=old)
    assert await retire_losers(db_pool, SETTINGS) == []


async def test_not_significant_or_above_threshold_is_kept(db_pool: asyncpg.Pool) -> None:
    # 0.30 vs 0.33 is below a 0.35 threshold but not a significant difference.
    loose = SETTINGS.model_copy(update={"success_threshold": 0.35})
    await register(db_pool, "close", ["a", "b"])
    await seeding.outcomes(db_pool, "close", "a", completed=300, successes=100, started_at=EARLIER)
    await seeding.outcomes(db_pool, "close", "b", completed=150, successes=45, started_at=EARLIER)
    # Clearly worse than the best but still above the threshold: kept too.
    await register(db_pool, "good", ["a", "b"])
    await seeding.outcomes(db_pool, "good", "a", completed=300, successes=270, started_at=EARLIER)
    await seeding.outcomes(db_pool, "good", "b", completed=300, successes=150, started_at=EARLIER)
    assert await retire_losers(db_pool, loose) == []


async def test_last_active_variant_is_never_retired(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "solo", ["only"])
    await seeding.outcomes(db_pool, "solo", "only", completed=500, successes=1, started_at=EARLIER)
    await register(db_pool, "pair", ["x", "y"])
    await seeding.outcomes(db_pool, "pair", "x", completed=300, successes=3, started_at=EARLIER)
    await seeding.outcomes(db_pool, "pair", "y", completed=300, successes=30, started_at=EARLIER)

    retired = await retire_losers(db_pool, SETTINGS)

    # Both pair variants are below the threshold; the better one stays.
    assert [(r.script_name, r.variant) for r in retired] == [("pair", "x")]
    assert await statuses(db_pool, "solo") == {"only": "active"}
    assert await statuses(db_pool, "pair") == {"x": "retired", "y": "active"}
    with pytest.raises(VariantError, match="last active variant"):
        await retire_variant(db_pool, "pair", "y", actor="admin", reason="test")
    with pytest.raises(VariantError, match="last active variant"):
        await retire_variant(db_pool, "solo", "only", actor="admin", reason="test")


async def test_restore_undoes_and_only_new_calls_count_afterwards(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b"])
    await seeding.outcomes(db_pool, "order", "a", completed=300, successes=120, started_at=EARLIER)
    await seeding.outcomes(db_pool, "order", "b", completed=300, successes=30, started_at=EARLIER)
    assert [r.variant for r in await retire_losers(db_pool, SETTINGS)] == ["b"]

    await restore_variant(db_pool, "order", "b", actor="ops")
    assert await statuses(db_pool, "order") == {"a": "active", "b": "active"}
    [b] = [v for v in await list_variants(db_pool, "order") if v.variant == "b"]
    assert b.retired_at is None
    assert b.evidence["restored_by"] == "ops" and b.evidence["p_value"] < 0.05
    # The calls that got it retired no longer count against it.
    assert await retire_losers(db_pool, SETTINGS) == []

    after = datetime.fromisoformat(b.evidence["restored_at"]) + timedelta(seconds=1)
    await seeding.outcomes(db_pool, "order", "b", completed=200, successes=10, started_at=after)
    [again] = await retire_losers(db_pool, SETTINGS)
    assert again.variant == "b" and again.evidence["variant"]["completed"] == 200
    [b] = [v for v in await list_variants(db_pool, "order") if v.variant == "b"]
    assert b.evidence["previous"]["restored_by"] == "ops"


async def test_admin_retire_and_restore_errors(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b"])
    await retire_variant(db_pool, "order", "b", actor="ops", reason="wording is off")
    [b] = [v for v in await list_variants(db_pool, "order") if v.variant == "b"]
    assert (b.status, b.evidence["retired_by"], b.evidence["reason"]) == (
        "retired",
        "admin",
        "wording is off",
    )
    with pytest.raises(VariantError, match="already retired"):
        await retire_variant(db_pool, "order", "b", actor="ops", reason="again")
    with pytest.raises(VariantError, match="is not retired"):
        await restore_variant(db_pool, "order", "a", actor="ops")
    with pytest.raises(VariantError, match="no variant 'zz'"):
        await retire_variant(db_pool, "order", "zz", actor="ops", reason="x")
    with pytest.raises(VariantError, match="no script named 'nope'"):
        await restore_variant(db_pool, "nope", "a", actor="ops")


def test_judge_boundary_at_exactly_min_calls() -> None:
    best = VariantOutcome("a", "active", 100, 50)
    at_min = VariantOutcome("b", "active", 100, 5)
    below_min = VariantOutcome("c", "active", 99, 0)
    retired = VariantOutcome("d", "retired", 1000, 0)
    verdicts = judge([best, at_min, below_min, retired], SETTINGS)
    assert [v.variant for v in verdicts] == ["b"]


async def test_thompson_prefers_the_better_variant(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b"])
    await seeding.outcomes(db_pool, "order", "a", completed=60, successes=30, started_at=EARLIER)
    await seeding.outcomes(db_pool, "order", "b", completed=60, successes=20, started_at=EARLIER)
    allocator = VariantAllocator(db_pool, SETTINGS, rng=random.Random(7))
    picks = Counter([await allocator.choose("order", ["a", "b"]) for _ in range(300)])
    assert picks["a"] > 0.8 * 300
    assert picks["b"] > 0  # the loser still gets the occasional call while it is uncertain


async def test_thompson_without_data_explores_both(db_pool: asyncpg.Pool) -> None:
    rng = random.Random(11)
    picks = Counter(
        [await choose_variant(db_pool, "fresh", ["a", "b"], settings=SETTINGS, rng=rng)
         for _ in range(300)]
    )  # fmt: skip
    assert 90 < picks["a"] < 210 and picks["a"] + picks["b"] == 300
    # Declaring the variants registered them, active, for the retirement job.
    assert await statuses(db_pool, "fresh") == {"a": "active", "b": "active"}


async def test_retired_variants_get_no_calls(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b", "c"])
    await retire_variant(db_pool, "order", "a", actor="ops", reason="test")
    allocator = VariantAllocator(db_pool, SETTINGS, rng=random.Random(3))
    picks = Counter([await allocator.choose("order", ["a", "b", "c"]) for _ in range(200)])
    assert picks["a"] == 0 and picks["b"] > 0 and picks["c"] > 0
    fixed = SETTINGS.model_copy(
        update={"allocation": "fixed", "fixed_split": {"order": {"a": 5.0, "b": 1.0}}}
    )
    allocator = VariantAllocator(db_pool, fixed, rng=random.Random(3))
    picks = Counter([await allocator.choose("order", ["a", "b", "c"]) for _ in range(50)])
    # a is retired and c has no weight in the split: everything goes to b.
    assert picks == {"b": 50}


async def test_fixed_split_follows_the_weights(db_pool: asyncpg.Pool) -> None:
    fixed = AbSettings(allocation="fixed", fixed_split={"order": {"a": 0.8, "b": 0.2}})
    allocator = VariantAllocator(db_pool, fixed, rng=random.Random(5))
    picks = Counter([await allocator.choose("order", ["a", "b"]) for _ in range(500)])
    assert 0.72 < picks["a"] / 500 < 0.88


async def test_every_declared_variant_retired_still_allocates(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b"])
    await retire_variant(db_pool, "order", "a", actor="ops", reason="test")
    # The script now declares only the retired variant: calls must still go out.
    assert await choose_variant(db_pool, "order", ["a"], settings=SETTINGS) == "a"


@pytest.mark.parametrize("bad", [[], [""], ["a", "  "]])
async def test_bad_variant_lists_are_refused(db_pool: asyncpg.Pool, bad: list[str]) -> None:
    with pytest.raises(VariantError):
        await choose_variant(db_pool, "order", bad)


def test_bad_ab_settings_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least one weight"):
        AbSettings(fixed_split={"order": {"a": 0.0}})
    with pytest.raises(ValidationError, match="must be >= 0"):
        AbSettings(fixed_split={"order": {"a": -1.0, "b": 2.0}})
    with pytest.raises(ValidationError):
        AbSettings(confidence=1.0)
    with pytest.raises(ValidationError):
        AbSettings(allocation="roundrobin")
    with pytest.raises(ValidationError):
        AbSettings(min_calls=0)


async def test_retirement_job_runs_a_pass_and_stops(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b"])
    await seeding.outcomes(db_pool, "order", "a", completed=300, successes=120, started_at=EARLIER)
    await seeding.outcomes(db_pool, "order", "b", completed=300, successes=30, started_at=EARLIER)
    job = RetirementJob(db_pool, SETTINGS)
    job.start()
    # The first pass runs at start; poll the database for its effect rather than timing it.
    for _ in range(500):
        if (await statuses(db_pool, "order"))["b"] == "retired":
            break
        await asyncio.sleep(0.01)
    await job.stop()
    assert await statuses(db_pool, "order") == {"a": "active", "b": "retired"}


async def test_allocator_rereads_counts_as_often_as_configured(db_pool: asyncpg.Pool) -> None:
    await register(db_pool, "order", ["a", "b"])
    every_call = SETTINGS.model_copy(update={"allocation_refresh_s": 0})
    hourly = SETTINGS.model_copy(update={"allocation_refresh_s": 3600})
    fresh = VariantAllocator(db_pool, every_call, rng=random.Random(1))
    cached = VariantAllocator(db_pool, hourly, rng=random.Random(1))
    for allocator in (fresh, cached):
        await allocator.choose("order", ["a", "b"])
    await retire_variant(db_pool, "order", "a", actor="ops", reason="test")
    assert {await fresh.choose("order", ["a", "b"]) for _ in range(30)} == {"b"}
    # The hourly allocator still works from the counts it read before the retirement.
    assert "a" in {await cached.choose("order", ["a", "b"]) for _ in range(30)}
