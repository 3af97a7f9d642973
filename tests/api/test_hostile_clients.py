"""The API against hostile clients (issue 23): each finding's probe, sent on a raw socket as
the attacker sent it, now gets a bounded connection, a 4xx problem+json and a clean log."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from api.server import ApiServer
from api.tokens import SCOPES, create_token
from outdial.config import LogSettings
from outdial.logging import setup_logging
from tests.api.conftest import SCRIPT, api_config, start_api
from tests.dialer.helpers import until

LEAD = b'{"phone": "+44 161 496 0000"}'


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        assert self.headers.get("content-type") == "application/problem+json", self
        return json.loads(self.body)


@dataclass
class Target:
    port: int
    token: str
    pool: asyncpg.Pool

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def send(self, data: bytes) -> Reply:
        """Send `data` on a new connection; the one response it gets."""
        reader, writer = await self.open()
        writer.write(data)
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                reply = parse_head(head)
                length = int(reply.headers.get("content-length", "0"))
                body = await reader.readexactly(length)
        finally:
            writer.close()
        return Reply(reply.status, reply.headers, body)

    def request(
        self, method: str, path: str, body: bytes = b"", *, token: bool = True, **headers: str
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: api"]
        if token:
            lines.append(f"Authorization: Bearer {self.token}")
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_head(head: bytes) -> Reply:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, b"")


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server still sends, once it has closed the connection (bounded)."""
    received = b""
    async with asyncio.timeout(15):
        while chunk := await reader.read(65536):
            received += chunk
    return received


def refused(reason: str) -> float:
    sample = REGISTRY.get_sample_value(
        "outdial_http_refused_total", {"listener": "api", "reason": reason}
    )
    return sample or 0.0


@pytest.fixture
def log_stream(restore_logging: None) -> io.StringIO:
    """The daemon's logging (filter included) into a string, at DEBUG."""
    stream = io.StringIO()
    setup_logging(LogSettings(level="DEBUG"), stream=stream)
    return stream


@asynccontextmanager
async def serving(db_pool: asyncpg.Pool, pg_url: str, **api: object) -> AsyncIterator[Target]:
    async with db_pool.acquire() as conn:
        token = await create_token(conn, "crm", list(SCOPES))
        await conn.execute("INSERT INTO scripts (name) VALUES ($1)", SCRIPT)
        await conn.execute(
            "INSERT INTO campaigns (name, script_name) VALUES ('spring', $1)", SCRIPT
        )
    server, base = await start_api(db_pool, api_config(pg_url, token_cache_s=0, **api))
    try:
        yield Target(int(base.rsplit(":", 1)[1]), token, db_pool)
    finally:
        await server.stop()


@pytest.fixture
async def target(db_pool: asyncpg.Pool, pg_url: str) -> AsyncIterator[Target]:
    async with serving(
        db_pool, pg_url, header_timeout_s=0.5, keepalive_timeout_s=1.0, body_timeout_s=0.5
    ) as served:
        yield served


# -- finding 2: connections held without a request ----------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /v1/hea", b"GET /v1/health HTTP/1.1\r\nHost: api\r\n"],
    ids=["nothing", "half a request line", "headers without the blank line"],
)
async def test_a_connection_without_a_whole_request_is_closed(target: Target, sent: bytes) -> None:
    before = refused("header_timeout")
    reader, writer = await target.open()
    writer.write(sent)
    assert await closed_by_server(reader) == b""
    writer.close()
    assert refused("header_timeout") == before + 1


async def test_an_idle_keepalive_connection_is_closed(target: Target) -> None:
    reader, writer = await target.open()
    writer.write(target.request("GET", "/v1/health", token=False))
    answered = await closed_by_server(reader)  # keepalive_timeout_s after the response
    writer.close()
    assert answered.startswith(b"HTTP/1.1 200")


