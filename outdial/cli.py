"""The `outdial` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from outdial.commands import config as config_cmd
from outdial.commands import db as db_cmd
from outdial.context import cli_state
from outdial.errors import UserError

app = typer.Typer(
    help="outdial: AI outbound calling beside an Asterisk PBX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")


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
) -> None:
    cli_state(ctx).config_path = config


def main() -> None:
    try:
        app()
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)


if __name__ == "__main__":
    main()
