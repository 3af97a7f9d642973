"""Secrets: a warning for a world-readable config file that holds one, and secrets read from
systemd credentials ($CREDENTIALS_DIRECTORY, LoadCredential= in the unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from outdial.config import load_config
from outdial.secretcheck import readable_secrets_warning

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("database:\n  url: postgresql://outdial:hunter2@db/outdial\n", "database.url"),
        ("database:\n  url: postgresql://db/outdial?password=hunter2\n", "database.url"),
        ("webhooks:\n  secret: s3cret\n", "webhooks.secret"),
        ("trunks:\n  - name: a\n  - name: b\n    secret: s3cret\n", "trunks[1].secret"),
    ],
)
def test_a_secret_in_a_world_readable_config_is_warned_about(
    tmp_path: Path, text: str, found: str
) -> None:
    path = tmp_path / "outdial.yaml"
    path.write_text(text)
    path.chmod(0o644)
    warning = readable_secrets_warning(path)
    assert warning is not None and found in warning and "0644" in warning
    assert "hunter2" not in warning and "s3cret" not in warning
    path.chmod(0o640)
    assert readable_secrets_warning(path) is None


@pytest.mark.parametrize(
    "text",
    [
        "database:\n  url: postgresql://outdial@db/outdial\n",  # no password
        "trunks:\n  - name: a\n",
        "not: [valid",  # broken YAML: the config check reports it
        "- a list\n",
    ],
)
def test_no_warning_without_a_secret(tmp_path: Path, text: str) -> None:
    path = tmp_path / "outdial.yaml"
    path.write_text(text)
    path.chmod(0o644)
    assert readable_secrets_warning(path) is None
    assert readable_secrets_warning(None) is None


def test_secrets_come_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "database-url").write_text("postgresql://outdial:pw@db/outdial\n")
    (credentials / "ami-secret").write_text("ami-pw\n")
    (credentials / "webhook-secret").write_text("")  # empty: unset
    config_file = tmp_path / "outdial.yaml"
    config_file.write_text("trunks:\n  - name: main\n")
    for name in ("OUTDIAL_DATABASE_URL", "OUTDIAL_AMI_SECRET", "OUTDIAL_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = load_config(config_file).config
    assert config.database.url is not None
    assert config.database.url.get_secret_value() == "postgresql://outdial:pw@db/outdial"
    assert config.trunks[0].secret is not None
    assert config.trunks[0].secret.get_secret_value() == "ami-pw"
    assert config.webhooks.secret is None
    # The environment, where set, wins.
    monkeypatch.setenv("OUTDIAL_AMI_SECRET", "from-env")
    config = load_config(config_file).config
    assert config.trunks[0].secret is not None
    assert config.trunks[0].secret.get_secret_value() == "from-env"


def test_the_unit_loads_the_secrets_as_credentials() -> None:
    text = (DEPLOY / "systemd" / "outdial.service").read_text()
    loaded = {
        line.split("=", 1)[1].split(":", 1)[0]
        for line in text.splitlines()
        if line.startswith("LoadCredential=")
    }
    assert loaded == {"database-url", "ami-secret", "webhook-secret", "spool-key"}
