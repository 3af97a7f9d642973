"""`outdial script ...`: validate conversation scripts and rehearse them in the terminal."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dialog import (
    Action,
    ComplianceHit,
    DialogEngine,
    Dtmf,
    EmotionScore,
    End,
    Event,
    Hangup,
    Listen,
    OptOut,
    Say,
    ScriptError,
    SetVariable,
    Silence,
    Transfer,
    Utterance,
    load_script,
    validate_script,
)
from dialog.cases import CaseFileError, CaseResult, cases_dir, load_cases
from dialog.graph import flow_graph, to_dot, to_mermaid
from dialog.scripttests import ScriptTestError, run_script_tests, stored_version_failures
from dialog.validate import read_script
from nlu.settings import NluSettings
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from store.db import Database
from store.scripts import (
    ScriptVersion,
    ScriptVersionError,
    promote_script_version,
    rollback_script,
    script_versions,
    stage_script_version,
)

if TYPE_CHECKING:
    from nlu.classifier import IntentClassifier, NluResult

app = typer.Typer(
    help="Validate, draw, test, rehearse, stage and promote conversation scripts.",
    no_args_is_help=True,
)
T = TypeVar("T")


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"


CHAT_HELP = (
    "Type what the customer says. Commands: /dtmf DIGIT, /silence (or an empty line), "
    "/emotion SCORE, /hangup. End with Ctrl-D."
)


@app.command("validate")
def validate(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Script files to check.")],
    skip_packs: Annotated[
        bool,
        typer.Option(
            "--skip-packs",
            help="Check the scripts only, not that this host has the language pack each needs "
            "(for writing scripts on a machine that does not serve them).",
        ),
    ] = False,
) -> None:
    """Print `FILE:LINE:COL: message` for every problem, and a line for every script whose
    language pack is not installed here; exit 1 if there is any."""
    console = Console(highlight=False, soft_wrap=True)
    problems = 0
    valid: dict[str, Path] = {}  # script name -> its file
    for path in files:
        issues = validate_script(path)
        problems += len(issues)
        for issue in issues:
            console.print(escape(str(issue)))
        if not issues:
            valid[load_script(path).script.name] = path
    if not skip_packs and valid:
        for name, why in _unservable(ctx, list(valid.values())).items():
            problems += 1
            console.print(escape(f"{valid[name]}: {why}"))
    if problems:
        raise typer.Exit(1)
    console.print(f"OK: {len(files)} script(s) valid")


def _unservable(ctx: typer.Context, files: list[Path]) -> dict[str, str]:
    """Scripts (by name) this host has no language pack for, with the one-line reason."""
    from langpacks.install import plan_packs  # the config is read only when packs are checked

    scripts = [load_script(path).script for path in files]
    return plan_packs(cli_state(ctx).loaded.config, scripts).refused


@app.command("chat")
def chat(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Script to rehearse.")],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="A lead field as NAME=VALUE (repeatable)."),
    ] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="A/B variant to use.")] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Where trained intent models are cached (default: the state directory's "
            "nlu-cache, shared with the daemon; OUTDIAL_STATE_DIR moves it).",
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Intent confidence below this is a no-match.")
    ] = NluSettings().threshold,
) -> None:
    """Rehearse a script: you play the customer, the bot answers (reads stdin)."""
    console = Console(highlight=False, soft_wrap=True)
    try:
        loaded = load_script(file)
    except ScriptError as exc:
        raise UserError(f"{file} does not validate:\n{exc}") from exc
    try:
        engine = DialogEngine(loaded.script, _parse_vars(var or []), variant)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if cache_dir is None:
        cache_dir = cli_state(ctx).loaded.config.state_dir / "nlu-cache"
    console.print(f"[dim]training intents for {loaded.script.language}...[/dim]")
    from nlu.classifier import IntentClassifier  # spaCy: only when chatting

    classifier = IntentClassifier.train(
        loaded.script.language,
        loaded.script.training_intents(),
        cache_dir,
        threshold=threshold,
        epochs=NluSettings().epochs,
    )
    console.print(f"[dim]{CHAT_HELP}[/dim]")
    _show(console, engine.start())
    for line in sys.stdin:
        if engine.finished:
            break
        event = _event(console, classifier, line.strip())
        if event is not None:
            _show(console, engine.handle(event))
    if not engine.finished:
        console.print(f"[dim]input ended at node {engine.node}[/dim]")


@app.command("graph")
def graph(
    file: Annotated[Path, typer.Argument(help="Script to draw.")],
    output_format: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="mermaid (Git hosting, editors), dot, or svg."),
    ] = GraphFormat.mermaid,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Draw the script's flow: nodes, intent/DTMF/no-input/no-match edges, handlers, emotion
    rules, ends coloured by disposition, variants dashed; undefined and unreachable nodes in
    red. SVG needs Graphviz (`dot`)."""
    script, issues = read_script(file)
    if script is None:
        raise UserError("\n".join(str(i) for i in issues))
    for issue in issues:  # drawn anyway: the picture shows what is wrong
        typer.echo(f"warning: {issue}", err=True)
    flow = flow_graph(script)
    if output_format is GraphFormat.mermaid:
        text = to_mermaid(flow)
    elif output_format is GraphFormat.dot:
        text = to_dot(flow)
    else:
        text = _svg(to_dot(flow))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _svg(dot_source: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise UserError(
            "SVG needs Graphviz's `dot` on PATH (apt install graphviz); "
            "or use --format mermaid or --format dot"
        )
    done = subprocess.run(  # noqa: S603 - our own DOT text into Graphviz, no shell
        [dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise UserError(f"Graphviz failed: {done.stderr.strip()}")
    return done.stdout


@app.command("test")
def test(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Script files, or directories of scripts (their `*.yaml`)."),
    ],
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Where trained intent models are cached (as `chat`)."),
    ] = None,
    voice: Annotated[
        bool,
        typer.Option(
            "--voice",
            help="Run the cases as calls through pbxsim instead: the customer's lines spoken "
            "(the step's `audio:` recording, else the pack's Piper voice) and heard by the "
            "pack's Vosk, in a scratch database. Scripts whose language no installed pack "
            "hears are skipped, one line each.",
        ),
    ] = False,
) -> None:
    """Run each script's cases (`tests/NAME/*.yaml` beside it) on the engine with the real
    NLU (or, with --voice, as live calls); print a table, and `FILE:LINE: case: what went
    wrong` for each failing step; exit 1 on any failure."""
    console = Console(highlight=False, soft_wrap=True)
    if cache_dir is None:
        cache_dir = cli_state(ctx).loaded.config.state_dir / "nlu-cache"
    skipped: list[str] = []
    try:
        if voice:
            results, untested, skipped = _voice_tests(ctx, _script_files(paths), cache_dir)
        else:
            results, untested = run_script_tests(_script_files(paths), cache_dir)
    except ScriptTestError as exc:
        raise UserError(str(exc)) from exc
    table = Table("script", "case", "steps", "result", box=None)
    for r in results:
        verdict = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        table.add_row(r.script, escape(r.case), str(r.steps), verdict)
    for name in untested:
        table.add_row(name, "[dim](no cases)[/dim]", "", "")
    console.print(table)
    for line in skipped:
        console.print(escape(line))
    failed = [r for r in results if not r.passed]
    for r in failed:
        console.print(escape(str(r)))
    summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
    console.print(summary + (f", {len(skipped)} skipped" if skipped else ""))
    if failed:
        raise typer.Exit(1)


def _voice_tests(
    ctx: typer.Context, files: list[Path], cache_dir: Path
) -> tuple[list[CaseResult], list[str], list[str]]:
    """The cases as calls through pbxsim (outdial/voicetest.py): results, untested, skipped."""
    from outdial.voicetest import run_voice_cases, voice_cases  # the call stack: only here

    config = cli_state(ctx).loaded.config
    with tempfile.TemporaryDirectory(prefix="outdial-voice-") as tmp:
        try:
            cases, run = voice_cases(config, files, Path(tmp))
        except (ScriptError, CaseFileError) as exc:
            raise ScriptTestError(str(exc)) from exc
        run = run_async(run_voice_cases(config, cases, run, Path(tmp), cache_dir))
    return run.results, run.untested, run.skipped


def _script_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.yaml"))
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or directory")
    return files


# --- staging and promotion ----------------------------------------------------------------

By = Annotated[
    str,
    typer.Option("--by", help="Who does this, for the record (default: your login name)."),
]


def _with_pool(ctx: typer.Context, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    config = cli_state(ctx).loaded.config

    async def run() -> T:
        db = await Database.open(config.database, config.state_dir)
        try:
            return await work(db.pool)
        except ScriptVersionError as exc:
            raise UserError(str(exc)) from exc
        finally:
            await db.close()

    return run_async(run())


def _me() -> str:
    return getpass.getuser()


@app.command("stage")
def stage(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Script to stage (validated first).")],
    by: By = "",
) -> None:
    """Store a validated new version of the script, with its test cases, as staged: not live
    until `outdial script promote NAME`."""
    try:
        loaded = load_script(file)
    except ScriptError as exc:
        raise UserError(f"{file} does not validate:\n{exc}") from exc
    script = loaded.script
    cases = {}
    for case_file in sorted(cases_dir(file, script).glob("*.yaml")):
        try:
            load_cases(case_file)
        except CaseFileError as exc:
            raise UserError(str(exc)) from exc
        cases[case_file.name] = case_file.read_text(encoding="utf-8")
    version = _with_pool(
        ctx,
        lambda pool: stage_script_version(
            pool,
            script.name,
            loaded.source,
            loaded.content_hash,
            script.required_fields(),
            cases,
            by or _me(),
        ),  # fmt: skip
    )
    typer.echo(
        f"staged {script.name} version {version} with {len(cases)} case file(s); not live: "
        f"`outdial script promote {script.name}` makes it live if its tests pass"
    )


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Script name.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Version to promote (default: newest staged).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Promote even if its tests fail or it has none (recorded)."),
    ] = False,
    by: By = "",
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Where trained intent models are cached.")
    ] = None,
) -> None:
    """Make a staged version live for new calls, only if its test cases pass (calls in
    progress keep their version). The daemon serves it from its next reload (SIGHUP)."""
    if cache_dir is None:
        cache_dir = cli_state(ctx).loaded.config.state_dir / "nlu-cache"
    chosen = _staged(_with_pool(ctx, lambda pool: script_versions(pool, name)), version)
    try:
        failures = stored_version_failures(chosen.name, chosen.source, chosen.cases, cache_dir)
    except ScriptTestError as exc:
        raise UserError(str(exc)) from exc
    if failures and not force:
        raise UserError(
            f"{name} version {chosen.version} not promoted, its tests do not pass "
            f"(--force promotes anyway, and is recorded):\n" + "\n".join(failures)
        )
    detail = {"test_failures": failures} if failures else {}
    _with_pool(
        ctx,
        lambda pool: promote_script_version(
            pool, name, chosen.version, by or _me(), forced=bool(failures), detail=detail
        ),
    )
    forced = " (FORCED past failing tests; recorded)" if failures else ""
    typer.echo(
        f"{name} version {chosen.version} is live{forced}; the daemon serves it to new calls "
        "after its next reload (SIGHUP)"
    )


