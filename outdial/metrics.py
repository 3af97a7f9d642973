"""The Prometheus endpoint, with liveness and readiness probes, on the daemon's event loop.

`/metrics` is the default registry; `/healthz` answers 200 while the process (its event loop)
is alive; `/readyz` runs the daemon's readiness checks and answers 200 when all pass, else 503,
one line per check either way (`ok dialer: running`, `FAIL dialer: down after ...`).
"""

from __future__ import annotations

import importlib
import logging

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from api.listener import GuardedSite, keepalive_limit
from api.metrics import refusal_counter
from api.settings import ListenerLimits
from outdial.config import MetricsSettings
from outdial.errors import UserError
from outdial.supervision import Readiness

log = logging.getLogger(__name__)

# Every package's metrics module, imported so each family is exported from the first scrape on
# (a labelled family shows its HELP and TYPE before its first sample). Modules written later by
# other packages are picked up as soon as they exist.
METRICS_MODULES = (
    "api.metrics",
    "store.metrics",
    "analytics.metrics",
    "dialer.metrics",
    "agi.metrics",
    "outdial.health",
)


# The endpoint has no authentication: nothing a client does may hold a connection for long.
# Prometheus opens one connection per scrape (or keeps one alive between scrapes).
LIMITS = ListenerLimits(
    header_timeout_s=10.0, keepalive_timeout_s=60.0, keepalive_requests=1000, max_connections=32
)


def import_metrics_modules() -> list[str]:
    """Import the metrics modules that exist; returns their names."""
    loaded = []
    for name in METRICS_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # the module exists but one of its own imports is missing
            continue
        loaded.append(name)
    return loaded


class MetricsServer:
    """`/metrics`, `/healthz` and `/readyz` on host:port; port 0 picks a free port (see
    `port` after `start`)."""

    def __init__(self, settings: MetricsSettings, readiness: Readiness | None = None) -> None:
        self._settings = settings
        self._readiness = readiness or Readiness()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        probes = await self._readiness.probe()
        lines = [f"{'ok' if p.ok else 'FAIL'} {p.name}: {p.detail}" for p in probes]
        ready = all(p.ok for p in probes)
        return web.Response(text="\n".join(lines or ["ok"]) + "\n", status=200 if ready else 503)

    async def start(self) -> int:
        import_metrics_modules()
        app = web.Application(middlewares=[keepalive_limit(LIMITS)])
        app.router.add_get("/metrics", make_aiohttp_handler())
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        refuse = refusal_counter("metrics")
        site = GuardedSite(runner, self._settings.host, self._settings.port, LIMITS, refuse)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UserError(
                f"metrics endpoint cannot listen on {self._settings.host}:{self._settings.port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("metrics on http://%s:%d/metrics", self._settings.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.port = None
