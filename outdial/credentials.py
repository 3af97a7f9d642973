"""Secrets from systemd credentials (`LoadCredential=`), and the turn spool's key.

systemd copies each credential into a private directory only this service's user can read
(`$CREDENTIALS_DIRECTORY`, in memory where possible); nothing else in the process tree sees
them, unlike environment variables. deploy/systemd/outdial.service loads these:

    database-url    -> database.url       (else $OUTDIAL_DATABASE_URL)
    ami-secret      -> every trunk's secret (else $OUTDIAL_AMI_SECRET[_<TRUNK>])
    webhook-secret  -> webhooks.secret    (else $OUTDIAL_WEBHOOK_SECRET)
    spool-key       -> the key the turn spool encrypts rows with

An environment variable, where set, wins; an empty credential file counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet

SPOOL_KEY_FILE = "spool.key"


def read_credential(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The credential's value (trailing newline removed), or None when absent or empty."""
    env = os.environ if environ is None else environ
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    try:
        value = (Path(directory) / name).read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        return None
    return value or None


def spool_keys(state_dir: Path, environ: Mapping[str, str] | None = None) -> list[bytes]:
    """The spool's keys, the one to encrypt with first: the `spool-key` credential if given,
    and `<state_dir>/spool.key` (made, mode 0600, when there is no credential), so segments
    written before a credential was set up are still read."""
    keys: list[bytes] = []
    if (credential := read_credential("spool-key", environ)) is not None:
        keys.append(credential.encode())
    path = state_dir / SPOOL_KEY_FILE
    if not keys and not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
    if path.exists():
        keys.append(path.read_bytes().strip())
    return keys
