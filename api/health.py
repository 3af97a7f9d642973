"""Liveness and readiness: no token needed (a load balancer or systemd probe asks)."""

from __future__ import annotations

import asyncio

from api.problems import DATABASE_RETRY_AFTER_S, ApiProblem
from api.routing import ApiRequest, Operation, Reply
from api.schemas import HealthOut
from store.db import DATABASE_ERRORS, ping

READY_TIMEOUT_S = 2.0


async def health(req: ApiRequest) -> Reply:
    return Reply(HealthOut(status="ok"))


async def ready(req: ApiRequest) -> Reply:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await ping(req.state.pool)
    except (TimeoutError, *DATABASE_ERRORS) as exc:
        detail = f"the database does not answer ({type(exc).__name__})"
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
        raise ApiProblem(503, "not_ready", detail, headers=headers) from exc
    return Reply(HealthOut(status="ready"))


OPERATIONS = [
    Operation("GET", "/v1/health", "health", "The API is up", "health", health, HealthOut),
    Operation(
        "GET",
        "/v1/ready",
        "ready",
        "The API can serve requests (the database answers)",
        "health",
        ready,
        HealthOut,
        problems=(503,),
    ),
]
