"""API tokens: random bearer secrets, stored only as SHA-256, with scopes per endpoint group."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import asyncpg

from store.tokens import (
    active_token,
    insert_token,
    record_access,
    revoke_token_named,
)

# Endpoint groups and what a token may do in each. Write does not imply read: a CRM that only
# pushes leads gets `leads:write` and nothing it could read customer data with.
SCOPES = (
    "leads:read",
    "leads:write",
    "campaigns:read",
    "campaigns:write",
    "dnc:read",
    "dnc:write",
    "calls:read",
    "reports:read",
    # Engagement on every channel and churn labels in; churn risk and follow-ups out.
    "engagement:read",
    "engagement:write",
    # Script versions: read the list; stage, promote and roll back.
    "scripts:read",
    "scripts:write",
    # Erasure on request: given to the system that handles data subjects' requests alone.
    "personal-data:erase",
)
_PREFIX = "odt_"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class TokenError(ValueError):
    """A token name or scope that cannot be used, or a token that does not exist."""


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    scopes: frozenset[str]


def token_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, sorted and deduplicated; TokenError naming the unknown ones."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    if not scopes:
        raise TokenError(f"give at least one scope (known: {', '.join(SCOPES)})")
    return sorted(set(scopes))


async def create_token(conn: asyncpg.Connection, name: str, scopes: list[str]) -> str:
    """A new token's secret (shown once; only its hash is stored)."""
    if not _NAME.match(name):
        raise TokenError(f"token name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    wanted = check_scopes(scopes)
    secret = _PREFIX + secrets.token_urlsafe(32)
    async with conn.transaction():
        token_id = await insert_token(conn, name, token_hash(secret), wanted)
        if token_id is None:
            raise TokenError(f"a token named {name!r} already exists (revoke it first)")
        await _audit(conn, token_id, "token.create", name, {"scopes": wanted})
    return secret


async def revoke_token(conn: asyncpg.Connection, name: str) -> None:
    async with conn.transaction():
        token_id = await revoke_token_named(conn, name)
        if token_id is None:
            raise TokenError(f"no active token named {name!r}")
        await _audit(conn, token_id, "token.revoke", name, {})


async def _audit(
    conn: asyncpg.Connection, token_id: int, action: str, name: str, detail: dict[str, object]
) -> None:
    # Token management happens on the command line: the audit's "who" is the CLI.
    await record_access(conn, "cli", action, f"token/{name}", None, detail, token_id)


async def find_token(conn: asyncpg.Connection | asyncpg.Pool, secret: str) -> Token | None:
    """The active token with this secret, or None."""
    if not secret.startswith(_PREFIX):
        return None  # not ours: no need to ask the database
    row = await active_token(conn, token_hash(secret))
    return None if row is None else Token(row.id, row.name, frozenset(row.scopes))
