"""RFM lead scoring and the `leads score` / `variants` commands, end to end on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from analytics.rfm import ScoringError, quantile_scores, score_campaign
from analytics.settings import RfmSettings
from outdial.errors import UserError
from store.scripts import list_variants, register_variants
from tests.analytics import seeding
from tests.analytics.cli import invoke

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def days_ago(days: int) -> str:
    return (NOW - timedelta(days=days)).date().isoformat()


def test_quantiles_share_ties_and_give_missing_zero() -> None:
    assert quantile_scores([10, 20, 20, 30, None, 40], 5) == [1, 2, 2, 4, 0, 5]
    assert quantile_scores([None, None], 5) == [0, 0]
    assert quantile_scores([], 5) == []
    # Ten distinct values: two per quintile.
    assert quantile_scores(list(range(10)), 5) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


async def seed_leads(pool: asyncpg.Pool) -> dict[str, int]:
    """Six leads; the scores below were worked out by hand.

    recency (4 usable: L4 30 d, L2 10 d, L3 5 d, L1 1 d) -> 1, 2, 3, 4; L5, L6 -> 0
    frequency (5 usable: L2 1, L5 2, L1 3, L3 3, L4 7) -> 1, 2, 3, 3, 5; L6 (a boolean) -> 0
    monetary (5 usable: L6 10, L3 50, L1 100.5, L5 300, L2 "1,200") -> 1..5; L4 ("n/a") -> 0
    """
    spring = await seeding.campaign(pool, "spring", "order")
    other = await seeding.campaign(pool, "other", "order")
    fields = {
        "L1": {"last_purchase": days_ago(1), "purchases": "3", "total_spent": "100.50"},
        "L2": {"last_purchase": days_ago(10), "purchases": 1, "total_spent": "1,200"},
        "L3": {"last_purchase": days_ago(5), "purchases": 3, "total_spent": 50},
        "L4": {"last_purchase": days_ago(30), "purchases": 7, "total_spent": "n/a"},
        "L5": {"purchases": 2, "total_spent": 300},
        "L6": {"last_purchase": "not a date", "purchases": True, "total_spent": 10},
    }
    ids = {}
    for n, (name, values) in enumerate(fields.items()):
        ids[name] = await seeding.lead(pool, spring, f"+1555000010{n}", fields=values)
    ids["other"] = await seeding.lead(pool, other, "+15550000200", fields=fields["L1"])
    return ids


async def priorities(pool: asyncpg.Pool, ids: dict[str, int]) -> dict[str, int]:
    rows = await pool.fetch("SELECT id, priority FROM leads")
    by_id = {r["id"]: r["priority"] for r in rows}
    return {name: by_id[i] for name, i in ids.items()}


async def test_rfm_priorities_per_campaign(db_pool: asyncpg.Pool) -> None:
    ids = await seed_leads(db_pool)
    summary = await score_campaign(db_pool, "spring", RfmSettings(), now=NOW)
    assert summary.leads == 6
    assert summary.missing == {"recency": 2, "frequency": 1, "monetary": 1}
    assert await priorities(db_pool, ids) == {
        "L1": 433,
        "L2": 215,
        "L3": 332,
        "L4": 150,
        "L5": 24,
        "L6": 1,
        "other": 0,  # another campaign is left alone
    }
    # The dialer leases in priority order: the best RFM cell first.
    order = await db_pool.fetch(
        """SELECT id FROM leads WHERE campaign_id = (SELECT id FROM campaigns WHERE name = 'spring')
           ORDER BY priority DESC"""
    )
    assert [r["id"] for r in order] == [ids[n] for n in ("L1", "L3", "L2", "L4", "L5", "L6")]


async def test_rfm_with_days_and_custom_fields_and_weights(db_pool: asyncpg.Pool) -> None:
    campaign_id = await seeding.campaign(db_pool, "spring", "order")
    settings = RfmSettings(
        recency_field="days_since",
        recency_kind="days",
        frequency_field="orders",
        monetary_field="ltv",
        bins=2,
        weight_r=1,
        weight_f=1,
        weight_m=1,
    )
    near = await seeding.lead(
        db_pool, campaign_id, "+15550000301", fields={"days_since": "2", "orders": 9, "ltv": 90}
    )
    far = await seeding.lead(
        db_pool, campaign_id, "+15550000302", fields={"days_since": 40, "orders": 1, "ltv": 10}
    )
    await score_campaign(db_pool, "spring", settings, now=NOW)
    assert await priorities(db_pool, {"near": near, "far": far}) == {"near": 6, "far": 3}


async def test_rfm_unknown_campaign(db_pool: asyncpg.Pool) -> None:
    with pytest.raises(ScoringError, match="no campaign named 'ghost'"):
        await score_campaign(db_pool, "ghost", RfmSettings())


async def test_cli_leads_score(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> None:
    ids = await seed_leads(db_pool)
    result = await invoke(
        "leads", "score", "--campaign", "spring", pg_url=pg_url, tmp_path=tmp_path
    )
    assert result.exit_code == 0, result.output
    assert "scored 6 leads of campaign spring" in result.stdout
    assert "2 without a usable recency field ('last_purchase')" in result.stdout
    # Scored against today, not NOW: recency order is the same, so the priorities are too.
    assert (await priorities(db_pool, ids))["L1"] == 433

    result = await invoke("leads", "score", "--campaign", "ghost", pg_url=pg_url, tmp_path=tmp_path)
    assert isinstance(result.exception, UserError)
    assert "no campaign named 'ghost'" in str(result.exception)
    result = await invoke("leads", "score", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 2 and "--campaign" in result.stderr
    result = await invoke(
        "leads", "score", "--campaign", "spring", pg_url=pg_url, tmp_path=tmp_path,
        config="analytics:\n  rfm: {bins: 1}\n",
    )  # fmt: skip
    assert isinstance(result.exception, UserError)
    assert "analytics.rfm.bins" in str(result.exception)


async def test_cli_variants_list_retire_restore_review(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path
) -> None:
    async with db_pool.acquire() as conn:
        await register_variants(conn, "order", ["a", "b"])
    earlier = datetime.now(UTC) - timedelta(hours=1)
    await seeding.outcomes(db_pool, "order", "a", completed=300, successes=120, started_at=earlier)
    await seeding.outcomes(db_pool, "order", "b", completed=300, successes=30, started_at=earlier)
    config = "analytics:\n  ab: {min_calls: 100, success_threshold: 0.2}\n"

    async def ok(*args: str) -> str:
        result = await invoke(*args, pg_url=pg_url, tmp_path=tmp_path, config=config)
        assert result.exit_code == 0, result.output
        return result.stdout

    async def refused(*args: str) -> str:
        result = await invoke(*args, pg_url=pg_url, tmp_path=tmp_path, config=config)
        assert isinstance(result.exception, UserError), result.output
        return str(result.exception)

    assert "retired order/b: 30/300 vs a 120/300" in await ok("variants", "review")
    listing = await ok("variants", "list", "--script", "order")
    assert "retired" in listing and "40.0%" in listing and "10.0%" in listing
    last = await refused("variants", "retire", "order", "a", "--reason", "x")
    assert "last active variant" in last
    assert "restored order/b" in await ok("variants", "restore", "order", "b")
    assert {v.variant: v.status for v in await list_variants(db_pool, "order")} == {
        "a": "active",
        "b": "active",
    }
    assert "no variant meets the retirement rule" in await ok("variants", "review")
    assert "retired order/b" in await ok("variants", "retire", "order", "b", "--reason", "wording")
    assert "no variant 'zz'" in await refused("variants", "restore", "order", "zz")
    assert "no script named 'nope'" in await refused("variants", "list", "--script", "nope")
    result = await invoke("variants", "retire", "order", "a", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 2 and "--reason" in result.stderr
