"""Calls and their turns, by call id or by the lead's external id.

A call is what the dialer originated (`call_attempts`) joined with what the bot session
recorded (`calls`); either may be missing (not answered yet, or no bot session). The call
session stores transcripts redacted unless `keep_raw_transcripts`; the API redacts again on the
way out while `compliance.redaction` is on, so raw text never leaves through it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import asyncpg

from compliance.redact import redact
from outdial.api.audit import audit, lead_target
from outdial.api.problems import ApiProblem
from outdial.api.routing import ApiRequest, ApiState, Operation, Reply
from outdial.api.schemas import CallList, CallOut, TurnOut

# The most recent calls of one lead returned (a lead is called a handful of times at most).
MAX_CALLS_PER_LEAD = 50

_CALLS = """
SELECT call_id,
       cp.name AS campaign,
       l.external_id,
       a.started_at AS dialled_at,
       a.answered_at,
       c.started_at AS bot_started_at,
       coalesce(c.ended_at, a.ended_at) AS ended_at,
       coalesce(c.disposition, a.disposition) AS disposition,
       c.outcome,
       c.success,
       coalesce(c.amd_status, a.amd_status) AS amd_status,
       c.script_name AS script,
       c.script_version,
       c.variant,
       c.transfer_reason,
       c.hangup_side,
       c.summary,
       c.grade,
       c.grade_reason
FROM call_attempts a
FULL JOIN calls c USING (call_id)
LEFT JOIN campaigns cp ON cp.id = coalesce(c.campaign_id, a.campaign_id)
LEFT JOIN leads l ON l.id = coalesce(c.lead_id, a.lead_id)
"""

_PHONE_OF_CALL = """
SELECT l.phone_e164 FROM leads l
WHERE l.id = coalesce((SELECT lead_id FROM calls WHERE call_id = $1),
                      (SELECT lead_id FROM call_attempts WHERE call_id = $1))
"""

_TURNS = """
SELECT call_id, seq, speaker, node, text, intent, intent_confidence, asr_confidence,
       agitation, barge_in, dtmf, created_at
FROM turns WHERE call_id = ANY($1::text[]) ORDER BY call_id, seq
"""


def _shown(state: ApiState, text: str | None) -> str | None:
    if text is None or not state.compliance.redaction:
        return text
    return redact(text, state.compliance.phone_regions).text


def _turn(state: ApiState, row: asyncpg.Record) -> TurnOut:
    return TurnOut(
        seq=row["seq"],
        speaker=row["speaker"],
        node=row["node"],
        text=_shown(state, row["text"]) or "",
        intent=row["intent"],
        intent_confidence=row["intent_confidence"],
        asr_confidence=row["asr_confidence"],
        agitation=row["agitation"],
        barge_in=row["barge_in"],
        dtmf=_shown(state, row["dtmf"]),  # keyed digits can be a card or an account number
        at=row["created_at"],
    )


def _build(
    state: ApiState, calls: list[asyncpg.Record], turns: list[asyncpg.Record]
) -> list[CallOut]:
    """Runs in a thread: redaction is CPU work (phone number matching)."""
    by_call: dict[str, list[TurnOut]] = defaultdict(list)
    for row in turns:
        by_call[row["call_id"]].append(_turn(state, row))
    out = []
    for row in calls:
        values = dict(row)
        values["summary"] = _shown(state, values["summary"])
        out.append(CallOut(**values, turns=by_call.get(row["call_id"], [])))
    return out


async def _with_turns(state: ApiState, calls: list[asyncpg.Record]) -> list[CallOut]:
    turns = await state.pool.fetch(_TURNS, [r["call_id"] for r in calls]) if calls else []
    return await asyncio.to_thread(_build, state, calls, turns)


async def get_call(req: ApiRequest) -> Reply:
    call_id = req.path["call_id"]
    rows = await req.state.pool.fetch(_CALLS + " WHERE call_id = $1", call_id)
    if not rows:
        raise ApiProblem(404, "not_found", f"no call with id {call_id!r}")
    phone = await req.state.pool.fetchval(_PHONE_OF_CALL, call_id)
    await audit(req.state.pool, req.who, "call.read", f"call/{call_id}", subject=phone)
    return Reply((await _with_turns(req.state, rows))[0])


async def lead_calls(req: ApiRequest) -> Reply:
    campaign, external_id = req.path["campaign"], req.path["external_id"]
    lead = await req.state.pool.fetchrow(
        """SELECT l.id, l.phone_e164 FROM leads l JOIN campaigns c ON c.id = l.campaign_id
           WHERE c.name = $1 AND l.external_id = $2""",
        campaign,
        external_id,
    )
    if lead is None:
        raise ApiProblem(
            404, "not_found", f"no lead {external_id!r} in a campaign named {campaign!r}"
        )
    lead_id = lead["id"]
    target = lead_target(campaign, external_id)
    await audit(req.state.pool, req.who, "lead.calls.read", target, subject=lead["phone_e164"])
    rows = await req.state.pool.fetch(
        _CALLS
        + """ WHERE coalesce(c.lead_id, a.lead_id) = $1
              ORDER BY coalesce(a.started_at, c.started_at) DESC, call_id LIMIT $2""",
        lead_id,
        MAX_CALLS_PER_LEAD,
    )
    return Reply(CallList(calls=await _with_turns(req.state, rows)))


OPERATIONS = [
    Operation(
        "GET",
        "/v1/calls/{call_id}",
        "getCall",
        "A call with its turns",
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
