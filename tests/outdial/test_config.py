"""The config file: errors name the file, line, column and field; secrets come from the env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outdial.cli import app
from outdial.config import ConfigError, load_config, masked_dump, parse_config, secrets_in_file


def test_defaults_need_no_file() -> None:
    config = parse_config("", "empty.yaml")
    assert config.agi.host == "127.0.0.1"
    assert config.audiosocket.port == 9092
    assert config.metrics.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("agi:\n  port: 4573\n  colour: blue\n", "cfg.yaml:3:3: agi.colour: Extra inputs"),
        ("state_dir: x\nbogus: 1\n", "cfg.yaml:2:1: bogus: Extra inputs"),
        ("agi:\n  port: not-a-port\n", "cfg.yaml:2:3: agi.port: Input should be a valid integer"),
        ("session:\n  max_calls: 0\n", "cfg.yaml:2:3: session.max_calls: Input should be greater"),
        ("agi:\n  port: [1\n", "cfg.yaml:2:9: YAML syntax error: this [ ] list"),
        ("agi: {port: 1}\nagi: {port: 2}\n", "cfg.yaml:2:1: duplicate key 'agi'"),
        ("- a\n- b\n", "cfg.yaml:1:1: the config must be a mapping"),
        # Upper bounds (issue 23): a typo or a hostile value is refused with its field.
        ("dialer:\n  max_channels: 1000000000\n", "cfg.yaml:2:3: dialer.max_channels: Input"),
        ("trunks:\n- cps: 1.0e+308\n", "cfg.yaml:2:3: trunks.0.cps: Input should be less"),
        ("session:\n  max_calls: 100000\n", "cfg.yaml:2:3: session.max_calls: Input should"),
        ("api:\n  max_body_bytes: 9999999999\n", "cfg.yaml:2:3: api.max_body_bytes: Input"),
        ("dialer:\n  retry: {busy_s: .inf}\n", "cfg.yaml:2:11: dialer.retry.busy_s: Input"),
        ("session:\n  phrase_map:\n    네: yes\n", "cfg.yaml:3:5: session.phrase_map.네.[key]"),
        ("models:\n  packs:\n    zh: {recognizers: 0}\n", "cfg.yaml:3:10: models.packs.zh.recog"),
        ("models:\n  language: en\n", "cfg.yaml:1:1: models: `models.language` is gone"),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_secrets_from_environment_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", "postgresql://u:hunter2@db/outdial")
    monkeypatch.setenv("OUTDIAL_AMI_SECRET", "amisecret")
    monkeypatch.setenv("OUTDIAL_STATE_DIR", "/var/lib/outdial")
    config = parse_config("trunks: [{name: a, dial_string: 'PJSIP/{number}@c'}]\n", "c.yaml")
    assert config.database.url.get_secret_value().endswith("@db/outdial")
    assert config.trunks[0].secret.get_secret_value() == "amisecret"
    assert str(config.state_dir) == "/var/lib/outdial"
    dumped = str(masked_dump(config))
    assert "hunter2" not in dumped and "amisecret" not in dumped


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OUTDIAL_CONFIG", raising=False)
    assert load_config().source is None  # no file anywhere: built-in defaults
    (tmp_path / "outdial.yaml").write_text("default_region: CN\n")
    assert load_config().config.default_region == "CN"
    other = tmp_path / "other.yaml"
    other.write_text("default_region: GB\n")
    monkeypatch.setenv("OUTDIAL_CONFIG", str(other))
    assert load_config().config.default_region == "GB"
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("default_region: DE\n")
    assert load_config(explicit).config.default_region == "DE"


def test_cli_reports_a_bad_config_in_one_line_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics:\n  port: 99999\n")
    result = CliRunner().invoke(app, ["--config", str(bad), "config", "show"])
    assert result.exit_code == 1
    assert f"{bad}:2:3: metrics.port" in str(result.exception)


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", "postgresql://u:hunter2@db/outdial")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "********" in result.output


# Each value is refused when the file is loaded, by the code that would use it, so
# `config check`, `check` and `run` all stop on it before anything starts.
BAD_VALUES = [
    (
        'dialer:\n  window: "8am-9pm"\n',
        "2:3: dialer.window: window '8am-9pm': expected HH:MM-HH:MM",
    ),
    ('dialer:\n  window: "21:00-08:00"\n', "2:3: dialer.window: window '21:00-08:00'"),
    ('dialer:\n  window: "09:00-25:00"\n', "2:3: dialer.window: window '09:00-25:00'"),
    ("dialer:\n  days: mon-funday\n", "2:3: dialer.days: days 'mon-funday': use day names"),
    (
        "dialer:\n  holidays: [2026-13-01]\n",
        "2:14: dialer.holidays.0: Input should be a valid date",
    ),
    ('compliance:\n  calling_window: "9-5"\n', "2:3: compliance.calling_window: window '9-5'"),
    ("log:\n  level: LOUD\n", "2:3: log.level: unknown level 'LOUD'"),
    ("default_region: XX\n", "1:1: default_region: unknown region 'XX'"),
]


def _cli(config: Path, *args: str) -> tuple[int, str]:
    """What the operator sees: main() prints a UserError as one line and exits 1."""
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    shown = result.output + (str(result.exception) if result.exception else "")
    return result.exit_code, shown


@pytest.mark.parametrize(("text", "expected"), BAD_VALUES)
def test_each_bad_value_stops_config_check_check_and_run(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text(text)
    for command in (["config", "check"], ["check"], ["run"]):
        code, shown = _cli(config, *command)
        assert code == 1, (command, shown)
        assert f"{config}:{expected}" in shown, (command, shown)


def test_run_fails_on_a_bad_value_before_starting_anything(tmp_path: Path) -> None:
    """The real command, as systemd starts it: exit 1, one line, no traceback, no state."""
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\ndialer:\n  window: 8am-9pm\n")
    outdial = Path(sys.executable).parent / "outdial"
    done = subprocess.run(
        [str(outdial), "--config", str(config), "run"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {config}:3:3: dialer.window: window '8am-9pm': expected HH:MM-HH:MM, "
        "for example 09:00-21:00"
    ]
    assert not (tmp_path / "state").exists()


def test_config_show_says_which_secrets_are_not_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("OUTDIAL_DATABASE_URL", "OUTDIAL_AMI_SECRET", "OUTDIAL_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "outdial.yaml"
    config.write_text("trunks: [{name: main}]\n")
    code, shown = _cli(config, "config", "show")
    assert code == 0
    assert "********" not in shown
    assert "secret: (not set)" in shown and "url: (not set)" in shown
    monkeypatch.setenv("OUTDIAL_AMI_SECRET", "s3cret-value")
    code, shown = _cli(config, "config", "show")
    assert "secret: '********'" in shown and "s3cret-value" not in shown


def test_scripts_are_found_from_the_config_file_never_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OUTDIAL_CONFIG", raising=False)
    monkeypatch.delenv("OUTDIAL_STATE_DIR", raising=False)
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "outdial.yaml"
    config.write_text("state_dir: /var/lib/outdial\n")
    assert load_config(config).config.scripts_path == etc / "scripts"
    config.write_text("scripts_dir: campaigns/scripts\n")
    assert load_config(config).config.scripts_path == etc / "campaigns" / "scripts"
    config.write_text("scripts_dir: /srv/scripts\n")
    assert load_config(config).config.scripts_path == Path("/srv/scripts")
    # No file at all: the state directory's, made absolute.
    assert load_config().config.scripts_path == tmp_path / ".outdial" / "scripts"


SECRETS_IN_YAML = """\
trunks:
  - name: main
    secret: topsecret-ami
