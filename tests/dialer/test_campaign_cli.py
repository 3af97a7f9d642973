"""`outdial campaign ...` on a real database, and AMI secrets from the environment."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from dialer.campaigns import Campaign, CampaignSettings
from dialog import load_script, parse_script
from outdial.cli import app
from outdial.config import parse_config
from outdial.daemon import script_problem
from outdial.errors import UserError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "order_confirmation_en.yaml"
NAME = "order_confirmation_en"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config file with the shipped English script in its scripts directory beside it."""
    path = tmp_path / "etc" / "outdial.yaml"
    (path.parent / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, path.parent / "scripts" / "confirm.yaml")  # file name != script name
    path.write_text(f"state_dir: {tmp_path / 'state'}\n")
    return path


def _run(url: str, config: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(
        app, ["--config", str(config), "campaign", *args], env={"OUTDIAL_DATABASE_URL": url}
    )
    return result.exit_code, result.stdout, result.exception


def test_create_list_pause_resume_and_stats(pg_url: str, config: Path) -> None:
    code, out, exc = _run(
        pg_url, config, "create", "spring", "--script", NAME, "--max-channels", "20",
        "--cps", "5", "--window", "09:00-20:00", "--days", "mon-sat", "--caller-id",
        "+15550001111", "--max-attempts", "3", "--require-consent",
    )  # fmt: skip
    assert code == 0, exc
    assert "created campaign spring" in out and "script order_confirmation_en" in out
    code, out, _ = _run(pg_url, config, "list")
    assert code == 0
    assert "spring" in out and "active" in out and "09:00-20:00" in out
    assert _run(pg_url, config, "pause", "spring")[0] == 0
    assert "paused (operator)" in _run(pg_url, config, "list")[1]
    assert "campaign spring: paused (operator)" in _run(pg_url, config, "stats", "spring")[1]
    assert _run(pg_url, config, "resume", "spring")[0] == 0
    assert "active" in _run(pg_url, config, "list")[1]
    code, out, _ = _run(pg_url, config, "stats", "spring")
    assert code == 0
    assert "campaign spring: active" in out
    assert "answer rate: n/a" in out


def test_a_script_is_stored_by_name_and_must_be_in_the_scripts_directory(
    pg_url: str, config: Path, tmp_path: Path
) -> None:
    in_dir = config.parent / "scripts" / "confirm.yaml"
    code, out, exc = _run(pg_url, config, "create", "by-path", "--script", str(in_dir))
    assert code == 0, exc
    assert "order_confirmation_en" in _run(pg_url, config, "list")[1]
    assert "confirm.yaml" not in _run(pg_url, config, "list")[1]
    elsewhere = tmp_path / "copy.yaml"
    shutil.copy(SCRIPT.parent / "payment_reminder_zh.yaml", elsewhere)
    _, _, exc = _run(pg_url, config, "create", "outside", "--script", str(elsewhere))
    assert isinstance(exc, UserError)
    assert "'payment_reminder_zh'" in str(exc) and "is not in the daemon's scripts" in str(exc)
    _, _, exc = _run(pg_url, config, "create", "typo", "--script", "order_confirmation")
    assert isinstance(exc, UserError)
    assert "no script named 'order_confirmation'" in str(exc)
    assert "did you mean 'order_confirmation_en'?" in str(exc)


def test_leads_import_cannot_create_a_campaign_on_a_missing_script(
    pg_url: str, config: Path, tmp_path: Path
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n+12025550100\n")
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "leads", "import", str(leads), "--campaign", "x",
         "--create-campaign", "--script", "nosuchscript"],
        env={"OUTDIAL_DATABASE_URL": pg_url},
    )  # fmt: skip
    assert isinstance(result.exception, UserError)
    assert "no script named 'nosuchscript'" in str(result.exception)


def _sql(url: str, statement: str) -> None:
    async def execute() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(execute())


