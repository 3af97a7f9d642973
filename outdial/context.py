"""What every CLI command shares: the config file choice, loaded once on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import typer

from outdial.config import ConfigError, LoadedConfig, load_config, secrets_in_file

T = TypeVar("T")

# `metavar=FLAG` on a boolean option: typer 0.29 with click 8.5 shows flags as `--json <bool>`,
# which reads as if the option took a value.
FLAG = ""


@dataclass
class CliState:
    config_path: Path | None = None
    # --strict: what would be a warning about the config file is an error.
    strict: bool = False
    _loaded: LoadedConfig | None = field(default=None, repr=False)

    @property
    def loaded(self) -> LoadedConfig:
        if self._loaded is None:
            loaded = load_config(self.config_path)
            self._report_secrets(loaded)
            self._loaded = loaded
        return self._loaded

    def _report_secrets(self, loaded: LoadedConfig) -> None:
        """Secrets written in the file: a warning on stderr, an error under --strict."""
        if loaded.source is None:
            return
        found = secrets_in_file(loaded.source.read_text(encoding="utf-8"), str(loaded.source))
        if found and self.strict:
            raise ConfigError("\n".join(f"{line} (--strict)" for line in found))
        for line in found:
            typer.secho(f"warning: {line}", err=True, fg=typer.colors.YELLOW)


def cli_state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
