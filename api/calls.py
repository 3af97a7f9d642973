"""Calls and their turns, by call id or by the lead's external id.

A call is what the dialer originated (`call_attempts`) joined with what the bot session
recorded (`calls`); either may be missing (not answered yet, or no bot session). The call
session stores transcripts redacted unless `keep_raw_transcripts`; the API redacts again on the
way out while `compliance.redaction` is on, so raw text never leaves through it. The document is
the one `outdial calls show --json` prints (api/transcript.py).
"""

from __future__ import annotations

import asyncio

import asyncpg

from api.audit import audit, lead_target
from api.problems import ApiProblem
from api.routing import ApiRequest, ApiState, Operation, Reply
from api.schemas import CallList, CallOut
from api.transcript import call_document
from compliance.redact import redact
from store.calls import calls_by_id, calls_of_lead, phone_of_call, with_turns
from store.leads import lead_by_external_id

# The most recent calls of one lead returned (a lead is called a handful of times at most).
MAX_CALLS_PER_LEAD = 50


def _shown(state: ApiState, text: str | None) -> str | None:
    if text is None or not state.compliance.redaction:
        return text
    return redact(text, state.compliance.phone_regions).text


async def _documents(state: ApiState, calls: list[asyncpg.Record]) -> list[CallOut]:
    rows = await with_turns(state.pool, calls)
    # Redaction is CPU work (phone number matching): off the event loop.
    return await asyncio.to_thread(
        lambda: [call_document(r, lambda text: _shown(state, text)) for r in rows]
    )


async def get_call(req: ApiRequest) -> Reply:
    call_id = req.path["call_id"]
    rows = await calls_by_id(req.state.pool, [call_id])
    if not rows:
        raise ApiProblem(404, "not_found", f"no call with id {call_id!r}")
    phone = await phone_of_call(req.state.pool, call_id)
    await audit(req.state.pool, req.who, "call.read", f"call/{call_id}", subject=phone)
    return Reply((await _documents(req.state, rows))[0])


async def lead_calls(req: ApiRequest) -> Reply:
    campaign, external_id = req.path["campaign"], req.path["external_id"]
    lead = await lead_by_external_id(req.state.pool, campaign, external_id)
    if lead is None:
        raise ApiProblem(
            404, "not_found", f"no lead {external_id!r} in a campaign named {campaign!r}"
        )
    lead_id = lead["id"]
    target = lead_target(campaign, external_id)
    await audit(req.state.pool, req.who, "lead.calls.read", target, subject=lead["phone_e164"])
    rows = await calls_of_lead(req.state.pool, lead_id, MAX_CALLS_PER_LEAD)
    return Reply(CallList(calls=await _documents(req.state, rows)))


OPERATIONS = [
    Operation(
        "GET",
        "/v1/calls/{call_id}",
        "getCall",
        "A call with its turns, timings and compliance events",
        "calls",
        get_call,
        CallOut,
        scope="calls:read",
        problems=(404,),
    ),
    Operation(
        "GET",
        "/v1/campaigns/{campaign}/leads/{external_id}/calls",
        "leadCalls",
        "The calls of one lead (newest first, at most 50) with their turns",
        "calls",
        lead_calls,
        CallList,
        scope="calls:read",
        problems=(404,),
    ),
]
