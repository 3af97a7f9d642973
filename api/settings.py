"""Settings of the HTTP API (the `api:` section of the config file)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class ListenerLimits:
    """What an HTTP listener allows a client (api.listener enforces it)."""

    header_timeout_s: float
    keepalive_timeout_s: float
    keepalive_requests: int
    max_connections: int
    # How long a body nobody reads is drained before the connection is closed (aiohttp: 10 s).
    lingering_s: float = 2.0


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Off until the operator turns it on (and creates a token with `outdial api token create`).
    enabled: bool = False
    # TLS belongs to a reverse proxy in front (see the operator guide): keep this on loopback.
    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    # Larger request bodies get 413 before they are parsed.
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # Per token: a bucket of `burst` requests refilled at `rate_per_s`; empty bucket -> 429.
    rate_per_s: float = Field(default=50.0, gt=0, le=1_000_000)
    burst: int = Field(default=100, ge=1, le=1_000_000)
    # Requests that carry no valid token, per source address (IPv6: per /64), are limited
    # before authentication, so a flood of 401s cannot slow the CRM's own requests.
    anonymous_rate_per_s: float = Field(default=5.0, gt=0, le=1_000_000)
    anonymous_burst: int = Field(default=20, ge=1, le=1_000_000)
    # How long a checked token is trusted without asking the database. 0: every request asks,
    # so a revocation holds from the next request on. Above 0, PostgreSQL announces each
    # revocation to every daemon (LISTEN outdial_token_revoked), which drops the token at once;
    # while that announcement channel is down, nothing is cached.
    token_cache_s: float = Field(default=0.0, ge=0, le=3600)
    # Holding a connection needs no token, so every wait is bounded: the first request head
    # must be complete this soon after connecting, a body must arrive within body_timeout_s,
    # an idle keep-alive connection is closed after keepalive_timeout_s and any connection
    # after keepalive_requests requests; beyond max_connections new ones get 503.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    keepalive_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    keepalive_requests: int = Field(default=1000, ge=1, le=1_000_000)
    max_connections: int = Field(default=256, ge=1, le=100_000)

    @model_validator(mode="after")
    def _keepalive_covers_the_head(self) -> ApiSettings:
        # aiohttp's keep-alive timer also runs from the connection's start.
        if self.keepalive_timeout_s < self.header_timeout_s:
            raise ValueError("keepalive_timeout_s must be at least header_timeout_s")
        return self

    @property
    def limits(self) -> ListenerLimits:
        return ListenerLimits(
            header_timeout_s=self.header_timeout_s,
            keepalive_timeout_s=self.keepalive_timeout_s,
            keepalive_requests=self.keepalive_requests,
            max_connections=self.max_connections,
        )
