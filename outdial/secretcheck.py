"""`outdial check`'s warning about secrets written into a config file others can read.

Secrets belong in systemd credentials or the environment (docs/privacy.md#secrets); a config
file is often world-readable (0644 is the default umask's), so a secret in one is readable by
every local user. This reads the file as written, not the merged config: a secret that came
from the environment is where it should be.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml


def _secrets_in(data: Any) -> list[str]:
    """Dotted paths of the secrets written in a parsed config."""
    if not isinstance(data, dict):
        return []
    found = []
    database = data.get("database")
    if isinstance(database, dict) and isinstance(url := database.get("url"), str):
        parts = urlsplit(url)
        if parts.password or "password" in parse_qs(parts.query):
            found.append("database.url (its password)")
    webhooks = data.get("webhooks")
    if isinstance(webhooks, dict) and webhooks.get("secret"):
        found.append("webhooks.secret")
    trunks = data.get("trunks")
    for i, trunk in enumerate(trunks if isinstance(trunks, list) else []):
        if isinstance(trunk, dict) and trunk.get("secret"):
            found.append(f"trunks[{i}].secret")
    return found


def readable_secrets_warning(path: Path | None) -> str | None:
    """A one-line warning when `path` is readable by every user and holds a secret."""
    if path is None:
        return None
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the config check reports an unreadable or broken file
    secrets = _secrets_in(data)
    if not secrets or not mode & stat.S_IROTH:
        return None
    return (
        f"{path} is readable by every user (mode {stat.S_IMODE(mode):04o}) and holds "
        f"{', '.join(secrets)}: move them to systemd credentials or the environment "
        f"(docs/privacy.md#secrets), or chmod o-r {path}"
    )
