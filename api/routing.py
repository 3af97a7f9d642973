"""One table of operations drives both the aiohttp routes and the OpenAPI document.

Each request goes through the same steps before its handler runs: token (401), scope (403),
rate limit (429), path and query parameters (422), body size (413), media and content type
(415), body arrival (408) and decoding (400), JSON syntax (400), body schema (422). Handlers
get validated models and return a model. Requests without a valid token meet a per-address
rate limit before any of this (`limit_anonymous`).
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from api.leadwrites import LeadWrites
from api.problems import (
    ApiProblem,
    FieldError,
    body_errors,
    database_unavailable,
    invalid,
    parameter_errors,
)
from api.ratelimit import Quota, TokenBuckets, ratelimit_headers, source_key
from api.schemas import CampaignName, ExternalId, Text
from api.settings import ApiSettings
from api.tokens import Token, find_token, token_hash
from compliance.settings import ComplianceSettings
from store.db import database_unreachable
from store.scripts import campaign_required_fields

if TYPE_CHECKING:
    from crm.followup import FollowUpPlanner

JSON = "application/json"
# A script loaded with new required fields reaches the API's lead checks within this time.
REQUIRED_FIELDS_TTL_S = 5.0
# Content-Encodings the API decodes (the listener leaves bodies encoded); anything else is
# 415 before the body is read.
BODY_ENCODINGS = frozenset({"identity", "gzip", "deflate"})
# Source addresses whose anonymous buckets are remembered at once (a flood from more only
# resets the oldest ones).
MAX_ADDRESS_BUCKETS = 65_536
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
    "script": PathParam(
        "Script name (its `name`).",
        TypeAdapter(Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]),
        "payment_reminder_zh",
    ),
}


@dataclass
class ApiState:
    """What handlers share: the pool, settings, token cache, rate-limit buckets (per token,
    and per address for requests without a valid token) and the single-lead writer."""

    pool: asyncpg.Pool
    settings: ApiSettings
    compliance: ComplianceSettings
    default_region: str
    # Counts refused requests by reason (rate_limited, body_timeout, bad_encoding).
    on_refuse: Callable[[str], None] = lambda reason: None
    # Where intent models trained to run scripts' tests before a promotion are cached.
    nlu_cache: Path = Path("nlu-cache")
    buckets: TokenBuckets[int] = field(init=False)
    addresses: TokenBuckets[str] = field(init=False)
    lead_writes: LeadWrites = field(init=False)
    _tokens: dict[str, tuple[Token, float]] = field(default_factory=dict)
    # True while the revocation announcements arrive (ApiServer's listener): the cache is used
    # only then, so a revoked token can never outlive its announcement.
    revocations_heard: bool = False
    _required: dict[str, tuple[tuple[str, ...], float]] = field(default_factory=dict)
    # Hashes of secrets that were valid when last checked: their requests skip the
    # per-address limit (a flood of bad tokens from the same address must not throttle them).
    _known: set[bytes] = field(default_factory=set)
    # The follow-up planner behind /v1/leads/{lead_id}/follow-up (create_app gives one).
    planner: FollowUpPlanner | None = None

    def __post_init__(self) -> None:
        settings = self.settings
        self.buckets = TokenBuckets(settings.rate_per_s, settings.burst)
        self.addresses = TokenBuckets(
            settings.anonymous_rate_per_s, settings.anonymous_burst, max_keys=MAX_ADDRESS_BUCKETS
        )
        self.lead_writes = LeadWrites(self.pool)

    def carries_known_token(self, request: web.Request) -> bool:
        secret = bearer_secret(request)
        return secret is not None and token_hash(secret) in self._known

    async def required_fields(self, campaign: str) -> tuple[str, ...]:
        """The lead fields the campaign's current script needs (looked up at most every
        REQUIRED_FIELDS_TTL_S per campaign; nothing while no daemon has loaded the script)."""
        now = time.monotonic()
        cached = self._required.get(campaign)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self.pool.acquire() as conn:
            required = await campaign_required_fields(conn, campaign) or ()
        self._required[campaign] = (required, now + REQUIRED_FIELDS_TTL_S)
        return required

    async def authenticate(self, request: web.Request) -> Token:
        secret = bearer_secret(request)
        if secret is None:
            raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
        now = time.monotonic()
        cached = self._tokens.get(secret)
        if cached is not None and cached[1] > now and self.revocations_heard:
            return cached[0]
        token = await find_token(self.pool, secret)
        if token is None:
            self._tokens.pop(secret, None)
            self._known.discard(token_hash(secret))
            raise _unauthorized("unknown or revoked token")
        self._known.add(token_hash(secret))
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


def bearer_secret(request: web.Request) -> str | None:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


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
        statuses = set(self.problems) | {429}  # requests without a valid token: per address
        if self.scope is not None:
            statuses |= {401, 403, 503}  # the token is checked in the database
        if self.body is not None:
            statuses |= {400, 408, 413, 415, 422}
        if self.path_params or self.query is not None:
            statuses.add(422)
        return sorted(statuses)


def endpoint(op: Operation, state: ApiState) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        with _database_outage_is_503():
            token, quota = await _admit(op, state, request)
        path = _path_params(op, request)
        query = _query(op, request)
        body = await _body(op, request, state) if op.body else None
        with _database_outage_is_503():
            reply = await op.handler(ApiRequest(state, token, path, query, body))
        # Bytes go out as they are; a str body would pass through aiohttp's payload registry.
        payload = reply.body.model_dump_json().encode()
        headers = ratelimit_headers("token", quota) if quota is not None else None
        return web.Response(status=reply.status, body=payload, content_type=JSON, headers=headers)

    return handle


@contextmanager
def _database_outage_is_503() -> Iterator[None]:
    """A database that is away answers 503 with Retry-After, not 500. Only around the steps
    that ask the database: elsewhere an OSError is the client's connection."""
    try:
        yield
    except ApiProblem:
        raise
    except Exception as exc:
        if database_unreachable(exc):
            raise database_unavailable() from exc
        raise


