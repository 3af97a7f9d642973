"""Secrets read from systemd credentials ($CREDENTIALS_DIRECTORY, LoadCredential= in the unit).
Secrets written in the config file and its permissions: tests/outdial/test_config.py and
tests/ops/test_checks.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from outdial.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


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
