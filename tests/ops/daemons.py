"""A daemon's config for tests that run `Daemon` in-process on the test database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outdial.config import Config


def daemon_config(pg_url: str, tmp_path: Path, **extra: Any) -> Config:
    """No scripts, listeners on free ports, and a trunk where nothing listens: the dialer
    keeps trying to connect, as it would in life with the PBX down."""
    (tmp_path / "scripts").mkdir(exist_ok=True)
    return Config.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "database": {"url": pg_url},
            "scripts_dir": str(tmp_path / "scripts"),
            "agi": {"port": 0},
            "audiosocket": {"port": 0},
            "metrics": {"port": 0},
            "session": {"max_calls": 2},
            "trunks": [{"name": "main", "port": 1}],
            **extra,
        }
    )