database:
  url: postgresql://outdial:pg-pass@db/outdial
webhooks:
  urls: ["https://hook-user:hook-pass@hooks.example/x?token=tok-123&x=1"]
  secret: whsec-1
"""


def test_secrets_written_in_the_file_are_named_with_their_place() -> None:
    found = secrets_in_file(SECRETS_IN_YAML, "c.yaml")
    assert found == [
        "c.yaml:3:5: trunks.0.secret: a secret written in the config file; set "
        "OUTDIAL_AMI_SECRET_<TRUNK> or OUTDIAL_AMI_SECRET in the environment instead",
        "c.yaml:5:3: database.url: a secret written in the config file; set "
        "OUTDIAL_DATABASE_URL in the environment instead",
        "c.yaml:8:3: webhooks.secret: a secret written in the config file; set "
        "OUTDIAL_WEBHOOK_SECRET in the environment instead",
    ]
    # A database URL without a password is no secret; an empty secret is none either.
    clean = "database: {url: 'postgresql://outdial@/outdial?host=/run/postgresql'}\n"
    assert secrets_in_file(clean + "trunks: [{secret: ''}]\n", "c.yaml") == []
    dsn = "database: {url: 'postgresql://db/outdial?password=pw'}\n"
    assert len(secrets_in_file(dsn, "c.yaml")) == 1


def test_secrets_in_the_file_warn_and_fail_under_strict(tmp_path: Path) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text(SECRETS_IN_YAML)
    shown = CliRunner().invoke(app, ["--config", str(config), "config", "show"])
    assert shown.exit_code == 0, shown.output
    assert f"warning: {config}:3:5: trunks.0.secret: a secret written" in shown.stderr
    assert shown.stderr.count("warning:") == 3
    strict = CliRunner().invoke(app, ["--strict", "--config", str(config), "config", "show"])
    assert strict.exit_code == 1
    assert isinstance(strict.exception, ConfigError)
    assert f"{config}:5:3: database.url: a secret written" in str(strict.exception)


def test_config_show_masks_credentials_in_urls(tmp_path: Path) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text(SECRETS_IN_YAML)
    result = CliRunner().invoke(app, ["--config", str(config), "config", "show"])
    assert result.exit_code == 0
    out = result.stdout
    for secret in ("hook-pass", "tok-123", "pg-pass", "topsecret-ami", "whsec-1"):
        assert secret not in out, secret
    assert "https://hook-user:********@hooks.example/x?token=********&x=1" in out
