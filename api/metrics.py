"""Prometheus metrics of the HTTP listeners (the API and the metrics endpoint)."""

from collections.abc import Callable

from prometheus_client import Counter

HTTP_REFUSED = Counter(
    "outdial_http_refused_total",
    "HTTP connections and requests refused, by listener (api, metrics) and reason: capacity, "
    "header_timeout, body_timeout, bad_request, bad_encoding, rate_limited.",
    ["listener", "reason"],
)


def refusal_counter(listener: str) -> Callable[[str], None]:
    """`on_refuse` for one listener."""
    return lambda reason: HTTP_REFUSED.labels(listener, reason).inc()
