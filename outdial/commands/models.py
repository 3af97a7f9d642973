"""`outdial models ...`: production language packs (Vosk model + Piper voice)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from langpacks.install import (
    PARTS,
    WITHOUT_PACKS,
    LanguagePack,
    PackReport,
    install_pack,
    load_catalogue,
    verify_pack,
)
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from voice.packs import installed_names

app = typer.Typer(
    help="Language packs (list, install, verify) and the churn model (train, evaluate, score, "
    "labels).",
    no_args_is_help=True,
)


def _config(ctx: typer.Context) -> Config:
    return cli_state(ctx).loaded.config


def _catalogue(config: Config) -> dict[str, LanguagePack]:
    return load_catalogue(config.models.catalogue)


def _mb(size: int | None) -> str:
    return "?" if size is None else f"{size / 1_000_000:.0f} MB"


@app.command("list")
def list_packs(ctx: typer.Context) -> None:
    """Show the known packs and which are installed (scripts pick one by `language`,
    `pack` or `voice`)."""
    config = _config(ctx)
    catalogue = _catalogue(config)
    installed = set(installed_names(config.models_dir))
    table = Table("pack", "language", "voice", "models", "download", "checksums", "installed")
    for lang in sorted(set(catalogue) | installed):
        pack = catalogue.get(lang)
        pinned = pack is not None and all(pack.part(p).sha256 for p in PARTS)
        table.add_row(
            lang,
            pack.language if pack else "-",
            pack.voice_name if pack else "-",
            pack.description if pack else "(not in the catalogue)",
            _mb(pack.download_bytes) if pack else "-",
            "pinned" if pinned else ("-" if pack is None else "need --sha256"),
            "yes" if lang in installed else "no",
        )
    console = Console()
    console.print(table)
    console.print("no public model for:", markup=False)
    for line in WITHOUT_PACKS:
        console.print(f"  {line}", markup=False)
    console.print(f"models directory: {config.models_dir}")


def _parse_sums(values: list[str]) -> dict[str, str]:
    sums: dict[str, str] = {}
    for value in values:
        part, sep, digest = value.partition("=")
        if not sep or not digest:
            raise UserError(
                f"--sha256 {value!r}: expected PART=HEX, PART one of {', '.join(PARTS)}"
            )
        sums[part.strip()] = digest
    return sums


@app.command()
def install(
    ctx: typer.Context,
    langs: Annotated[list[str], typer.Argument(help="Packs to install side by side, e.g. en zh.")],
    sha256: Annotated[
        list[str] | None,
        typer.Option(
            "--sha256",
            help="PART=HEX for a part whose checksum the catalogue does not pin "
            "(parts: vosk, voice, voice_config). Repeatable.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an installed pack.")] = False,
) -> None:
    """Download packs from their official URLs, verify their SHA-256 sums, unpack each one
    atomically beside the others; scripts in their languages are served from the next start
    or reload (`systemctl reload outdial`)."""
    config = _config(ctx)
    catalogue = _catalogue(config)
    unknown = [lang for lang in langs if lang not in catalogue]
    if unknown:
        raise UserError(
            f"no language pack {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(catalogue))}"
        )
    sums = _parse_sums(sha256 or [])
    if sums and len(langs) > 1:
        raise UserError("--sha256 applies to one pack: install that pack on its own")
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    out = Console()
    with progress:
        for lang in langs:
            spec = run_async(
                install_pack(
                    catalogue[lang], config.models_dir, sums=sums, force=force, progress=progress
                )
            )
            out.print(f"installed {lang} ({spec.language} scripts) in {config.models_dir / lang}")
    out.print("run `outdial check`, then start or reload the daemon")


def _print_report(console: Console, report: PackReport) -> None:
    if report.ok:
        console.print(f"OK   {report.lang}")
    for problem in report.problems:
        console.print(f"FAIL {report.lang}: {problem}", markup=False)


@app.command()
def verify(
    ctx: typer.Context,
    lang: Annotated[
        str | None, typer.Argument(help="One pack; default: every installed pack.")
    ] = None,
) -> None:
    """Re-hash installed packs and check that Vosk and Piper can open them."""
    config = _config(ctx)
    langs = [lang] if lang else installed_names(config.models_dir)
    if not langs:
        raise UserError(f"no language pack installed in {config.models_dir}")

    async def _run() -> list[PackReport]:
        return [await verify_pack(config.models_dir, one) for one in langs]

    reports = run_async(_run())
    console = Console()
    for report in reports:
        _print_report(console, report)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)