async def test_a_body_that_never_arrives_is_408(target: Target) -> None:
    before = refused("body_timeout")
    reader, writer = await target.open()
    head = target.request("POST", "/v1/dnc/check", Content_Type="application/json")
    writer.write(head.replace(b"\r\n\r\n", b"\r\nContent-Length: 100\r\n\r\n") + b'{"pho')
    answered = await closed_by_server(reader)
    writer.close()
    reply = parse_head(answered.split(b"\r\n\r\n")[0] + b"\r\n\r\n")
    assert reply.status == 408
    assert b'"urn:outdial:problem:body_timeout"' in answered
    assert refused("body_timeout") == before + 1


async def test_connections_beyond_the_cap_get_503(db_pool: asyncpg.Pool, pg_url: str) -> None:
    async with serving(
        db_pool, pg_url, max_connections=3, header_timeout_s=60, keepalive_timeout_s=60
    ) as target:
        before = refused("capacity")
        held = [await target.open() for _ in range(3)]
        reader, writer = await target.open()
        answered = await closed_by_server(reader)
        writer.close()
        assert answered.startswith(b"HTTP/1.1 503")
        assert b"application/problem+json" in answered and b"Retry-After: 1" in answered
        assert refused("capacity") == before + 1
        # One closed, one served: the cap counts open connections, not history.
        held[0][1].close()
        health = target.request("GET", "/v1/health", token=False)

        async def served() -> bool:  # once the server has seen the close
            return (await target.send(health)).status == 200

        async with asyncio.timeout(10):
            await until(served)
        for _, w in held[1:]:
            w.close()


async def test_a_connection_serves_at_most_keepalive_requests(
    db_pool: asyncpg.Pool, pg_url: str
) -> None:
    async with serving(db_pool, pg_url, keepalive_requests=2) as target:
        reader, writer = await target.open()
        writer.write(target.request("GET", "/v1/health") * 3)
        answered = await closed_by_server(reader)
        writer.close()
        assert answered.count(b"HTTP/1.1 200") == 2
        assert b"Connection: close" in answered


# -- finding 3: corrupt and unsupported bodies ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/campaigns/spring/leads/x"), ("POST", "/v1/dnc/check")],
)
@pytest.mark.parametrize(
    ("encoding", "body", "status"),
    [
        # mtime=0: the same bytes, so the same test id, in every xdist worker.
        ("gzip", gzip.compress(LEAD, mtime=0)[:-12] + b"\x00" * 12, 400),
        ("gzip", b"0123456789", 400),
        ("deflate", b"0123456789", 400),
        ("deflate", zlib.compress(LEAD)[:8], 400),
        ("br", b"0123456789", 415),
        ("zstd", b"0123456789", 415),
        ("compress", LEAD, 415),
        ("gzip, gzip", gzip.compress(gzip.compress(LEAD, mtime=0), mtime=0), 415),
    ],
)
async def test_a_body_that_does_not_decode_is_4xx(
    target: Target,
    log_stream: io.StringIO,
    method: str,
    path: str,
    encoding: str,
    body: bytes,
    status: int,
) -> None:
    reply = await target.send(
        target.request(
            method, path, body, Content_Type="application/json", Content_Encoding=encoding
        )
    )
    assert reply.status == status
    problem = reply.problem()
    assert problem["status"] == status and problem["type"] == "urn:outdial:problem:bad_encoding"
    await asyncio.sleep(0.1)  # the lingering read after the response
    logged = log_stream.getvalue()
    assert "ERROR" not in logged and "Traceback" not in logged, logged


async def test_a_good_gzip_body_still_works(target: Target) -> None:
    reply = await target.send(
        target.request(
            "POST",
            "/v1/dnc/check",
            gzip.compress(LEAD),
            Content_Type="application/json",
            Content_Encoding="gzip",
        )
    )
    assert reply.status == 200 and json.loads(reply.body)["listed"] is False


async def test_a_gzip_bomb_is_413(target: Target) -> None:
    bomb = gzip.compress(b'{"phone": "' + b"0" * 50_000_000 + b'"}')  # about 50 kB
    reply = await target.send(
        target.request(
            "POST", "/v1/dnc/check", bomb, Content_Type="application/json", Content_Encoding="gzip"
        )
    )
    assert reply.status == 413 and reply.problem()["type"] == "urn:outdial:problem:too_large"