def test_archive_hides_and_delete_refuses_a_campaign_with_calls(pg_url: str, config: Path) -> None:
    for name in ("old", "unused"):
        assert _run(pg_url, config, "create", name, "--script", NAME)[0] == 0
    _sql(
        pg_url,
        """WITH lead AS (
               INSERT INTO leads (campaign_id, phone_e164, timezone)
               SELECT id, '+12025550100', 'UTC' FROM campaigns WHERE name = 'old'
               RETURNING id, campaign_id)
           INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
           SELECT 'c1', id, campaign_id, 't', 'o' FROM lead""",
    )
    _, _, exc = _run(pg_url, config, "delete", "old")
    assert isinstance(exc, UserError) and "archive it instead" in str(exc)
    assert _run(pg_url, config, "archive", "old")[0] == 0
    listed = _run(pg_url, config, "list")[1]
    assert "old" not in listed and "unused" in listed
    assert "archived" in _run(pg_url, config, "list", "--all")[1]
    code, out, _ = _run(pg_url, config, "delete", "unused")
    assert code == 0 and "deleted unused and its 0 lead(s)" in out
    assert "unused" not in _run(pg_url, config, "list", "--all")[1]


def test_stats_show_why_leads_are_held_back(pg_url: str, config: Path) -> None:
    assert _run(pg_url, config, "create", "held", "--script", NAME)[0] == 0
    _sql(
        pg_url,
        """INSERT INTO leads (campaign_id, phone_e164, timezone, status, block_reason)
           SELECT c.id, '+1202555010' || n, 'UTC', s, r
             FROM campaigns c,
                  (VALUES (1, 'blocked', 'dnc'), (2, 'blocked', 'dnc'),
                          (3, 'pending', 'outside_window'), (4, 'pending', NULL)) AS v(n, s, r)
            WHERE c.name = 'held'""",
    )
    code, out, _ = _run(pg_url, config, "stats", "held")
    assert code == 0
    assert "blocked for good, dnc: 2" in out
    assert "waiting, outside_window: 1" in out
    assert "leads pending: 2" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "nope"], "no campaign named 'nope'"),
        (["stats", "nope"], "no campaign named 'nope'"),
        (["create", "x", "--script", NAME, "--window", "9-5"], "window"),
        (["create", "x", "--script", NAME, "--days", "someday"], "days"),
        (["create", "x", "--script", NAME, "--caller-id", "abc"], "caller_id"),
        (["create", "bad name", "--script", NAME], "campaign name"),
        (["create", "..", "--script", NAME], "not starting with '.'"),
        (["create", ".hidden", "--script", NAME], "not starting with '.'"),
        (["create", "x", "--script", NAME, "--max-channels", "100000"], "max_channels"),
        (["create", "x", "--script", NAME, "--cps", "1e308"], "cps"),
        (["create", "x", "--script", "/nonexistent.yaml"], "script does not validate"),
        (["create", "x", "--script", "nosuchscript"], "no script named 'nosuchscript'"),
        (["delete", "nope"], "no campaign named 'nope'"),
        (["archive", "nope"], "no campaign named 'nope'"),
    ],
)
def test_bad_input_is_a_one_line_user_error(
    pg_url: str, config: Path, args: list[str], message: str
) -> None:
    code, _, exc = _run(pg_url, config, *args)
    assert isinstance(exc, UserError), exc
    assert message in str(exc)


def test_a_campaign_name_is_taken_once(pg_url: str, config: Path) -> None:
    assert _run(pg_url, config, "create", "dup", "--script", NAME)[0] == 0
    _, _, exc = _run(pg_url, config, "create", "dup", "--script", NAME)
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


def test_require_consent_reads_as_a_flag_in_help() -> None:
    result = CliRunner().invoke(app, ["campaign", "create", "--help"], env={"COLUMNS": "200"})
    line = next(x for x in result.output.splitlines() if "--require-consent" in x)
    assert "<bool>" not in line and "a flag: no value" in line


