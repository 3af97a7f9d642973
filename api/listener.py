"""Where the API (and the metrics endpoint) listen: aiohttp hardened against hostile clients.

aiohttp as it comes lets a client hold a connection for an hour without sending a request,
puts no bound on connections, answers its parser's errors in text/plain quoting the offending
header, and logs them as ERROR tracebacks carrying it (a bearer token among them). Here:

- a connection whose first request head is not complete within `header_timeout_s` is closed,
  an idle keep-alive connection after `keepalive_timeout_s`, and every connection after
  `keepalive_requests` requests;
- connections beyond `max_connections` get a 503 at once and are closed;
- the parser's errors are problem+json with a fixed text (nothing of the request in it), and
  are logged at DEBUG without a traceback, as are clients that break off mid-request;
- bodies are left encoded for the application to decode (and refuse with a 4xx);
- `on_refuse(reason)` counts each of these: capacity, header_timeout, bad_request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from api.problems import ApiProblem, Problem
from api.settings import ListenerLimits

log = logging.getLogger(__name__)

OnRefuse = Callable[[str], None]


class GuardedRequestHandler(web.RequestHandler):
    """One connection: aiohttp's handler with the deadlines, answers and logging above."""

    def __init__(
        self, manager: web.Server, *, limits: ListenerLimits, on_refuse: OnRefuse, **kwargs: Any
    ) -> None:
        super().__init__(
            manager,
            keepalive_timeout=limits.keepalive_timeout_s,
            lingering_time=limits.lingering_s,
            access_log=None,
            # Bodies stay encoded: the API decodes them itself and answers a bad stream with
            # 400 (inside aiohttp's parser it became a 500 with tracebacks, or text/plain).
            auto_decompress=False,
            **kwargs,
        )
        self._limits = limits
        self._on_refuse = on_refuse
        self._head_deadline: asyncio.TimerHandle | None = None
        self.requests_begun = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        loop = asyncio.get_running_loop()
        self._head_deadline = loop.call_later(self._limits.header_timeout_s, self._head_overdue)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _head_overdue(self) -> None:
        if self.requests_begun == 0 and self.transport is not None:
            self._on_refuse("header_timeout")
            log.debug("HTTP client sent no complete request in time: closed")
            self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The parser's errors (and the rare failure outside our middleware) as problem+json;
        aiohttp's own answer quotes the request and its log line carries a traceback."""
        self.requests_begun += 1
        problem = _problem_for(status, exc)
        if problem.status >= 500:
            log.error("HTTP request from %s failed", request.remote, exc_info=exc)
        else:
            self._on_refuse("bad_request")
            log.debug("HTTP request from %s refused: %s", request.remote, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun: no error response can follow")
        response = problem.response(None)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A client's broken body or early close is its fault, not ours: no ERROR traceback."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, web.RequestPayloadError | ConnectionError):
            log.debug("HTTP client error: %s", type(exc).__name__)
            return
        super().log_exception(*args, **kwargs)


def _problem_for(status: int, exc: BaseException | None) -> ApiProblem:
    if isinstance(exc, LineTooLong):
        return ApiProblem(431, "bad_request", "a request line or header field is too long")
    if status < 500:
        return ApiProblem(status, "bad_request", "the request is not valid HTTP/1.1")
    return ApiProblem(status, "internal", "internal error (see the daemon log)")


class _Refused(asyncio.Protocol):
    """A connection over the cap: a 503 problem, then close (nothing is read)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_REFUSED)
        transport.close()


def _refused_response() -> bytes:
    body = Problem(
        type="urn:outdial:problem:too_many_connections",
        title="Service Unavailable",
        status=503,
        detail="too many open connections; try again shortly",
    ).model_dump_json(exclude_none=True)
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return (head + body).encode()


_REFUSED = _refused_response()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are GuardedRequestHandlers, at most `max_connections`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: ListenerLimits,
        on_refuse: OnRefuse,
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limits = limits
        self._on_refuse = on_refuse

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection, self._host, self._port, backlog=self._backlog, reuse_address=True
        )

    def _connection(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self._limits.max_connections:
            self._on_refuse("capacity")
            return _Refused()
        return GuardedRequestHandler(
            server,
            loop=asyncio.get_running_loop(),
            limits=self._limits,
            on_refuse=self._on_refuse,
        )


def keepalive_limit(
    limits: ListenerLimits,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: marks each request as begun (the head deadline no longer applies) and
    closes the connection after `keepalive_requests` requests."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        protocol = request.protocol
        begun = 0
        if isinstance(protocol, GuardedRequestHandler):
            protocol.requests_begun += 1
            begun = protocol.requests_begun
        response = await handler(request)
        if begun >= limits.keepalive_requests:
            response.force_close()
        return response

    return middleware
