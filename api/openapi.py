"""The OpenAPI 3.1 document, generated from the operation table and the pydantic models.

The server serves it at `/openapi.json`; `docs/openapi.json` is the same document, written by
`outdial api openapi > docs/openapi.json` (a test keeps the two equal).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.problems import PROBLEM_JSON, Problem
from api.routing import JSON, PATH_PARAMS, Operation
from api.tokens import SCOPES

API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"
_RATELIMIT = {
    "RateLimit-Policy": "The limit that applied (IETF draft-ietf-httpapi-ratelimit-headers): "
    '`"token";q=<burst>;w=<seconds to refill>` per token, `"address"` for requests without '
    "a valid token.",
    "RateLimit": 'What is left of it: `"<policy>";r=<requests left>;t=<seconds until full>`.',
}
_HEADERS = {
    401: {"WWW-Authenticate": "The scheme to use: Bearer."},
    429: {"Retry-After": "Seconds until a request may be sent again.", **_RATELIMIT},
    503: {"Retry-After": "Seconds until the request may be tried again."},
}
_DESCRIPTION = (
    """\
The outdial HTTP API for CRM integration: push leads, control campaigns, keep the do-not-call
lists, and read what happened on calls.

Authenticate with `Authorization: Bearer <token>`; tokens are made with
`outdial api token create NAME --scope ...`, and each operation names the scope it needs
(write does not imply read). Every write is recorded in the audit log. Errors are RFC 9457
problem details (`application/problem+json`); validation errors list each field at fault with
a JSON pointer into the body (`#/leads/3/phone`) or the name of a parameter.

Rate limits: each token has its own bucket; requests that carry no valid token share one per
source address, checked before authentication. Responses carry the IETF `RateLimit-Policy`
and `RateLimit` fields, and a 429 also `Retry-After`. Bodies may be sent gzip- or
deflate-encoded (`Content-Encoding`); other encodings get 415. While the database is not
reachable, requests that need it get 503 with `Retry-After`.

Scopes: """
    + ", ".join(SCOPES)
    + "."
)


def build_document(operations: list[Operation]) -> dict[str, Any]:
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "outdial API",
            "version": API_VERSION,
            "description": _DESCRIPTION,
            "license": {"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token."}
            },
        },
    }


def document_text(operations: list[Operation]) -> str:
    return json.dumps(build_document(operations), indent=2, ensure_ascii=False) + "\n"


_Key = tuple[type[BaseModel], JsonSchemaMode]


def _schemas(operations: list[Operation]) -> tuple[dict[_Key, Any], dict[str, Any]]:
    wanted: dict[_Key, None] = {(Problem, "serialization"): None}
    for op in operations:
        if op.body is not None:
            wanted[(op.body, "validation")] = None
        wanted[(op.response, "serialization")] = None
    refs, top = models_json_schema(list(wanted), ref_template=_REF)
    return dict(refs), dict(sorted(top.get("$defs", {}).items()))


def _operation(op: Operation, refs: dict[_Key, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        spec["description"] = op.description
    if op.scope is not None:
        spec["security"] = [{"bearer": [op.scope]}]
        spec["description"] = (op.description + " " if op.description else "") + (
            f"Scope: `{op.scope}`."
        )
    else:
        spec["security"] = []
    parameters = [_path_parameter(name) for name in op.path_params]
    if op.query is not None:
        parameters += _query_parameters(op.query)
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": refs[(op.body, "validation")]}},
        }
    spec["responses"] = _responses(op, refs)
    return spec


def _path_parameter(name: str) -> dict[str, Any]:
    param = PATH_PARAMS[name]
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": param.description,
        "schema": param.adapter.json_schema(),
        "example": param.example,
    }


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        prop.pop("default", None)
        out.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": description,
                "schema": prop,
            }
        )
    return out


def _responses(op: Operation, refs: dict[_Key, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in op.success:
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            # Sent whenever a limit applied (a public endpoint called with a token: none).
            "headers": _header_objects(_RATELIMIT, required=False),
            "content": {JSON: {"schema": refs[(op.response, "serialization")]}},
        }
    for status in op.problem_statuses():
        response: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": refs[(Problem, "serialization")]}},
        }
        if status in _HEADERS:
            response["headers"] = _header_objects(_HEADERS[status])
        responses[str(status)] = response
    return responses


def _header_objects(headers: dict[str, str], *, required: bool = True) -> dict[str, Any]:
    return {
        name: {"description": text, "required": required, "schema": {"type": "string"}}
        for name, text in headers.items()
    }