def test_a_recording_campaign_needs_a_script_that_says_so(pg_url: str, config: Path) -> None:
    """The shipped script says "This call may be recorded."; a copy that does not is refused
    for a campaign that records, and accepted for one that does not."""
    code, out, exc = _run(pg_url, config, "create", "taped", "--script", NAME, "--record")
    assert code == 0, exc
    assert "record" in _run(pg_url, config, "list")[1]
    silent = config.parent / "scripts" / "confirm.yaml"
    text = silent.read_text().replace(" This call may be recorded.", "")
    silent.write_text(text.replace("name: order_confirmation_en", "name: quiet_en"))
    _, _, exc = _run(pg_url, config, "create", "quiet", "--script", "quiet_en", "--record")
    assert isinstance(exc, UserError)
    assert "--record: the campaign records its calls but script 'quiet_en'" in str(exc)
    assert _run(pg_url, config, "create", "quiet", "--script", "quiet_en")[0] == 0


def test_the_daemon_will_not_serve_a_recording_campaign_whose_script_stopped_saying_so() -> None:
    """A script edited after the campaign was created: the daemon's check at start and reload
    pauses the campaign (script_unavailable, with this reason) until the notice is back."""
    shipped = load_script(SCRIPT).script
    silent = parse_script(SCRIPT.read_text().replace(" This call may be recorded.", "")).script

    def campaign(record: bool) -> Campaign:
        return Campaign(1, "c", NAME, "active", CampaignSettings(record=record))

    assert script_problem(campaign(True), shipped) is None
    assert script_problem(campaign(False), silent) is None
    problem = script_problem(campaign(True), silent)
    assert problem is not None and "does not say so in its identification" in problem


def test_create_refuses_a_script_whose_language_pack_is_not_installed(
    pg_url: str, config: Path
) -> None:
    shutil.copy(SCRIPT.parent / "payment_reminder_zh.yaml", config.parent / "scripts")
    code, _, exc = _run(pg_url, config, "create", "reminders", "--script", "payment_reminder_zh")
    assert code == 1 and isinstance(exc, UserError)
    assert str(exc) == (
        "script 'payment_reminder_zh' (language zh, voice zh_CN-huayan-medium) cannot be "
        "served: no installed zh pack has voice zh_CN-huayan-medium; "
        "install it with `outdial models install zh`"
    )
    assert "reminders" not in _run(pg_url, config, "list")[1]  # nothing was created


def test_a_stored_script_serves_a_campaign_once_promoted_not_while_staged(
    pg_url: str, config: Path, tmp_path: Path
) -> None:
    # A script that is no file in the scripts directory, only a stored version.
    source = (SCRIPT.parent / "library" / "survey_en.yaml").read_text(encoding="utf-8")
    staged = tmp_path / "elsewhere" / "stored_survey.yaml"
    staged.parent.mkdir()
    # It does not say the call may be recorded (so `--record` must be refused).
    source = source.replace(" This call may be recorded.", "")
    staged.write_text(source.replace("name: survey_en\n", "name: stored_survey\n"))

    def script(*args: str) -> tuple[int, str, BaseException | None]:
        result = CliRunner().invoke(
            app, ["--config", str(config), "script", *args], env={"OUTDIAL_DATABASE_URL": pg_url}
        )
        return result.exit_code, result.stdout, result.exception

    assert script("stage", str(staged))[0] == 0
    _, _, exc = _run(pg_url, config, "create", "too-early", "--script", "stored_survey")
    assert isinstance(exc, UserError)
    assert "'stored_survey' is only staged (version 1), not live" in str(exc)
    assert "`outdial script promote stored_survey`" in str(exc)

    promoted = script("promote", "stored_survey", "--force", "--cache-dir", str(tmp_path / "n"))
    assert promoted[0] == 0, promoted
    code, out, exc = _run(pg_url, config, "create", "survey", "--script", "stored_survey")
    assert code == 0, exc
    assert "created campaign survey" in out and "script stored_survey" in out
    # Recording is checked on the live stored version as on a file.
    _, _, exc = _run(pg_url, config, "create", "rec", "--script", "stored_survey", "--record")
    assert isinstance(exc, UserError)
    assert "--record" in str(exc) and "stored_survey" in str(exc)

    _, _, exc = _run(pg_url, config, "create", "nothing", "--script", "never_stored")
    assert isinstance(exc, UserError)
    assert "no script named 'never_stored'" in str(exc)
    assert "no version of it is stored either" in str(exc)
