"""`outdial leads import` end to end: exit codes, messages, the JSON summary."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from outdial.cli import app
from outdial.errors import UserError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "leads"


def _invoke(url: str, config: Path, *args: str) -> tuple[int, str, BaseException | None]:
    runner = CliRunner()
    result = runner.invoke(
        app, ["--config", str(config), "leads", "import", *args],
        env={"OUTDIAL_DATABASE_URL": url},
    )  # fmt: skip
    return result.exit_code, result.stdout, result.exception


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "outdial.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\ndefault_region: GB\n")
    (tmp_path / "scripts").mkdir()  # the daemon's scripts, beside the config file
    # The shipped script with defaults for its required fields, so these tests count rows by
    # their numbers alone (missing_field rejects have tests of their own).
    script = (REPO / "scripts" / "order_confirmation_en.yaml").read_text(encoding="utf-8")
    script = script.replace("{required: true}", "{default: x}")
    (tmp_path / "scripts" / "order_confirmation_en.yaml").write_text(script, encoding="utf-8")
    return path


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


def test_import_creates_the_campaign_and_prints_json(
    pg_url: str, config: Path, tmp_path: Path
) -> None:
    csv_path = Path(shutil.copy(FIXTURES / "mixed.csv", tmp_path / "mixed.csv"))
    code, out, exc = _invoke(
        pg_url, config, str(csv_path), "--campaign", "spring", "--region", "US",
        "--create-campaign", "--script", "order_confirmation_en", "--json",
    )  # fmt: skip
    assert code == 0, exc
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["rows"] == 19
    assert summary["imported"] == 7
    assert summary["duplicates_in_file"] == 2  # line 13 repeats the short row of line 8
    assert summary["rejected"] == 10
    assert summary["rejects_file"] == str(tmp_path / "mixed.rejects.csv")
    campaigns = asyncio.run(_fetch(pg_url, "SELECT name, script_name FROM campaigns"))
    assert [tuple(r) for r in campaigns] == [("spring", "order_confirmation_en")]


def test_region_comes_from_the_config(pg_url: str, config: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "uk.csv"
    csv_path.write_text("phone\n020 7946 0958\n", encoding="utf-8")
    code, out, exc = _invoke(
        pg_url,
        config,
        str(csv_path),
        "--campaign",
        "uk",
        "--create-campaign",
        "--script",
        "order_confirmation_en",
    )
    assert code == 0, exc
    assert "imported" in out  # the rich summary table
    rows = asyncio.run(_fetch(pg_url, "SELECT phone_e164 FROM leads"))
    assert [r["phone_e164"] for r in rows] == ["+442079460958"]


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, ["--campaign", "x"], "no such file"),
        (b"phone\n+12015550123\n", ["--campaign", "nope"], "no campaign named 'nope'"),
        (b"name\nAnn\n", ["--campaign", "x"], "no phone column"),
        (b"phone\n+12015550123\n", ["--campaign", "x", "--region", "ZZ"], "unknown region"),
    ],
)
def test_user_errors_exit_1_with_one_line(
    pg_url: str, config: Path, tmp_path: Path, content: bytes | None, args: list[str], message: str
) -> None:
    csv_path = tmp_path / "in.csv"
    if content is not None:
        csv_path.write_bytes(content)
    code, _, exc = _invoke(pg_url, config, str(csv_path), *args)
    assert code == 1
    assert isinstance(exc, UserError)
    assert message in str(exc)
    assert "\n" not in str(exc)


def test_create_campaign_without_script_is_a_usage_error(
    pg_url: str, config: Path, tmp_path: Path
) -> None:
    code, _, _ = _invoke(pg_url, config, str(tmp_path / "x.csv"), "--campaign", "c",
                         "--create-campaign")  # fmt: skip
    assert code == 2


def test_the_installed_command_prints_one_line_and_exits_1(tmp_path: Path, repo_root: Path) -> None:
    # The file is checked before any database is opened, so no server is needed here.
    done = subprocess.run(
        [sys.executable, "-m", "outdial.cli", "leads", "import", str(tmp_path / "absent.csv"),
         "--campaign", "c"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(repo_root)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'absent.csv'}: no such file"]
