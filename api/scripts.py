"""Script versions over the API: stage, list, promote (its tests must pass, or `force`,
recorded), roll back. The same operations as `outdial script stage|versions|promote|rollback`;
the daemon serves a newly live version from its next reload."""

from __future__ import annotations

import asyncio

from api.audit import audit
from api.problems import ApiProblem, body_field, invalid
from api.routing import ApiRequest, Operation, Reply
from api.schemas import (
    ScriptPromoted,
    ScriptPromoteIn,
    ScriptStageIn,
    ScriptVersionList,
    ScriptVersionOut,
)
from dialog import ScriptError, parse_script
from dialog.cases import CaseFileError, load_cases_text
from dialog.scripttests import ScriptTestError, stored_version_failures
from store.scripts import (
    ScriptVersion,
    ScriptVersionError,
    promote_script_version,
    rollback_script,
    script_versions,
    stage_script_version,
)

_ONE = "/v1/scripts/{script}"


def _not_found(exc: ScriptVersionError) -> ApiProblem:
    return ApiProblem(404, "not_found", str(exc))


def _out(v: ScriptVersion) -> ScriptVersionOut:
    return ScriptVersionOut.model_validate(v, from_attributes=True)


async def stage(req: ApiRequest) -> Reply:
    name = req.path["script"]
    body: ScriptStageIn = req.body
    try:
        loaded = await asyncio.to_thread(parse_script, body.source, f"{name}.yaml")
    except ScriptError as exc:
        errors = [body_field(["source"], str(issue), "invalid_script") for issue in exc.issues]
        raise invalid(errors) from exc
    if loaded.script.name != name:
        msg = f"the script is named {loaded.script.name!r}, not {name!r}"
        raise invalid([body_field(["source"], msg, "name_mismatch")])
    for file_name, text in body.cases.items():
        try:
            load_cases_text(text, file_name)
        except CaseFileError as exc:
            raise invalid([body_field(["cases", file_name], str(exc), "invalid_cases")]) from exc
    script = loaded.script
    version = await stage_script_version(
        req.state.pool, name, loaded.source, loaded.content_hash, script.required_fields(),
        body.cases, f"api:{req.who.name}",
    )  # fmt: skip
    await audit(req.state.pool, req.who, "script.stage", f"script/{name}", {"version": version})
    [staged] = [v for v in await script_versions(req.state.pool, name) if v.version == version]
    return Reply(_out(staged), 201)


async def list_versions(req: ApiRequest) -> Reply:
    try:
        versions = await script_versions(req.state.pool, req.path["script"])
    except ScriptVersionError as exc:
        raise _not_found(exc) from exc
    return Reply(ScriptVersionList(versions=[_out(v) for v in versions]))


async def promote(req: ApiRequest) -> Reply:
    name = req.path["script"]
    body: ScriptPromoteIn = req.body
    try:
        versions = await script_versions(req.state.pool, name)
    except ScriptVersionError as exc:
        raise _not_found(exc) from exc
    chosen = _chosen(versions, body.version)
    try:
        failures = await asyncio.to_thread(
            stored_version_failures,
            chosen.name,
            chosen.source,
            chosen.cases,
            req.state.nlu_cache,
        )
    except ScriptTestError as exc:  # stored valid; the validator may have grown since
        raise ApiProblem(409, "conflict", str(exc)) from exc
    if failures and not body.force:
        raise ApiProblem(
            409,
            "conflict",
            f"{name} version {chosen.version} not promoted, its tests do not pass: "
            + "; ".join(failures),
        )
    detail = {"test_failures": failures} if failures else {}
    who = f"api:{req.who.name}"
    await promote_script_version(
        req.state.pool, name, chosen.version, who, forced=bool(failures), detail=detail
    )
    audit_detail = {"version": chosen.version, "forced": bool(failures)}
    await audit(req.state.pool, req.who, "script.promote", f"script/{name}", audit_detail)
    return Reply(ScriptPromoted(name=name, version=chosen.version, forced=bool(failures),
                                test_failures=failures))  # fmt: skip


def _chosen(versions: list[ScriptVersion], wanted: int | None) -> ScriptVersion:
    for v in versions:  # newest first
        if (wanted is None and v.staged_by is not None and not v.live) or v.version == wanted:
            return v
    what = f"no version {wanted}" if wanted else "no staged version that is not live yet"
    raise ApiProblem(404, "not_found", f"script {versions[0].name!r} has {what}")


async def rollback(req: ApiRequest) -> Reply:
    name = req.path["script"]
    try:
        version = await rollback_script(req.state.pool, name, f"api:{req.who.name}")
    except ScriptVersionError as exc:
        raise ApiProblem(409, "conflict", str(exc)) from exc
    await audit(req.state.pool, req.who, "script.rollback", f"script/{name}", {"version": version})
    return Reply(ScriptPromoted(name=name, version=version))


OPERATIONS = [
    Operation(
        "POST",
        _ONE + "/versions",
        "stageScriptVersion",
        "Stage a new version of a script (validated, stored with its test cases, not live)",
        "scripts",
        stage,
        ScriptVersionOut,
        success=(201,),
        scope="scripts:write",
        body=ScriptStageIn,
    ),
    Operation(
        "GET",
        _ONE + "/versions",
        "listScriptVersions",
        "List a script's versions: live, staged, who promoted them and when",
        "scripts",
        list_versions,
        ScriptVersionList,
        scope="scripts:read",
        problems=(404,),
    ),
    Operation(
        "POST",
        _ONE + "/promote",
        "promoteScriptVersion",
        "Make a staged version live for new calls if its test cases pass",
        "scripts",
        promote,
        ScriptPromoted,
        scope="scripts:write",
        body=ScriptPromoteIn,
        problems=(404, 409),
        description="409 when its tests fail (`force: true` promotes anyway, recorded as "
        "forced). Calls in progress keep their version; the daemon serves the new one from "
        "its next reload.",
    ),
    Operation(
        "POST",
        _ONE + "/rollback",
        "rollbackScript",
        "Make live again the version that was live before the current one",
        "scripts",
        rollback,
        ScriptPromoted,
        scope="scripts:write",
        problems=(409,),
    ),
]