async def _admit(
    op: Operation, state: ApiState, request: web.Request
) -> tuple[Token | None, Quota | None]:
    if op.scope is None:
        return None, None
    token = await state.authenticate(request)
    if op.scope not in token.scopes:
        raise ApiProblem(403, "forbidden", f"token {token.name!r} lacks the scope {op.scope}")
    quota = state.buckets.take(token.id)
    if not quota.allowed:
        state.on_refuse("rate_limited")
        raise ApiProblem(
            429,
            "rate_limited",
            f"token {token.name!r} is over its rate limit ({state.settings.rate_per_s:g}/s)",
            headers=ratelimit_headers("token", quota),
        )
    return token, quota


def limit_anonymous(state: ApiState) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: requests without a token that was valid when last checked spend from their
    source address's bucket before anything else happens (no database lookup once it is
    empty), so a flood of 401s cannot slow the requests that carry a good token."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if state.carries_known_token(request):
            return await handler(request)
        quota = state.addresses.take(source_key(request.remote))
        headers = ratelimit_headers("address", quota)
        if not quota.allowed:
            state.on_refuse("rate_limited")
            problem = ApiProblem(
                429,
                "rate_limited",
                "too many requests without a valid token from this address "
                f"({state.settings.anonymous_rate_per_s:g}/s)",
                headers=headers,
            )
            return problem.response(request.path)
        response = await handler(request)
        if "RateLimit" not in response.headers:  # a valid token's own limit says more
            response.headers.update(headers)
        return response

    return middleware


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


async def _body(op: Operation, request: web.Request, state: ApiState) -> Any:
    assert op.body is not None
    limit = state.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiProblem(413, "too_large", f"the request body is over {limit} bytes")
    if request.content_type != JSON:
        raise ApiProblem(415, "media_type", f"send the body as {JSON}")
    raw = await _read_body(request, state)
    try:
        return op.body.model_validate_json(raw)
    except ValidationError as exc:
        syntax = [e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
        if syntax:
            detail = f"the body is not JSON: {syntax[0]['msg']}"
            raise ApiProblem(400, "malformed_json", detail) from exc
        raise invalid(body_errors(exc)) from exc


async def _read_body(request: web.Request, state: ApiState) -> bytes:
    """The decoded body: 415 for an encoding we do not take, 408 when it does not arrive in
    time, 400 when it does not decode (a corrupt gzip stream was a 500 with tracebacks), 413
    when it decodes to more than max_body_bytes."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in BODY_ENCODINGS:
        state.on_refuse("bad_encoding")
        raise ApiProblem(
            415,
            "bad_encoding",
            "this Content-Encoding is not supported (send gzip, deflate or no encoding)",
            headers={"Accept-Encoding": "gzip, deflate"},
        )
    timeout = state.settings.body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            # aiohttp stops at client_max_size (413) for chunked bodies too.
            raw = await request.read()
    except TimeoutError as exc:
        state.on_refuse("body_timeout")
        detail = f"the request body did not arrive within {timeout:g} s"
        raise ApiProblem(408, "body_timeout", detail, close=True) from exc
    except web.RequestPayloadError as exc:
        state.on_refuse("bad_request")
        raise ApiProblem(400, "bad_request", "the request body's framing is broken") from exc
    try:
        return decode_body(raw, encoding, state.settings.max_body_bytes)
    except BodyDecodeError as exc:
        state.on_refuse("bad_encoding")
        raise ApiProblem(400, "bad_encoding", str(exc)) from exc


class BodyDecodeError(ValueError):
    pass


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """`raw` decoded as its Content-Encoding says (the listener leaves bodies encoded, so a
    bad stream is our 400 rather than an error inside aiohttp's parser); 413 past `limit`."""
    if encoding == "identity":
        return raw
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:  # deflate: zlib-wrapped as RFC 9110 says, or raw deflate as some clients send it
        wbits = zlib.MAX_WBITS if raw[:1] and raw[0] & 0x0F == 8 else -zlib.MAX_WBITS
    stream = zlib.decompressobj(wbits)
    try:
        decoded = stream.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BodyDecodeError(f"the request body is not valid {encoding} data") from exc
    if len(decoded) > limit or stream.unconsumed_tail:
        raise ApiProblem(413, "too_large", f"the request body decodes to over {limit} bytes")
    if not stream.eof or stream.unused_data:
        raise BodyDecodeError(f"the request body is not one whole {encoding} stream")
    return decoded