# -- finding 8: aiohttp's parser errors ------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "secret"),
    [
        (
            b"GET /v1/campaigns HTTP/1.1\r\nHost: api\r\nX-Padding: secret-pad-"
            + b"A" * 9000
            + b"\r\n\r\n",
            431,
            b"secret-pad-",
        ),
        (
            b"POST /v1/dnc/check HTTP/1.1\r\nHost: api\r\nContent-Length: -1\r\n\r\n",
            400,
            b"Content-Length",
        ),
        (
            b"POST /v1/dnc/check HTTP/1.1\r\nHost: api\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            b"Transfer-Encoding",
        ),
        (b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: api\r\n\r\n", 431, b"xxxxxxxx"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, b"\x16\x03"),
    ],
    ids=["oversized header", "negative length", "length and chunked", "long url", "tls hello"],
)
async def test_parser_errors_are_problems_that_echo_nothing(
    target: Target, log_stream: io.StringIO, request_bytes: bytes, status: int, secret: bytes
) -> None:
    before = refused("bad_request")
    reply = await target.send(request_bytes)
    assert reply.status == status
    assert reply.problem()["status"] == status
    assert secret not in reply.body
    assert refused("bad_request") == before + 1
    logged = log_stream.getvalue()
    assert "ERROR" not in logged and "Traceback" not in logged
    assert secret.decode("latin-1") not in logged


# -- finding 4: secrets in the log ----------------------------------------------------------------


