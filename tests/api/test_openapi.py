"""The served OpenAPI document: committed in docs/, and honoured by every response.

schemathesis generates requests (valid and invalid) from the document the server serves and
checks each response: never a 5xx, a documented status, the documented media type, headers
and body schema.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import parse_qsl

from api.openapi import document_text
from api.server import OPERATIONS
from tests.api.conftest import Api

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


async def test_served_document_is_the_committed_one(api: Api, repo_root: Path) -> None:
    status, served, response = await api.call("GET", "/openapi.json", token="none")
    assert status == 200
    assert response.content_type == "application/json"
    committed = json.loads((repo_root / "docs" / "openapi.json").read_text())
    assert served == committed, "regenerate: outdial api openapi > docs/openapi.json"
    assert (repo_root / "docs" / "openapi.json").read_text() == document_text(OPERATIONS)
    assert served["openapi"] == "3.1.0"


def test_every_operation_names_its_scope_and_problems() -> None:
    document = json.loads(document_text(OPERATIONS))
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            responses = op["responses"]
            if op["security"]:
                assert {"401", "403", "429"} <= set(responses), (method, path)
                assert responses["401"]["headers"]["WWW-Authenticate"]["required"]
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= set(responses), (method, path)
            for status, response in responses.items():
                media = next(iter(response["content"]))
                problem = int(status) >= 400
                assert media == ("application/problem+json" if problem else "application/json")


async def test_schemathesis_finds_no_server_error_or_schema_violation(
    api: Api, tmp_path: Path
) -> None:
    # Real rows behind the document's examples, so those requests reach the handlers' logic.
    await api.call("PUT", "/v1/campaigns/spring/leads/crm-1001", {"phone": "+44 161 496 0000"})
    await api.pool.execute(
        """INSERT INTO calls (call_id, campaign_id, lead_id, script_name)
           SELECT 'c-20240601-0001', campaign_id, id, 'collections_v1' FROM leads"""
    )
    await api.pool.execute(
        "INSERT INTO turns (call_id, seq, speaker, text) VALUES ('c-20240601-0001', 1, 'bot', 'Hi')"
    )
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api.base}/openapi.json",
        "--header", f"Authorization: Bearer {api.token}",
        "--checks", ",".join(CHECKS),
        "--max-examples", "12",
        "--seed", "20240601",
        "--phases", "examples,coverage,fuzzing",
        "--workers", "1",
        "--no-color",
        "--request-timeout", "10",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,  # its .hypothesis directory goes there
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "Test cases:" in text or "passed" in text


def _guide_curls(guide: str) -> list[list[str]]:
    """Every curl command of the operator guide, as shell words (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", guide)
    commands = []
    for line in text.splitlines():
        for part in line.split(";"):
            if part.strip().startswith("curl ") and "$API" in part:
                commands.append(shlex.split(part.strip()))
    return commands


def test_every_curl_example_in_the_guide_is_a_valid_request(repo_root: Path) -> None:
    """The guide's curl examples name real operations, with bodies and queries they accept."""
    guide = (repo_root / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    curls = _guide_curls(guide)
    assert len(curls) >= 15
    seen = set()
    for words in curls:
        method = words[words.index("-X") + 1] if "-X" in words else "GET"
        url = next(w for w in words if w.startswith("$API"))
        path, _, query = url.removeprefix("$API").partition("?")
        operation = next(
            (
                op
                for op in OPERATIONS
                if op.method == method
                and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", op.path), path)
            ),
            None,
        )
        assert operation is not None, f"no operation {method} {path}"
        seen.add(operation.operation_id)
        if "-d" in words:
            assert operation.body is not None, operation.operation_id
            operation.body.model_validate(json.loads(words[words.index("-d") + 1]))
        if query:
            assert operation.query is not None
            operation.query.model_validate(dict(parse_qsl(query)))
    # The common tasks are all shown.
    assert {"putLead", "createCampaign", "pauseCampaign", "campaignStats"} <= seen
