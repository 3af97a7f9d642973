"""One WARNING per database outage for a step retried on every poll or every call (the
dialer, the webhook sender, the call path's writes)."""

from __future__ import annotations

import logging


class OutageLog:
    """One WARNING per outage for a step retried on every poll, DEBUG for the retries (the
    daemon's health monitor says when the database is lost and when it is back)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self.failures = 0  # in a row

    def failed(self, message: str, *args: object) -> None:
        self.failures += 1
        self._log.log(logging.WARNING if self.failures == 1 else logging.DEBUG, message, *args)

    def succeeded(self) -> None:
        self.failures = 0
