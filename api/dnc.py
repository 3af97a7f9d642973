"""Do-not-call lists: the global list (no campaign) and each campaign's own.

Numbers travel in request bodies, never in URLs, so they stay out of proxy access logs.
"""

from __future__ import annotations

import asyncpg

from api.audit import audit
from api.leads import region_of
from api.problems import ApiProblem, body_field, invalid
from api.routing import ApiRequest, Operation, Reply
from api.schemas import DncAdded, DncIn, DncQuery, DncRemoved, DncStatus
from store.dnc import add_entry, listing, remove_entry
from store.leadrows import LeadError, normalise_number
from store.leads import CampaignNotFoundError, find_campaign


def _e164(req: ApiRequest, query: DncQuery) -> str:
    region = region_of(req.state, query.region, ["region"])
    try:
        return normalise_number(query.phone.strip(), region)[0]
    except LeadError as exc:
        raise invalid([body_field(["phone"], str(exc), exc.category)]) from exc


async def _campaign_id(conn: asyncpg.Connection, name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return await find_campaign(conn, name)
    except CampaignNotFoundError as exc:
        raise ApiProblem(
            404,
            "not_found",
            f"no campaign named {name!r}",
            errors=[body_field(["campaign"], "no such campaign", "unknown")],
        ) from exc


def _target(campaign: str | None) -> str:
    # The number is the audit row's subject (a hash), so an erasure leaves nothing to scrub.
    return f"dnc/{campaign or 'global'}"


async def add(req: ApiRequest) -> Reply:
    body: DncIn = req.body
    phone = _e164(req, body)
    async with req.state.pool.acquire() as conn, conn.transaction():
        campaign_id = await _campaign_id(conn, body.campaign)
        added = await add_entry(conn, phone, campaign_id, body.reason, body.channel)
        await audit(
            conn,
            req.who,
            "dnc.add",
            _target(body.campaign),
            {"changed": added, "channel": body.channel},
            subject=phone,
        )
    return Reply(DncAdded(added=added), 201 if added else 200)


async def remove(req: ApiRequest) -> Reply:
    body: DncQuery = req.body
    phone = _e164(req, body)
    async with req.state.pool.acquire() as conn, conn.transaction():
        campaign_id = await _campaign_id(conn, body.campaign)
        removed = await remove_entry(conn, phone, campaign_id, body.channel)
        await audit(
            conn,
            req.who,
            "dnc.remove",
            _target(body.campaign),
            {"changed": removed, "channel": body.channel},
            subject=phone,
        )
    return Reply(DncRemoved(removed=removed))


async def check(req: ApiRequest) -> Reply:
    body: DncQuery = req.body
    phone = _e164(req, body)
    async with req.state.pool.acquire() as conn:
        campaign_id = await _campaign_id(conn, body.campaign)
        found = await listing(conn, phone, campaign_id, body.channel)
        await audit(conn, req.who, "dnc.check", _target(body.campaign), subject=phone)
    on_campaign = found.on_campaign if campaign_id is not None else None
    return Reply(
        DncStatus(
            listed=found.on_global or bool(on_campaign),
            on_global_list=found.on_global,
            on_campaign_list=on_campaign,
        )
    )


OPERATIONS = [
    Operation(
        "POST",
        "/v1/dnc",
        "addDnc",
        "Put a number on the global or a campaign's do-not-call list",
        "dnc",
        add,
        DncAdded,
        success=(200, 201),
        scope="dnc:write",
        body=DncIn,
        problems=(404,),
        description="201 when added, 200 when the number was already on that list.",
    ),
    Operation(
        "POST",
        "/v1/dnc/remove",
        "removeDnc",
        "Take a number off the global or a campaign's do-not-call list",
        "dnc",
        remove,
        DncRemoved,
        scope="dnc:write",
        body=DncQuery,
        problems=(404,),
    ),
    Operation(
        "POST",
        "/v1/dnc/check",
        "checkDnc",
        "Is a number on the do-not-call lists?",
        "dnc",
        check,
        DncStatus,
        scope="dnc:read",
        body=DncQuery,
        problems=(404,),
        description="POST so the number travels in the body, not in the URL.",
    ),
]