def _staged(versions: list[ScriptVersion], wanted: int | None) -> ScriptVersion:
    if wanted is not None:
        for v in versions:
            if v.version == wanted:
                return v
        raise UserError(f"{versions[0].name} has no version {wanted}")
    for v in versions:  # newest first
        if v.staged_by is not None and not v.live:
            return v
    raise UserError(f"{versions[0].name} has no staged version that is not live yet")


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Script name.")],
    by: By = "",
) -> None:
    """Make live again the version that was live before the current one (for new calls)."""
    version = _with_pool(ctx, lambda pool: rollback_script(pool, name, by or _me()))
    typer.echo(
        f"{name} is back at version {version}; the daemon serves it to new calls after its "
        "next reload (SIGHUP)"
    )


@app.command("versions")
def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Script name.")],
) -> None:
    """List the script's versions: which is live, which are staged, who promoted them, when."""
    rows = _with_pool(ctx, lambda pool: script_versions(pool, name))
    table = Table("version", "state", "staged by", "staged at", "promoted by", "promoted at")
    for v in rows:
        state = "live" if v.live else "staged" if v.promoted_at is None and v.staged_by else ""
        if not v.live and v.promoted_at is not None:
            state = "was live"
        promoted = f"{v.promoted_by} (forced)" if v.forced else v.promoted_by
        table.add_row(
            str(v.version), state, v.staged_by or "", _when(v.staged_at), promoted or "",
            _when(v.promoted_at),
        )  # fmt: skip
    Console(highlight=False, soft_wrap=True).print(table)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment else ""


