"""Settings of the HTTP API (the `api:` section of the config file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Off until the operator turns it on (and creates a token with `outdial api token create`).
    enabled: bool = False
    # TLS belongs to a reverse proxy in front (see the operator guide): keep this on loopback.
    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    # Larger request bodies get 413 before they are parsed.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Per token: a bucket of `burst` requests refilled at `rate_per_s`; empty bucket -> 429.
    rate_per_s: float = Field(default=50.0, gt=0)
    burst: int = Field(default=100, ge=1)
    # How long a checked token is trusted without asking the database. 0: every request asks,
    # so a revocation holds from the next request on. Above 0, PostgreSQL announces each
    # revocation to every daemon (LISTEN outdial_token_revoked), which drops the token at once;
    # while that announcement channel is down, nothing is cached.
    token_cache_s: float = Field(default=0.0, ge=0)
