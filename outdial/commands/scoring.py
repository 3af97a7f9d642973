"""`outdial leads score`: RFM priorities for a campaign's leads (registered by the leads app)."""

from __future__ import annotations

from typing import Annotated

import typer

from analytics.rfm import ScoreSummary, ScoringError, score_campaign
from outdial.commands.report import open_database
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError


async def _score(config: Config, campaign: str) -> ScoreSummary:
    async with open_database(config) as db:
        try:
            return await score_campaign(
                db.pool,
                campaign,
                config.analytics.rfm,
                churn_weight=config.analytics.churn.priority_weight,
            )
        except ScoringError as exc:
            raise UserError(str(exc)) from exc


def score(
    ctx: typer.Context,
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign whose leads to score.")],
) -> None:
    """Set each lead's priority from its RFM score (quintiles within the campaign), plus its
    churn risk's points when it has a churn score."""
    config = cli_state(ctx).loaded.config
    summary = run_async(_score(config, campaign))
    rfm = config.analytics.rfm
    typer.echo(f"scored {summary.leads} leads of campaign {summary.campaign}")
    fields = {"recency": rfm.recency_field, "frequency": rfm.frequency_field,
              "monetary": rfm.monetary_field}  # fmt: skip
    for measure, count in summary.missing.items():
        if count:
            typer.echo(f"  {count} without a usable {measure} field ({fields[measure]!r}): score 0")
    for priority, count in summary.priorities.items():
        typer.echo(f"  priority {priority}: {count}")