async def test_no_leak_case_puts_a_secret_in_the_log(
    target: Target, log_stream: io.StringIO
) -> None:
    """Each way a token or credential reached the log, sent for real; then the log is
    scanned for the secrets, for tracebacks and for ERROR lines."""
    token = target.token
    # 1. A bearer token in a header over 8190 bytes (aiohttp logged its first 100 bytes).
    huge = f"GET /v1/campaigns HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {token}"
    await target.send(huge.encode() + b"A" * 9000 + b"\r\n\r\n")
    # 2. The token in a corrupt gzip request (three ERROR tracebacks before).
    await target.send(
        target.request(
            "POST",
            "/v1/dnc/check",
            b"0123456789",
            Content_Type="application/json",
            Content_Encoding="gzip",
        )
    )
    # 3. The token, URL credentials and a query token in a request line.
    await target.send(
        f"GET /v1/campaigns?token={token}&next=https://u:url-pass-7@h/ HTTP/1.1\r\n"
        f"Host: api\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    # 4. A client that disconnects mid-body (an ERROR traceback before).
    reader, writer = await target.open()
    head = target.request("POST", "/v1/dnc/check", Content_Type="application/json")
    writer.write(head.replace(b"\r\n\r\n", b"\r\nContent-Length: 100\r\n\r\n") + b'{"ph')
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.transport.abort()
    async with asyncio.timeout(10):
        await until(lambda: "the client disconnected" in log_stream.getvalue())
    # 5. An unknown token with a password-style Basic header.
    await target.send(
        b"GET /v1/calls/c-1 HTTP/1.1\r\nHost: api\r\nAuthorization: Basic dXNlcjpodW50ZXIy\r\n\r\n"
    )
    logged = log_stream.getvalue()
    for secret in (token, token[4:24], "url-pass-7", "dXNlcjpodW50ZXIy"):
        assert secret not in logged, secret
    assert "Traceback" not in logged and " ERROR " not in logged, logged
    assert "the client disconnected" in logged  # at INFO, one line


# -- finding 5: unauthenticated floods ----------------------------------------------------------


async def test_requests_without_a_valid_token_are_limited_per_address(
    db_pool: asyncpg.Pool, pg_url: str
) -> None:
    async with (
        serving(db_pool, pg_url, anonymous_rate_per_s=0.01, anonymous_burst=5) as target,
        aiohttp.ClientSession(f"http://127.0.0.1:{target.port}") as session,
    ):
        # A known-good token first: it is remembered as valid.
        good = {"Authorization": f"Bearer {target.token}"}
        async with session.get("/v1/campaigns", headers=good) as response:
            assert response.status == 200
            assert response.headers["RateLimit-Policy"].startswith('"token";q=10000;w=')
            assert response.headers["RateLimit"].startswith('"token";r=9999;t=')
        statuses, last = [], None
        for i in range(8):
            bad = {} if i % 2 else {"Authorization": "Bearer odt_" + "A" * 43}
            async with session.get("/v1/campaigns", headers=bad) as response:
                statuses.append(response.status)
                last = response
                problem = await response.json(content_type=None)
        # The good token's first request was spent from the address's bucket too (it was
        # not known to be good before it was checked).
        assert statuses == [401] * 4 + [429] * 4
        assert last is not None
        assert last.headers["RateLimit-Policy"] == '"address";q=5;w=500'
        assert last.headers["RateLimit"].startswith('"address";r=0;t=')
        assert int(last.headers["Retry-After"]) >= 1
        assert problem["type"] == "urn:outdial:problem:rate_limited"
        # The flood from this address does not touch the good token's requests.
        async with session.get("/v1/campaigns", headers=good) as response:
            assert response.status == 200
        # Public endpoints count against the address too.
        async with session.get("/v1/health") as response:
            assert response.status == 429


async def test_the_anonymous_limit_shows_on_success(db_pool: asyncpg.Pool, pg_url: str) -> None:
    async with serving(db_pool, pg_url, anonymous_rate_per_s=1, anonymous_burst=20) as target:
        reply = await target.send(target.request("GET", "/v1/health", token=False))
        assert reply.status == 200
        assert reply.headers["ratelimit-policy"] == '"address";q=20;w=20'
        assert reply.headers["ratelimit"] == '"address";r=19;t=1'


async def test_server_stop_is_prompt_with_idle_clients(db_pool: asyncpg.Pool, pg_url: str) -> None:
    config = api_config(pg_url, header_timeout_s=300, keepalive_timeout_s=300)
    server = ApiServer(config, db_pool)
    port = await server.start()
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    await asyncio.wait_for(server.stop(), 10)
    for reader, writer in idle:
        assert await closed_by_server(reader) == b""
        writer.close()


# -- finding 7: campaign settings without bounds, dot names --------------------------------------


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": "big", "settings": {"max_channels": 2**63}}, "#/settings/max_channels"),
        ({"name": "fast", "settings": {"cps": 1e308}}, "#/settings/cps"),
        (
            {"name": "hols", "settings": {"holidays": ["2030-01-01"] * 10_000}},
            "#/settings/holidays",
        ),
        ({"name": "tries", "settings": {"max_attempts": 10**6}}, "#/settings/max_attempts"),
        ({"name": "."}, "#/name"),
        ({"name": ".."}, "#/name"),
        ({"name": ".hidden"}, "#/name"),
    ],
)
async def test_campaign_settings_have_upper_bounds_and_names_no_leading_dot(
    target: Target, body: dict[str, object], pointer: str
) -> None:
    sent = json.dumps({"script": SCRIPT, **body}).encode()
    reply = await target.send(
        target.request("POST", "/v1/campaigns", sent, Content_Type="application/json")
    )
    assert reply.status == 422, reply
    assert [e["pointer"] for e in reply.problem()["errors"]] == [pointer]  # type: ignore[union-attr]
    assert await target.pool.fetchval("SELECT count(*) FROM campaigns") == 1  # 'spring' alone


@pytest.mark.parametrize("name", [".", "..", ".hidden"])
async def test_dot_campaign_names_in_paths_are_422(target: Target, name: str) -> None:
    reply = await target.send(target.request("GET", f"/v1/campaigns/{name}/stats"))
    assert reply.status == 422, reply
    assert reply.problem()["errors"][0]["parameter"] == "campaign"  # type: ignore[index]
