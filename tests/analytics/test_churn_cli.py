"""`outdial models train|evaluate|score|labels churn` on PostgreSQL, fed by a simulated
history (a development seed: the held-out ones are in test_history_models.py)."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from outdial.config import Config
from outdial.errors import UserError
from outdial.simulate import HistorySettings, judge_world, simulate_history
from store.settings import DatabaseSettings
from tests.analytics.cli import invoke


async def test_no_labels_is_a_one_line_error(pg_url: str, tmp_path: Path) -> None:
    for command in ("train", "evaluate"):
        result = await invoke("models", command, "churn", pg_url=pg_url, tmp_path=tmp_path)
        assert isinstance(result.exception, UserError), result.output
        assert "0 labelled customers; at least 40 are needed" in str(result.exception)
    result = await invoke("models", "score", "churn", pg_url=pg_url, tmp_path=tmp_path)
    assert "no churn model yet" in str(result.exception)


async def test_train_evaluate_and_score_a_simulated_history(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path
) -> None:
    config = Config(database=DatabaseSettings(url=SecretStr(pg_url)))
    settings = HistorySettings(customers=300, weeks=5, seed=7, policy="always_call")
    history = await simulate_history(db_pool, config, settings)

    result = await invoke("models", "evaluate", "churn", "--json", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.output.splitlines()[-1])
    assert 0.5 < evaluation["auc"] <= 1 and 0 <= evaluation["baseline_auc"] <= 1
    assert evaluation["train"] + evaluation["test"] == history.labels
    assert evaluation["model_version"] is None  # nothing trained yet
    assert len(evaluation["calibration"]) == 10

    result = await invoke("models", "train", "churn", "--json", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.output.splitlines()[-1])
    assert (trained["version"], trained["labels"]) == (1, history.labels)
    stored = await db_pool.fetchrow("SELECT features, metrics FROM churn_models")
    assert "silence_ratio" in stored["features"] and stored["metrics"]["auc"] == trained["auc"]

    # A waiting lead gets its risk and its lease priority: RFM plus the risk's weight.
    lead = history.lead_of[0]
    await db_pool.execute(
        """UPDATE campaigns SET status = 'active';
           UPDATE leads SET status = 'pending', priority = 0"""
    )
    result = await invoke("models", "score", "churn", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    waiting = await db_pool.fetchval("SELECT count(*) FROM leads")  # one per person and week
    assert f"scored {waiting} waiting leads" in result.output
    score, priority = await db_pool.fetchrow(
        """SELECT s.score, l.priority FROM churn_scores s JOIN leads l ON l.id = s.lead_id
           WHERE s.lead_id = $1""",
        lead,
    )
    assert priority >= round(score * config.analytics.churn.priority_weight)

    result = await invoke("models", "evaluate", "churn", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    assert "baseline (RFM only)" in result.output and "calibration" in result.output


async def test_label_files_are_imported_whole_or_not_at_all(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path
) -> None:
    await db_pool.execute(
        """INSERT INTO scripts (name) VALUES ('s');
           INSERT INTO campaigns (name, script_name) VALUES ('spring', 's');
           INSERT INTO leads (id, campaign_id, external_id, phone_e164, timezone)
           SELECT i, 1, 'crm-' || i, '+1415555' || (1000 + i), 'UTC'
           FROM generate_series(1, 3) AS i"""
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("lead_id,churned,observed_at\n1,yes,2026-05-01\n2,maybe,\n3,no,last week\n")
    result = await invoke("models", "labels", "churn", str(bad), pg_url=pg_url, tmp_path=tmp_path)
    assert isinstance(result.exception, UserError)
    assert f"{bad}:3: churned: 'maybe'" in str(result.exception)
    assert f"{bad}:4: observed_at: 'last week'" in str(result.exception)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("lead_id,churned\n1,yes\n99,no\n")
    result = await invoke(
        "models", "labels", "churn", str(unknown), pg_url=pg_url, tmp_path=tmp_path
    )
    assert "line 3: no lead '99'" in str(result.exception)
    assert await db_pool.fetchval("SELECT count(*) FROM churn_labels") == 0

    good = tmp_path / "good.csv"
    good.write_text("external_id,churned\ncrm-1,yes\ncrm-3,no\n")
    result = await invoke("models", "labels", "churn", str(good), pg_url=pg_url, tmp_path=tmp_path)
    assert "give --campaign" in str(result.exception)
    result = await invoke(
        "models", "labels", "churn", str(good), "--campaign", "spring",
        pg_url=pg_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = await db_pool.fetch("SELECT lead_id, churned, source FROM churn_labels ORDER BY 1")
    assert [tuple(r) for r in rows] == [(1, True, "import"), (3, False, "import")]


@pytest.mark.slow
async def test_a_judged_world_leaves_no_database_behind(db_pool: asyncpg.Pool, pg_url: str) -> None:
    """What `outdial demo --history` and bench/decisions.py run, on a small world."""
    config = Config(database=DatabaseSettings(url=SecretStr(pg_url)))
    world = await judge_world(
        pg_url, config, 8, churn_customers=200, churn_weeks=5, channel_customers=60,
        channel_weeks=4,
    )  # fmt: skip
    figures = world.as_json()
    assert figures["churn"]["test"] == 50 and 0 <= figures["churn"]["auc"] <= 1
    engagement = figures["engagement_per_contact"]
    assert world.always_call.contacts > 0 and world.planner.contacts > 0
    assert engagement["gain"] == pytest.approx(
        engagement["planner"] - engagement["always_call"], abs=1e-3
    )
    left = await db_pool.fetchval(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'outdial_sim_%'"
    )
    assert left == 0
    # The simulated worlds never touched the database they were run beside.
    assert await db_pool.fetchval("SELECT count(*) FROM leads") == 0