def _parse_vars(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--var needs NAME=VALUE, got {pair!r}")
        values[name.strip()] = value
    return values


def _event(console: Console, classifier: IntentClassifier, line: str) -> Event | None:
    command, _, arg = line.partition(" ")
    if not line or command == "/silence":
        return Silence()
    if command == "/hangup":
        return Hangup()
    if command == "/dtmf":
        if len(arg.strip()) != 1 or arg.strip() not in "0123456789*#":
            console.print("[red]/dtmf needs one digit: 0-9, * or #[/red]")
            return None
        return Dtmf(arg.strip())
    if command == "/emotion":
        try:
            score = float(arg)
        except ValueError:
            score = -1.0
        if not 0.0 <= score <= 1.0:
            console.print("[red]/emotion needs a score between 0 and 1[/red]")
            return None
        return EmotionScore(score)
    if command.startswith("/"):
        console.print(f"[red]unknown command {escape(command)}[/red] {CHAT_HELP}")
        return None
    result = classifier.classify(line, today=date.today())
    _show_nlu(console, result)
    return Utterance(line, result.intent, result.confidence, result.entities)


def _show_nlu(console: Console, result: NluResult) -> None:
    intent = result.intent or f"no-match (best: {result.best_intent})"
    entities = ", ".join(f"{e.label}={e.value}" for e in result.entities)
    line = f"  [magenta]intent: {intent} ({result.confidence:.2f})[/magenta]"
    if entities:
        line += f" [magenta]entities: {escape(entities)}[/magenta]"
    console.print(line)


def _show(console: Console, actions: list[Action]) -> None:
    for action in actions:
        match action:
            case Say():
                console.print(f"[cyan]bot[/cyan] [dim]({action.node})[/dim]: {escape(action.text)}")
            case Listen():
                console.print(f"[dim]  listening at node {action.node}[/dim]")
            case Transfer():
                console.print(
                    f"[yellow]transfer to {action.target}[/yellow]: {escape(action.reason)}"
                )
            case End():
                console.print(
                    f"[yellow]end: {action.disposition} / {action.outcome} "
                    f"(success: {action.success})[/yellow]"
                )
            case SetVariable():
                console.print(f"[green]  set {action.name} = {escape(action.value)}[/green]")
            case OptOut():
                console.print("[yellow]opt-out: this number goes on the do-not-call list[/yellow]")
            case ComplianceHit():
                state = "blocked" if action.blocked else action.action
                console.print(
                    f"[red]compliance ({action.source}, node {action.node}): "
                    f"{action.category} {escape(repr(action.term))} -> {state}[/red]"
                )
