"""The `outdial` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from langpacks.install import ModelsError
from outdial.commands import api as api_cmd
from outdial.commands import calls as calls_cmd
from outdial.commands import campaign as campaign_cmd
from outdial.commands import check as check_cmd
from outdial.commands import churn as churn_cmd
from outdial.commands import config as config_cmd
from outdial.commands import db as db_cmd
from outdial.commands import demo as demo_cmd
from outdial.commands import leads as leads_cmd
from outdial.commands import models as models_cmd
from outdial.commands import privacy as privacy_cmd
from outdial.commands import report as report_cmd
from outdial.commands import run as run_cmd
from outdial.commands import scoring as scoring_cmd
from outdial.commands import script as script_cmd
from outdial.commands import top as top_cmd
from outdial.commands import variants as variants_cmd
from outdial.context import cli_state
from outdial.errors import UserError

app = typer.Typer(
    help="outdial: AI outbound calling beside an Asterisk PBX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(api_cmd.app, name="api")
app.add_typer(calls_cmd.app, name="calls", no_args_is_help=True)
app.add_typer(campaign_cmd.app, name="campaign")
app.command("check")(check_cmd.check)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.command("demo")(demo_cmd.demo)
leads_cmd.app.command("score")(scoring_cmd.score)
leads_cmd.app.command("forget")(privacy_cmd.forget)
leads_cmd.app.command("export")(privacy_cmd.export)
app.add_typer(leads_cmd.app, name="leads")
models_cmd.app.command("train")(churn_cmd.train_command)
models_cmd.app.command("evaluate")(churn_cmd.evaluate_command)
models_cmd.app.command("score")(churn_cmd.score_command)
models_cmd.app.command("labels")(churn_cmd.labels_command)
app.add_typer(models_cmd.app, name="models")
app.add_typer(privacy_cmd.app, name="privacy")
app.command("report")(report_cmd.report)
app.command("run")(run_cmd.run)
app.add_typer(script_cmd.app, name="script")
app.command("top")(top_cmd.top)
app.add_typer(variants_cmd.app, name="variants")


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default: $OUTDIAL_CONFIG, ./outdial.yaml, "
            "/etc/outdial/outdial.yaml, else built-in defaults).",
            dir_okay=False,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Treat warnings about the config as errors: secrets written in the file, "
            "and the WARN lines of `outdial check`.",
        ),
    ] = False,
) -> None:
    state = cli_state(ctx)
    state.config_path = config
    state.strict = strict


# What the operator can fix: printed as one line, exit 1, no traceback.
OPERATOR_ERRORS = (UserError, ModelsError)


def main() -> None:
    try:
        app()
    except OPERATOR_ERRORS as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)


if __name__ == "__main__":
    main()
