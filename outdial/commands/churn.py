"""`outdial models train|evaluate|score|labels churn`: the churn-risk model (analytics/churn.py).

Registered on the `models` app by outdial.cli. Churn is the only model these commands know
today; the argument keeps room for others.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analytics.churn import (
    ChurnModelError,
    ChurnScorer,
    Evaluation,
    Trained,
    evaluate,
    rescore_waiting,
    train,
)
from outdial.commands.report import open_database
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from store.churn import Label, StoredModel, latest_model, leads_by_external_id, upsert_labels
from store.engagement import usable_leads
from store.labelrows import LabelFileError, LabelRow, read_label_file


class Model(StrEnum):
    churn = "churn"


ModelArg = Annotated[Model, typer.Argument(help="The model: churn.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _config(ctx: typer.Context) -> Config:
    return cli_state(ctx).loaded.config


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _print_evaluation(evaluation: Evaluation, title: str) -> None:
    console = Console()
    table = Table(title=title)
    for column in ("", "AUC", "Brier", "ECE"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("model", f"{evaluation.auc:.3f}", f"{evaluation.brier:.3f}",
                  f"{evaluation.ece:.3f}")  # fmt: skip
    table.add_row("baseline (RFM only)", f"{evaluation.baseline_auc:.3f}",
                  f"{evaluation.baseline_brier:.3f}", f"{evaluation.baseline_ece:.3f}")  # fmt: skip
    console.print(table)
    calibration = Table(title="calibration on the hold-out (leads sorted by predicted risk)")
    for column in ("predicted", "observed", "leads"):
        calibration.add_column(column, justify="right")
    for band in evaluation.calibration:
        calibration.add_row(_pct(band.predicted), _pct(band.observed), str(band.leads))
    console.print(calibration)
    console.print(
        f"trained on {evaluation.train} labels ({evaluation.train_churned} churned), "
        f"judged on the {evaluation.test} seen from {evaluation.split_at} on "
        f"({evaluation.test_churned} churned)"
    )


async def _train(config: Config) -> Trained:
    async with open_database(config) as db:
        try:
            return await train(db.pool, config.analytics.churn, config.analytics.rfm)
        except ChurnModelError as exc:
            raise UserError(str(exc)) from exc


def train_command(ctx: typer.Context, model: ModelArg, as_json: JsonOpt = False) -> None:
    """Train MODEL on the labels so far, judged on a time-based hold-out; store a new version."""
    del model  # churn is the only one
    trained = run_async(_train(_config(ctx)))
    if as_json:
        typer.echo(json.dumps({"version": trained.version, "labels": trained.labels,
                               **trained.evaluation.as_json()}))  # fmt: skip
        return
    _print_evaluation(trained.evaluation, f"churn model version {trained.version}")


async def _evaluate(config: Config) -> tuple[Evaluation, StoredModel | None]:
    async with open_database(config) as db:
        try:
            evaluation = await evaluate(db.pool, config.analytics.churn, config.analytics.rfm)
        except ChurnModelError as exc:
            raise UserError(str(exc)) from exc
        return evaluation, await latest_model(db.pool)


def evaluate_command(ctx: typer.Context, model: ModelArg, as_json: JsonOpt = False) -> None:
    """Judge MODEL on the latest labels (time-based hold-out) beside the RFM-only baseline:
    AUC, Brier score, calibration."""
    del model
    evaluation, stored = run_async(_evaluate(_config(ctx)))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **evaluation.as_json(),
                    "model_version": stored.version if stored else None,
                    "trained_at": stored.trained_at.isoformat() if stored else None,
                }
            )
        )
        return
    _print_evaluation(evaluation, "churn model on the time-based hold-out")
    if stored is None:
        Console().print("no model stored yet: `outdial models train churn`")


async def _score(config: Config) -> int:
    async with open_database(config) as db:
        scorer = ChurnScorer(config.analytics.churn, config.analytics.rfm)
        if await scorer.model(db.pool) is None:
            raise UserError("no churn model yet: `outdial models train churn` first")
        return await rescore_waiting(db.pool, scorer)


def score_command(ctx: typer.Context, model: ModelArg) -> None:
    """Score every lead waiting to be dialled with the newest MODEL and set its priority
    (RFM plus `analytics.churn.priority_weight` points for a risk of 1)."""
    del model
    typer.echo(f"scored {run_async(_score(_config(ctx)))} waiting leads")


async def _import(config: Config, rows: list[LabelRow], key: str, campaign: str | None) -> int:
    async with open_database(config) as db:
        if key == "external_id":
            if campaign is None:
                raise UserError("the file names leads by external_id: give --campaign")
            found = await leads_by_external_id(db.pool, campaign, [r.key for r in rows])
        else:
            ids = [int(r.key) for r in rows]
            found = {str(i): i for i in await usable_leads(db.pool, ids)}
        missing = [r for r in rows if r.key not in found]
        if missing:
            lines = "\n".join(f"line {r.line}: no lead {r.key!r}" for r in missing[:20])
            more = f"\n(and {len(missing) - 20} more)" if len(missing) > 20 else ""
            raise UserError(f"nothing imported; unknown leads:\n{lines}{more}")
        labels = [Label(found[r.key], r.churned, r.observed_at) for r in rows]
        async with db.pool.acquire() as conn, conn.transaction():
            return await upsert_labels(conn, labels, "import")


def labels_command(
    ctx: typer.Context,
    model: ModelArg,
    file: Annotated[
        Path, typer.Argument(help="CSV: lead_id or external_id, churned[, observed_at].")
    ],
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Campaign of the external ids.")
    ] = None,
) -> None:
    """Import MODEL's labels from a CSV file: all rows or (on any error) none."""
    del model
    try:
        key, rows = read_label_file(file)
    except LabelFileError as exc:
        raise UserError(str(exc)) from exc
    count = run_async(_import(_config(ctx), rows, key, campaign))
    typer.echo(f"imported {count} churn labels from {file}")
