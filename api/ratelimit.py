"""Rate limits: token buckets kept in memory by this process, one per key (a token's id, or
a source address for requests that carry no valid token), and the IETF RateLimit header
fields that tell a client where it stands (draft-ietf-httpapi-ratelimit-headers-10)."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass(frozen=True)
class Quota:
    """One request's verdict and what the bucket holds after it."""

    allowed: bool
    limit: int  # the burst: requests at once
    remaining: int
    window_s: float  # an empty bucket refills in this long
    reset_s: float  # until the bucket is full again
    retry_s: float  # until one request may go (0.0 when allowed)


class TokenBuckets(Generic[K]):
    """`burst` requests at once, refilled at `rate_per_s`, per key.

    With `max_keys`, buckets that have refilled (a full bucket is the same as none) are
    dropped once there are more keys than that, then the oldest: memory stays bounded
    however many addresses a flood comes from.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int | None = None,
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[K, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: K) -> Quota:
        """Spend one request of `key`'s bucket if it has one."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            if self._max_keys is not None and len(self._buckets) > self._max_keys:
                self._prune(now, keep=key)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
        bucket.stamp = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        return Quota(
            allowed=allowed,
            limit=int(self._burst),
            remaining=int(bucket.tokens),
            window_s=self._burst / self._rate,
            reset_s=(self._burst - bucket.tokens) / self._rate,
            retry_s=0.0 if allowed else (1.0 - bucket.tokens) / self._rate,
        )

    def _prune(self, now: float, keep: K) -> None:
        refilled = [
            k
            for k, b in self._buckets.items()
            if k != keep and b.tokens + (now - b.stamp) * self._rate >= self._burst
        ]
        for key in refilled:
            del self._buckets[key]
        if len(self._buckets) > (self._max_keys or 0):
            oldest = next(k for k in self._buckets if k != keep)
            del self._buckets[oldest]


def retry_after(wait_s: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))


def ratelimit_headers(policy: str, quota: Quota) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` for `quota`, plus Retry-After when refused."""
    headers = {
        "RateLimit-Policy": f'"{policy}";q={quota.limit};w={math.ceil(quota.window_s)}',
        "RateLimit": f'"{policy}";r={quota.remaining};t={math.ceil(quota.reset_s)}',
    }
    if not quota.allowed:
        headers["Retry-After"] = retry_after(quota.retry_s)
    return headers


def source_key(remote: str | None) -> str:
    """The bucket of a client address: the address itself, or its /64 for IPv6 (one host
    can hold a whole /64)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
