"""RFC 9457 problem details: every error the API returns is `application/problem+json`.

Validation errors carry an `errors` list; each entry names the field at fault with a JSON
pointer into the request body (`#/leads/3/phone`) or the name of a path or query parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "urn:outdial:problem:"


class FieldError(BaseModel):
    """One thing wrong with the request, and where."""

    model_config = ConfigDict(extra="forbid")

    detail: str
    code: str = Field(description="Short machine-readable reason, e.g. bad_number.")
    pointer: str | None = Field(
        default=None, description="JSON pointer into the request body, e.g. #/leads/0/phone."
    )
    parameter: str | None = Field(default=None, description="Name of a path or query parameter.")


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class ApiProblem(Exception):
    """Raised anywhere in a request's handling; becomes a problem+json response."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        # The connection cannot go on (a body half read or undecodable): close after this.
        self.close = close

    def response(self, instance: str | None) -> web.Response:
        problem = Problem(
            type=_TYPE_BASE + self.code,
            title=HTTPStatus(self.status).phrase,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors or None,
        )
        response = web.Response(
            status=self.status,
            body=problem.model_dump_json(exclude_none=True),
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )
        if self.close:
            response.force_close()
        return response


# While the database is away: how long a client is asked to wait before trying again (about
# what a restart of PostgreSQL takes; the pool reconnects on the next request).
DATABASE_RETRY_AFTER_S = 5


def database_unavailable() -> ApiProblem:
    """503 with Retry-After: the request may succeed once the database is back."""
    return ApiProblem(
        503,
        "database_unavailable",
        "the database is not reachable; try again shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def invalid(errors: Sequence[FieldError]) -> ApiProblem:
    """422 with the field errors (at least one)."""
    first = errors[0].detail
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiProblem(422, "validation", f"the request is not valid: {first}{more}", errors=errors)


def body_field(pointer_parts: Sequence[str | int], detail: str, code: str) -> FieldError:
    return FieldError(detail=detail, code=code, pointer=pointer(pointer_parts))


def pointer(parts: Sequence[str | int]) -> str:
    """`#/leads/3/phone`; `~` and `/` escaped as RFC 6901 says."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "#" + "".join("/" + p for p in escaped)


def body_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors on a body as field errors with JSON pointers."""
    return [
        FieldError(detail=_message(e), code=e["type"], pointer=pointer(tuple(e["loc"])))
        for e in exc.errors(include_url=False)
    ]


def parameter_errors(exc: ValidationError, name: str | None = None) -> list[FieldError]:
    """pydantic's errors on parameters: `name`, else the first element of each error's loc."""
    return [
        FieldError(
            detail=_message(e),
            code=e["type"],
            parameter=name if name is not None else str(e["loc"][0] if e["loc"] else ""),
        )
        for e in exc.errors(include_url=False)
    ]


def _message(error: Any) -> str:
    # Validators raising ValueError read "Value error, <our text>": keep our text.
    return str(error["msg"]).removeprefix("Value error, ")
