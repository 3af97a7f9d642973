"""`outdial campaign ...` on a real database, and AMI secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from outdial.cli import app
from outdial.config import parse_config
from outdial.errors import UserError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "order_confirmation_en.yaml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "outdial.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\n")
    return path


def _run(url: str, config: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(
        app, ["--config", str(config), "campaign", *args], env={"OUTDIAL_DATABASE_URL": url}
    )
    return result.exit_code, result.stdout, result.exception


def test_create_list_pause_resume_and_stats(pg_url: str, config: Path) -> None:
    code, out, exc = _run(
        pg_url, config, "create", "spring", "--script", str(SCRIPT), "--max-channels", "20",
        "--cps", "5", "--window", "09:00-20:00", "--days", "mon-sat", "--caller-id",
        "+15550001111", "--max-attempts", "3", "--require-consent",
    )  # fmt: skip
    assert code == 0, exc
    assert "created campaign spring" in out
    code, out, _ = _run(pg_url, config, "list")
    assert code == 0
    assert "spring" in out and "active" in out and "09:00-20:00" in out
    assert _run(pg_url, config, "pause", "spring")[0] == 0
    assert "paused" in _run(pg_url, config, "list")[1]
    assert _run(pg_url, config, "resume", "spring")[0] == 0
    assert "active" in _run(pg_url, config, "list")[1]
    code, out, _ = _run(pg_url, config, "stats", "spring")
    assert code == 0
    assert "answer rate: n/a" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "nope"], "no campaign named 'nope'"),
        (["stats", "nope"], "no campaign named 'nope'"),
        (["create", "x", "--script", str(SCRIPT), "--window", "9-5"], "window"),
        (["create", "x", "--script", str(SCRIPT), "--days", "someday"], "days"),
        (["create", "x", "--script", str(SCRIPT), "--caller-id", "abc"], "caller_id"),
        (["create", "bad name", "--script", str(SCRIPT)], "campaign name"),
        (["create", "..", "--script", str(SCRIPT)], "not starting with '.'"),
        (["create", ".hidden", "--script", str(SCRIPT)], "not starting with '.'"),
        (["create", "x", "--script", str(SCRIPT), "--max-channels", "100000"], "max_channels"),
        (["create", "x", "--script", str(SCRIPT), "--cps", "1e308"], "cps"),
        (["create", "x", "--script", "/nonexistent.yaml"], "script does not validate"),
    ],
)
def test_bad_input_is_a_one_line_user_error(
    pg_url: str, config: Path, args: list[str], message: str
) -> None:
    code, _, exc = _run(pg_url, config, *args)
    assert isinstance(exc, UserError), exc
    assert message in str(exc)


def test_a_campaign_name_is_taken_once(pg_url: str, config: Path) -> None:
    assert _run(pg_url, config, "create", "dup", "--script", str(SCRIPT))[0] == 0
    _, _, exc = _run(pg_url, config, "create", "dup", "--script", str(SCRIPT))
    assert isinstance(exc, UserError) and "already exists" in str(exc)


def test_ami_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTDIAL_AMI_SECRET", "common")
    monkeypatch.setenv("OUTDIAL_AMI_SECRET_EAST", "east-only")
    text = "trunks:\n  - name: east\n  - name: west\n    secret: from-file\n"
    config = parse_config(text, "t.yaml")
    secrets = {t.name: t.secret.get_secret_value() for t in config.trunks}
    assert secrets == {"east": "east-only", "west": "common"}
    # Without trunks in the file the built-in default trunk gets the secret.
    assert parse_config("{}", "t.yaml").trunks[0].secret.get_secret_value() == "common"


def test_without_ami_environment_the_default_trunk_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTDIAL_AMI_SECRET", raising=False)
    monkeypatch.delenv("OUTDIAL_AMI_SECRET_DEFAULT", raising=False)
    trunks = parse_config("{}", "t.yaml").trunks
    assert [t.name for t in trunks] == ["default"]
    assert trunks[0].secret.get_secret_value() == ""
    with pytest.raises(UserError, match="dial_string"):
        parse_config("trunks:\n  - name: x\n    dial_string: PJSIP/carrier\n", "t.yaml")
