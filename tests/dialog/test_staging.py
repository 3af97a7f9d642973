"""`outdial script stage|promote|rollback|versions` against a real PostgreSQL, with the real NLU
running the stored cases before a promotion."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from outdial.cli import app
from outdial.errors import UserError
from tests.dialog.conftest import SCRIPTS

NAME = "payment_reminder_zh"


class Cli:
    def __init__(self, tmp_path: Path, pg_url: str) -> None:
        self.config = tmp_path / "outdial.yaml"
        self.config.write_text(f"state_dir: {tmp_path / 'state'}\nscripts_dir: {tmp_path}\n")
        self.env = {"OUTDIAL_DATABASE_URL": pg_url}
        self.cache = tmp_path / "nlu"

    def __call__(self, *args: str) -> tuple[int, str]:
        argv = ["--config", str(self.config), "script", *args]
        if args[0] == "promote":
            argv += ["--cache-dir", str(self.cache)]
        result = CliRunner().invoke(app, argv, env=self.env)
        if isinstance(result.exception, UserError):
            return 1, str(result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result.exit_code, result.output


@pytest.fixture
def cli(tmp_path: Path, pg_url: str) -> Cli:
    return Cli(tmp_path, pg_url)


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SCRIPTS, tmp_path / "scripts"))


def _edit(scripts: Path, old: str, new: str) -> Path:
    path = scripts / f"{NAME}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    return path


def fetch(pg_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_stage_promote_rollback_and_the_record(cli: Cli, scripts: Path, pg_url: str) -> None:
    code, out = cli("stage", str(scripts / f"{NAME}.yaml"), "--by", "ann")
    assert (code, "staged payment_reminder_zh version 1 with 1 case file(s)") == (0, out[:56])
    code, out = cli("versions", NAME)
    assert code == 0 and "staged" in out and "ann" in out and "live" not in out
    assert cli("promote", NAME, "--by", "bob")[0] == 0
    # A second version, staged and promoted: then rolled back to the first.
    path = _edit(scripts, "感谢您的配合，再见。", "谢谢您，再见。")
    assert cli("stage", str(path), "--by", "ann")[0] == 0
    code, out = cli("promote", NAME, "--by", "bob")
    assert code == 0 and "version 2 is live" in out
    code, out = cli("rollback", NAME, "--by", "carol")
    assert code == 0 and "back at version 1" in out
    [live] = fetch(pg_url, "SELECT version FROM live_script_versions WHERE name = $1", NAME)
    assert live["version"] == 1
    record = fetch(
        pg_url, "SELECT version, action, by_whom, forced FROM script_promotions ORDER BY id"
    )
    assert [tuple(r) for r in record] == [
        (1, "promote", "bob", False),
        (2, "promote", "bob", False),
        (1, "rollback", "carol", False),
    ]
    code, out = cli("versions", NAME)
    assert code == 0 and "was live" in out and "carol" in out
    code, out = cli("rollback", NAME)
    assert code == 1 and "no older version ever was" in out


def test_promotion_needs_passing_tests_and_force_is_recorded(
    cli: Cli, scripts: Path, pg_url: str
) -> None:
    path = _edit(scripts, "请忽略本次提醒，系统到账可能稍有延迟", "我们会尽快为您处理")
    assert cli("stage", str(path), "--by", "ann")[0] == 0
    code, out = cli("promote", NAME, "--by", "bob")
    assert code == 1
    assert "not promoted, its tests do not pass" in out
    assert "已经还了: expected the bot to say '请忽略本次提醒'" in out
    assert fetch(pg_url, "SELECT * FROM script_promotions") == []
    code, out = cli("promote", NAME, "--by", "bob", "--force")
    assert code == 0 and "FORCED" in out
    [row] = fetch(pg_url, "SELECT by_whom, forced, detail FROM script_promotions")
    assert (row["by_whom"], row["forced"]) == ("bob", True)
    assert "'请忽略本次提醒'" in json.loads(row["detail"])["test_failures"][0]


def test_bad_input_is_refused(cli: Cli, scripts: Path, tmp_path: Path) -> None:
    broken = _edit(scripts, "start: confirm_identity", "start: nowhere")
    code, out = cli("stage", str(broken))
    assert code == 1 and "does not validate" in out and "undefined node 'nowhere'" in out
    code, out = cli("promote", "no_such_script")
    assert code == 1 and "no script named 'no_such_script'" in out
    code, out = cli("versions", "no_such_script")
    assert code == 1 and "no script named" in out
