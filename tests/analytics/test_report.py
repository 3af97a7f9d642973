"""Report numbers against a seeded data set whose figures were worked out by hand."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from rich.console import Console

from analytics.evaluation import Window, evaluate
from outdial.commands.report import render_table
from store.scripts import VariantStats
from tests.analytics import seeding
from tests.analytics.cli import invoke

NOW = datetime.now(UTC)
RECENT = NOW - timedelta(minutes=30)
THREE_DAYS_AGO = NOW - timedelta(days=3)
NINE_DAYS_AGO = NOW - timedelta(days=9)


async def seed(pool: asyncpg.Pool) -> None:
    """Two campaigns on script `order` with variants a and b, plus older calls.

    order/a, last 24 h, all campaigns: calls c1..c5 (spring) and c8 (autumn) = 6 calls;
      completed: c1, c2, c3 (transferred), c8 = 4; successes c1, c3, c8 = 3 -> 0.75;
      durations 60, 30, 90, 100 -> avg 70 -> efficiency 1/70.1; transfers 1 -> 0.25;
      opt-outs c2 (turn intent) -> 0.25; compliance hits: c3 one -> 1.
    order/b, last 24 h: c6 (success, 40 s), c7 (failure, 20 s, opt-out event + profanity);
      completed 2, successes 1 -> 0.5; avg 30; opt-outs 1 -> 0.5; compliance hits 2.
    order/b, last 7 d adds c10 (3 days ago, failure, 50 s): completed 3, successes 1, avg 110/3.
    c9 (9 days ago) is in no window.
    """
    spring = await seeding.campaign(pool, "spring", "order")
    autumn = await seeding.campaign(pool, "autumn", "order")
    rows = [
        ("c1", spring, "a", RECENT, 60, "completed", True),
        ("c2", spring, "a", RECENT, 30, "completed", False),
        ("c3", spring, "a", RECENT, 90, "transferred", True),
        ("c4", spring, "a", RECENT, 5, "abandoned", None),
        ("c5", spring, "a", RECENT, None, None, None),
        ("c6", spring, "b", RECENT, 40, "completed", True),
        ("c7", spring, "b", RECENT, 20, "completed", False),
        ("c8", autumn, "a", RECENT, 100, "completed", True),
        ("c9", spring, "a", NINE_DAYS_AGO, 10, "completed", True),
        ("c10", spring, "b", THREE_DAYS_AGO, 50, "completed", False),
    ]
    for call_id, campaign_id, variant, started, duration, disposition, success in rows:
        await seeding.call(
            pool,
            call_id,
            campaign_id=campaign_id,
            script="order",
            variant=variant,
            started_at=started,
            duration_s=duration,
            disposition=disposition,
            success=success,
        )
    await seeding.turn(pool, "c2", 1, "affirm")
    await seeding.turn(pool, "c2", 2, "opt_out")
    await seeding.turn(pool, "c6", 1, "affirm")
    await seeding.compliance_event(pool, "c3", "complaint")
    await seeding.compliance_event(pool, "c7", "opt_out")
    await seeding.compliance_event(pool, "c7", "profanity")


def by_variant(stats: list[VariantStats]) -> dict[str | None, VariantStats]:
    assert {s.script_name for s in stats} == {"order"}
    return {s.variant: s for s in stats}


async def test_last_day_all_campaigns(db_pool: asyncpg.Pool) -> None:
    await seed(db_pool)
    stats = by_variant(await evaluate(db_pool, Window.last(timedelta(hours=24), NOW)))
    a, b = stats["a"], stats["b"]
    assert (a.calls, a.completed, a.successes) == (6, 4, 3)
    assert a.success_rate == pytest.approx(0.75)
    assert a.avg_duration_s == pytest.approx(70.0)
    assert a.efficiency == pytest.approx(1 / 70.1)
    assert (a.transfers, a.transfer_rate) == (1, pytest.approx(0.25))
    assert (a.opt_outs, a.opt_out_rate) == (1, pytest.approx(0.25))
    assert a.compliance_hits == 1
    assert (b.calls, b.completed, b.successes) == (2, 2, 1)
    assert b.success_rate == pytest.approx(0.5)
    assert b.avg_duration_s == pytest.approx(30.0)
    assert b.efficiency == pytest.approx(1 / 30.1)
    assert (b.transfers, b.transfer_rate) == (0, pytest.approx(0.0))
    assert (b.opt_outs, b.opt_out_rate) == (1, pytest.approx(0.5))
    assert b.compliance_hits == 2


async def test_campaign_filter_and_longer_window(db_pool: asyncpg.Pool) -> None:
    await seed(db_pool)
    spring = by_variant(await evaluate(db_pool, Window.last(timedelta(hours=24), NOW), "spring"))
    a = spring["a"]
    assert (a.calls, a.completed, a.successes) == (5, 3, 2)
    assert a.success_rate == pytest.approx(2 / 3)
    assert a.avg_duration_s == pytest.approx(60.0)
    assert a.transfer_rate == pytest.approx(1 / 3)
    assert a.opt_out_rate == pytest.approx(1 / 3)

    week = by_variant(await evaluate(db_pool, Window.last(timedelta(days=7), NOW)))
    b = week["b"]
    assert (b.calls, b.completed, b.successes) == (3, 3, 1)
    assert b.avg_duration_s == pytest.approx(110 / 3)
    assert week["a"].calls == 6  # c9 is older than 7 days


async def test_no_calls_gives_no_rows_not_zero_division(db_pool: asyncpg.Pool) -> None:
    await seeding.call(
        db_pool,
        "only-abandoned",
        campaign_id=None,
        script="order",
        variant="a",
        started_at=RECENT,
        duration_s=3,
        disposition="abandoned",
    )
    [row] = await evaluate(db_pool, Window.last(timedelta(hours=1), NOW))
    assert (row.calls, row.completed) == (1, 0)
    assert row.success_rate is None and row.avg_duration_s is None and row.efficiency is None


async def test_grafana_views(db_pool: asyncpg.Pool) -> None:
    await seed(db_pool)
    last_hour = {
        r["variant"]: r for r in await db_pool.fetch("SELECT * FROM analytics_script_last_hour")
    }
    assert set(last_hour) == {"a", "b"}
    assert last_hour["a"]["success_rate"] == pytest.approx(0.75)
    assert last_hour["b"]["compliance_hits"] == 2
    daily = await db_pool.fetch(
        """SELECT variant, sum(completed) AS completed, sum(successes) AS successes,
                  count(*) AS days
           FROM analytics_script_daily GROUP BY variant ORDER BY variant"""
    )
    # Every call ever made, by day: a has c9 on its own day, b has c10 on its own day.
    assert [(r["variant"], r["completed"], r["successes"], r["days"]) for r in daily] == [
        ("a", 5, 4, 2),
        ("b", 3, 1, 2),
    ]


async def run_cli(
    *args: str, pg_url: str, tmp_path: Path, config: str = ""
) -> tuple[int, str, str]:
    config_file = tmp_path / "outdial.yaml"
    config_file.write_text(config or "{}\n")
    env = {
        **os.environ,
        "OUTDIAL_DATABASE_URL": pg_url,
        "OUTDIAL_CONFIG": str(config_file),
        "OUTDIAL_STATE_DIR": str(tmp_path / "state"),
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from outdial.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_report_json_csv_and_table(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path
) -> None:
    await seed(db_pool)
    result = await invoke(
        "report", "--since", "24h", "--campaign", "spring", "--format", "json",
        pg_url=pg_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["campaign"] == "spring"
    rows = {r["variant"]: r for r in document["rows"]}
    assert (rows["a"]["calls"], rows["a"]["completed"], rows["a"]["successes"]) == (5, 3, 2)
    assert rows["b"]["opt_out_rate"] == pytest.approx(0.5)

    result = await invoke("report", "--since", "7d", "--format", "csv", pg_url=pg_url,
                          tmp_path=tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    parsed = {r["variant"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert parsed["b"]["completed"] == "3"
    assert float(parsed["b"]["avg_duration_s"]) == pytest.approx(110 / 3)

    result = await invoke("report", "--since", "1h", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    assert "75.0% (3)" in result.stdout and "50.0% (1)" in result.stdout


def _report_rows(script: str) -> list[dict[str, object]]:
    row = {"script_name": script, "variant": "concise", "status": "retired", "calls": 12345,
           "completed": 12000, "success_rate": 0.6667, "successes": 8000,
           "avg_duration_s": 123.4, "efficiency": 0.0081, "transfer_rate": 0.125,
           "opt_out_rate": 0.0333, "compliance_hits": 1234}  # fmt: skip
    return [row, {**row, "variant": "b"}]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_report_table_is_readable_at_the_terminals_width(width: int) -> None:
    script = "order_confirmation_en_spring_2026"
    console = Console(width=width, record=True, color_system=None)
    console.print(render_table(_report_rows(script), "Script effectiveness", width))
    text = console.export_text()
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    assert "…" not in text  # nothing cut: wrapped, or dropped and named
    # Every figure that is shown is whole: the script wraps, numbers never do.
    for figure in ("12345", "66.7% (8000)", "12.5%", "3.3%", "concise"):
        assert figure in text, figure
    assert "order_confir" in text and "2026" in text
    if width == 80:
        assert "not shown at this width:" in text and "effic." in text
        assert "0.0081" not in text
    if width == 200:
        assert "not shown" not in text
        assert all(f in text for f in ("0.0081", "123.4", "1234", "retired", "12000"))


async def test_cli_report_bad_input(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> None:
    result = await invoke("report", "--since", "yesterday", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 2 and "not a span like 1h" in result.stderr
    result = await invoke("report", "--since", "0h", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 2 and "not a span like 1h" in result.stderr
    result = await invoke("report", "--format", "xml", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 2 and "xml" in result.stderr
    # The real entry point: a one-line error and exit code 1, no traceback.
    code, out, err = await run_cli(
        "report", "--campaign", "nowhere", pg_url=pg_url, tmp_path=tmp_path
    )
    assert code == 1 and out == ""
    assert err.strip() == "error: no campaign named 'nowhere'"


async def test_cli_report_shows_grades_churn_risk_follow_ups_and_engagement(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path
) -> None:
    await seed(db_pool)
    await db_pool.execute(
        """UPDATE calls SET grade = CASE WHEN call_id IN ('c1', 'c3', 'c6') THEN 'A'
                                         ELSE 'D' END, grade_reason = 'rule'
           WHERE call_id IN ('c1', 'c2', 'c3', 'c6', 'c7', 'c8', 'c9')"""
    )
    spring = await db_pool.fetchval("SELECT id FROM campaigns WHERE name = 'spring'")
    leads = [await seeding.lead(db_pool, spring, f"+1415555010{i}") for i in range(3)]
    model = await db_pool.fetchval(
        """INSERT INTO churn_models (features, params, metrics, training)
           VALUES ('{}', '{}', '{}', '{}') RETURNING version"""
    )
    await db_pool.executemany(
        """INSERT INTO churn_scores (lead_id, model_version, score, top_features)
           VALUES ($1, $2, $3, '[]')""",
        [(leads[0], model, 0.05), (leads[1], model, 0.72), (leads[2], model, 0.78)],
    )
    await db_pool.executemany(
        """INSERT INTO follow_ups (lead_id, campaign_id, channel, reason, created_at)
           VALUES ($1, $2, $3, 'why', $4)""",
        [(leads[0], spring, "sms", RECENT), (leads[1], spring, "sms", RECENT),
         (leads[2], spring, None, RECENT), (leads[2], spring, "push", NINE_DAYS_AGO)],
    )  # fmt: skip
    await db_pool.executemany(
        """INSERT INTO engagement_events (lead_id, event_id, channel, kind, contact_id,
                                          responded, occurred_at)
           VALUES ($1, $2, 'sms', $3, $4, $5, $6)""",
        [(leads[0], "e1", "delivered", "m1", False, RECENT),
         (leads[0], "e2", "replied", "m1", True, RECENT),
         (leads[1], "e3", "delivered", "m2", False, RECENT)],
    )  # fmt: skip
    result = await invoke(
        "report", "--since", "24h", "--campaign", "spring", "--format", "json",
        pg_url=pg_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    grades = {(g["variant"], g["grade"]): g["calls"] for g in document["grades"]}
    # c8 is autumn's, c9 too old: spring's last 24 h only.
    assert grades == {("a", "A"): 2, ("a", "D"): 1, ("b", "A"): 1, ("b", "D"): 1}
    assert {b["band"]: b["leads"] for b in document["churn"]} == {0: 1, 7: 2}
    assert {f["channel"]: f["follow_ups"] for f in document["follow_ups"]} == {"sms": 2, None: 1}
    sms = next(e for e in document["engagement"] if e["channel"] == "sms")
    assert (sms["contacts"], sms["responses"]) == (2, 1)

    result = await invoke("report", "--since", "24h", pg_url=pg_url, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    # Titles wider than their table wrap: look for their first words.
    for title in ("Lead grades per script", "Churn risk", "Follow-ups chosen", "Engagement per"):
        assert title in result.stdout
    assert "70-80%" in result.stdout and "none allowed" in result.stdout
