"""`outdial run`: the daemon."""

from __future__ import annotations

import typer

from outdial.context import cli_state, run_async
from outdial.logging import config_secrets, setup_logging


def run(ctx: typer.Context) -> None:
    """Run the daemon: dialer, FastAGI and AudioSocket listeners, metrics (Ctrl-C or SIGTERM
    drains and exits 0; SIGHUP reloads the scripts)."""
    # The config first: a bad value must fail here, in a second, not after the models load.
    config = cli_state(ctx).loaded.config
    # The daemon's imports load every model library: only when the command runs.
    from outdial.daemon import run_daemon

    setup_logging(config.log, secrets=config_secrets(config))
    run_async(run_daemon(config))
