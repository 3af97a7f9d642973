"""One table of operations drives both the aiohttp routes and the OpenAPI document.

Each request goes through the same steps before its handler runs: token (401), scope (403),
rate limit (429), path and query parameters (422), body size (413), media type (415), JSON
syntax (400), body schema (422). Handlers get validated models and return a model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from compliance.settings import ComplianceSettings
from outdial.api.leadwrites import LeadWrites
from outdial.api.problems import (
    ApiProblem,
    FieldError,
    body_errors,
    invalid,
    parameter_errors,
)
from outdial.api.ratelimit import TokenBuckets, retry_after
from outdial.api.schemas import CampaignName, ExternalId, Text
from outdial.api.settings import ApiSettings
from outdial.api.tokens import Token, find_token

if TYPE_CHECKING:
    from outdial.followup import FollowUpPlanner

JSON = "application/json"
_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class PathParam:
    description: str
    adapter: TypeAdapter[str]
    example: str


PATH_PARAMS: dict[str, PathParam] = {
    "campaign": PathParam("Campaign name.", TypeAdapter(CampaignName), "spring"),
    "external_id": PathParam("The CRM's id of the lead.", TypeAdapter(ExternalId), "crm-1001"),
    "call_id": PathParam(
        "The call's id (OUTDIAL_CALL_ID on the channel, `call_id` in webhooks).",
        TypeAdapter(Annotated[Text, Field(min_length=1, max_length=200)]),
        "c-20240601-0001",
    ),
    "lead_id": PathParam(
        "Outdial's id of the lead (`id` in lead responses, `lead_id` in webhooks).",
        TypeAdapter(Annotated[str, Field(pattern=r"^[1-9][0-9]{0,17}$")]),
        "1042",
    ),
}


@dataclass
class ApiState:
    """What handlers share: the pool, settings, token cache, rate-limit buckets and the
    single-lead writer."""

    pool: asyncpg.Pool
    settings: ApiSettings
    compliance: ComplianceSettings
    default_region: str
    buckets: TokenBuckets = field(init=False)
    lead_writes: LeadWrites = field(init=False)
    _tokens: dict[str, tuple[Token, float]] = field(default_factory=dict)
    # True while the revocation announcements arrive (ApiServer's listener): the cache is used
    # only then, so a revoked token can never outlive its announcement.
    revocations_heard: bool = False
    # The follow-up planner behind /v1/leads/{lead_id}/follow-up (create_app gives one).
    planner: FollowUpPlanner | None = None

    def __post_init__(self) -> None:
        self.buckets = TokenBuckets(self.settings.rate_per_s, self.settings.burst)
        self.lead_writes = LeadWrites(self.pool)

    async def authenticate(self, request: web.Request) -> Token:
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
        secret = secret.strip()
        now = time.monotonic()
        cached = self._tokens.get(secret)
        if cached is not None and cached[1] > now and self.revocations_heard:
            return cached[0]
        token = await find_token(self.pool, secret)
        if token is None:
            self._tokens.pop(secret, None)
            raise _unauthorized("unknown or revoked token")
        if self.settings.token_cache_s > 0 and self.revocations_heard:
            self._tokens[secret] = (token, now + self.settings.token_cache_s)
        return token

    def forget_token(self, token_id: int) -> None:
        """A token was revoked (on any daemon): never trust its cached check again."""
        for secret, (token, _) in list(self._tokens.items()):
            if token.id == token_id:
                del self._tokens[secret]

    def cached_token_ids(self) -> set[int]:
        return {token.id for token, _ in self._tokens.values()}

    def stop_caching(self) -> None:
        self.revocations_heard = False
        self._tokens.clear()


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class ApiRequest:
    state: ApiState
    token: Token | None
    path: dict[str, str]
    query: Any
    body: Any

    @property
    def who(self) -> Token:
        assert self.token is not None  # every write operation has a scope
        return self.token


@dataclass(frozen=True)
class Reply:
    body: BaseModel
    status: int = 200


Handler = Callable[[ApiRequest], Awaitable[Reply]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # `{name}` parameters, the same in aiohttp and OpenAPI
    operation_id: str
    summary: str
    tag: str
    handler: Handler
    response: type[BaseModel]
    success: tuple[int, ...] = (200,)
    scope: str | None = None  # None: no token needed
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    problems: tuple[int, ...] = ()  # statuses beyond those every operation of its kind has
    description: str = ""

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)

    def problem_statuses(self) -> list[int]:
        statuses = set(self.problems)
        if self.scope is not None:
            statuses |= {401, 403, 429}
        if self.body is not None:
            statuses |= {400, 413, 415, 422}
        if self.path_params or self.query is not None:
            statuses.add(422)
        return sorted(statuses)


def endpoint(op: Operation, state: ApiState) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        token = await _admit(op, state, request)
        path = _path_params(op, request)
        query = _query(op, request)
        body = await _body(op, request, state.settings.max_body_bytes) if op.body else None
        reply = await op.handler(ApiRequest(state, token, path, query, body))
        # Bytes go out as they are; a str body would pass through aiohttp's payload registry.
        payload = reply.body.model_dump_json().encode()
        return web.Response(status=reply.status, body=payload, content_type=JSON)

    return handle


async def _admit(op: Operation, state: ApiState, request: web.Request) -> Token | None:
    if op.scope is None:
        return None
    token = await state.authenticate(request)
    if op.scope not in token.scopes:
        raise ApiProblem(403, "forbidden", f"token {token.name!r} lacks the scope {op.scope}")
    wait = state.buckets.take(token.id)
    if wait > 0:
        raise ApiProblem(
            429,
            "rate_limited",
            f"token {token.name!r} is over its rate limit ({state.settings.rate_per_s:g}/s)",
            headers={"Retry-After": retry_after(wait)},
        )
    return token


def _path_params(op: Operation, request: web.Request) -> dict[str, str]:
    values: dict[str, str] = {}
    errors: list[FieldError] = []
    for name in op.path_params:
        try:
            values[name] = PATH_PARAMS[name].adapter.validate_python(request.match_info[name])
        except ValidationError as exc:
            errors += parameter_errors(exc, name)
    if errors:
        raise invalid(errors)
    return values


def _query(op: Operation, request: web.Request) -> Any:
    if op.query is None:
        return None
    repeated = [k for k in request.query if len(request.query.getall(k)) > 1]
    if repeated:
        raise invalid(
            [FieldError(detail="given more than once", code="repeated", parameter=repeated[0])]
        )
    try:
        return op.query.model_validate(dict(request.query))
    except ValidationError as exc:
        raise invalid(parameter_errors(exc)) from exc


async def _body(op: Operation, request: web.Request, limit: int) -> Any:
    assert op.body is not None
    if request.content_length is not None and request.content_length > limit:
        raise ApiProblem(413, "too_large", f"the request body is over {limit} bytes")
    if request.content_type != JSON:
        raise ApiProblem(415, "media_type", f"send the body as {JSON}")
    raw = await request.read()  # aiohttp stops at client_max_size (413) for chunked bodies
    try:
        return op.body.model_validate_json(raw)
    except ValidationError as exc:
        syntax = [e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
        if syntax:
            detail = f"the body is not JSON: {syntax[0]['msg']}"
            raise ApiProblem(400, "malformed_json", detail) from exc
        raise invalid(body_errors(exc)) from exc
