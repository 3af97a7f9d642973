"""The API's aiohttp application and the server the daemon runs on its event loop."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import asyncpg
from aiohttp import web

from analytics.settings import AnalyticsSettings
from api import calls, campaigns, decisions, dnc, health, leads, personal, reports, scripts
from api.listener import GuardedSite, keepalive_limit
from api.metrics import refusal_counter
from api.openapi import build_document
from api.problems import ApiProblem
from api.routing import ApiState, Operation, endpoint, limit_anonymous
from api.settings import ApiSettings
from compliance.settings import ComplianceSettings
from crm.followup import FollowUpPlanner
from dialer.settings import DialerSettings

log = logging.getLogger(__name__)


class ApiConfig(Protocol):
    """The parts of the daemon's configuration the API reads (outdial.config.Config has them)."""

    api: ApiSettings
    compliance: ComplianceSettings
    analytics: AnalyticsSettings
    dialer: DialerSettings
    default_region: str
    state_dir: Path


class ApiListenError(RuntimeError):
    """The API's address cannot be bound (in use, not permitted); the message says which."""


OPERATIONS: list[Operation] = [
    *health.OPERATIONS,
    *campaigns.OPERATIONS,
    *leads.OPERATIONS,
    *dnc.OPERATIONS,
    *calls.OPERATIONS,
    *reports.OPERATIONS,
    *personal.OPERATIONS,
    *decisions.OPERATIONS,
    *scripts.OPERATIONS,
]
# Migration 090's trigger announces each revoked or deleted token's id here.
REVOKED_CHANNEL = "outdial_token_revoked"
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
# On stop, requests in flight get this long to finish before they are cancelled.
SHUTDOWN_GRACE_S = 2.0


@web.middleware
async def problem_details(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as problem+json: ours, aiohttp's (404, 405, 413), and the unexpected."""
    try:
        return await handler(request)
    except ApiProblem as problem:
        return problem.response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow",)}
        code = _CODES.get(exc.status, "http_error")
        return ApiProblem(exc.status, code, exc.text or exc.reason, headers=headers).response(
            request.path
        )
    except ConnectionError as exc:
        # The client went away mid-request (typically mid-body): nothing to answer, not our
        # fault, no traceback.
        log.info("API %s %s: the client disconnected (%s)", request.method, request.path, exc)
        return ApiProblem(400, "client_gone", "the client disconnected", close=True).response(
            request.path
        )
    except Exception:
        # Paths carry campaign names and ids, never numbers: safe to log.
        log.exception("API %s %s failed", request.method, request.path)
        return ApiProblem(500, "internal", "internal error (see the daemon log)").response(
            request.path
        )


def api_state(config: ApiConfig, pool: asyncpg.Pool) -> ApiState:
    return ApiState(
        pool,
        config.api,
        config.compliance,
        config.default_region,
        refusal_counter("api"),
        config.state_dir / "nlu-cache",
    )


def create_app(
    config: ApiConfig, pool: asyncpg.Pool, state: ApiState | None = None
) -> web.Application:
    settings = config.api
    state = state or api_state(config, pool)
    if state.planner is None:
        state.planner = FollowUpPlanner(config.analytics, config.dialer)
    middlewares = [keepalive_limit(settings.limits), limit_anonymous(state), problem_details]
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    document = build_document(OPERATIONS)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
    for op in OPERATIONS:
        app.router.add_route(op.method, op.path, endpoint(op, state))
    return app


class ApiServer:
    """The API on `config.api.host:port`; port 0 picks a free one (returned by `start`)."""

    def __init__(self, config: ApiConfig, pool: asyncpg.Pool) -> None:
        self._config = config
        self._pool = pool
        self._runner: web.AppRunner | None = None
        self._listener: asyncpg.Connection | None = None
        self.port: int | None = None
        self.state = api_state(config, pool)

    async def start(self) -> int:
        settings = self._config.api
        if settings.token_cache_s > 0:
            await self._hear_revocations()
        runner = web.AppRunner(
            create_app(self._config, self._pool, self.state),
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await runner.setup()
        site = GuardedSite(
            runner, settings.host, settings.port, settings.limits, refusal_counter("api")
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ApiListenError(
                f"API cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from exc
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("API on http://%s:%d (document: /openapi.json)", settings.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.port = None
        if self._listener is not None:
            listener, self._listener = self._listener, None
            self.state.stop_caching()
            # A connection that died was already taken back by the pool.
            with contextlib.suppress(asyncpg.InterfaceError):
                listener.remove_termination_listener(self._listener_lost)
                await listener.remove_listener(REVOKED_CHANNEL, self._on_revoked)  # UNLISTEN
                await self._pool.release(listener)

    async def _hear_revocations(self) -> None:
        """Hold one connection LISTENing for revocations, so cached tokens can be trusted."""
        listener = await self._pool.acquire()
        await listener.add_listener(REVOKED_CHANNEL, self._on_revoked)
        listener.add_termination_listener(self._listener_lost)
        self._listener = listener
        self.state.revocations_heard = True

    def _on_revoked(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.state.forget_token(int(payload))

    def _listener_lost(self, _conn: object) -> None:
        log.warning("API: lost the revocation channel; every request now asks the database")
        self.state.stop_caching()
