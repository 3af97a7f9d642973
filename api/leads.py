"""Leads: create or update one lead or many, idempotent by the CRM's external id.

Values go through `store.leadrows.normalise_lead`, the function the CSV import uses, so the
API accepts a lead exactly when the import would. PUT replaces the lead's values; its
dialling state (status, attempts, next attempt) stays the dialer's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import phonenumbers

from api.audit import audit, lead_target
from api.leadwrites import LeadWrite
from api.problems import ApiProblem, FieldError, body_field, invalid
from api.routing import ApiRequest, ApiState, Operation, Reply
from api.schemas import (
    BulkLead,
    BulkLeadResult,
    BulkLeadsIn,
    BulkLeadsOut,
    LeadIn,
    LeadOut,
)
from store.leadrows import LeadError, missing_fields, normalise_lead
from store.leads import (
    CampaignNotFoundError,
    LeadValues,
    find_campaign,
    lead_by_external_id,
    numbers_taken,
    upsert_leads,
)
from store.tokens import audit_many

_PHONE_TAKEN = "the number is already a lead of this campaign under another external id"


def region_of(state: ApiState, given: str | None, where: Sequence[str | int]) -> str:
    region = (given or state.default_region).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise invalid([body_field(where, f"unknown region {region!r}", "bad_region")])
    return region


def _normalise(
    lead: LeadIn | BulkLead,
    external_id: str,
    region: str,
    at: Sequence[str | int],
    required: Sequence[str],
) -> LeadValues:
    """The lead as the import would store it; refused (with the field at fault) when the import
    would refuse it, or when it lacks a field the campaign's script requires."""
    missing = missing_fields(required, lead.fields)
    if missing:
        name = missing[0]
        detail = f"missing_field:{name}: the campaign's script needs the lead field {name!r}"
        raise _RefusedLead(body_field([*at, "fields", name], detail, "missing_field"))
    try:
        return normalise_lead(
            region,
            lead.phone,
            timezone=lead.timezone,
            external_id=external_id,
            # The import reads text; render JSON values the way a CSV cell would hold them.
            priority=None if lead.priority is None else str(lead.priority),
            consent=None if lead.consent is None else str(lead.consent).lower(),
            custom=lead.fields,
        )
    except LeadError as exc:
        field = exc.field or "phone"
        raise _RefusedLead(body_field([*at, field], str(exc), exc.category)) from exc


class _RefusedLead(Exception):
    def __init__(self, error: FieldError) -> None:
        super().__init__(error.detail)
        self.error = error


def lead_out(row: asyncpg.Record, campaign: str) -> LeadOut:
    return LeadOut(
        id=row["id"],
        campaign=campaign,
        external_id=row["external_id"],
        phone=row["phone_e164"],
        timezone=row["timezone"],
        priority=row["priority"],
        consent=row["consent"],
        fields=row["fields"] or {},
        status=row["status"],
        attempts=row["attempts"],
        last_disposition=row["last_disposition"],
        block_reason=row["block_reason"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _no_campaign(name: str) -> ApiProblem:
    return ApiProblem(404, "not_found", f"no campaign named {name!r}")


async def put_lead(req: ApiRequest) -> Reply:
    campaign, external_id = req.path["campaign"], req.path["external_id"]
    body: LeadIn = req.body
    region = region_of(req.state, body.region, ["region"])
    required = await req.state.required_fields(campaign)
    try:
        values = _normalise(body, external_id, region, [], required)
    except _RefusedLead as exc:
        raise invalid([exc.error]) from exc
    write = LeadWrite(campaign, values, req.who, lead_target(campaign, external_id))
    try:
        row = await req.state.lead_writes.upsert(write)
    except asyncpg.UniqueViolationError as exc:
        raise ApiProblem(
            409, "conflict", _PHONE_TAKEN, errors=[body_field(["phone"], _PHONE_TAKEN, "taken")]
        ) from exc
    if row is None:
        raise _no_campaign(campaign)
    return Reply(lead_out(row, campaign), 201 if row["inserted"] else 200)


async def get_lead(req: ApiRequest) -> Reply:
    campaign, external_id = req.path["campaign"], req.path["external_id"]
    row = await lead_by_external_id(req.state.pool, campaign, external_id)
    if row is None:
        raise ApiProblem(
            404, "not_found", f"no lead {external_id!r} in a campaign named {campaign!r}"
        )
    target = lead_target(campaign, external_id)
    await audit(req.state.pool, req.who, "lead.read", target, subject=row["phone_e164"])
    return Reply(lead_out(row, campaign))


def _normalise_all(body: BulkLeadsIn, region: str, required: Sequence[str]) -> list[LeadValues]:
    """Every lead normalised, or a 422 listing every refused one (nothing is written)."""
    rows: list[LeadValues] = []
    errors: list[FieldError] = []
    seen_ext: dict[str, int] = {}
    seen_phone: dict[str, int] = {}
    for i, lead in enumerate(body.leads):
        try:
            row = _normalise(lead, lead.external_id, region, ["leads", i], required)
        except _RefusedLead as exc:
            errors.append(exc.error)
            continue
        ext = row[1] or ""
        if (first := seen_ext.setdefault(ext, i)) != i:
            errors.append(
                body_field(
                    ["leads", i, "external_id"], f"also given in leads[{first}]", "duplicate"
                )
            )
        if (first := seen_phone.setdefault(row[0], i)) != i:
            errors.append(
                body_field(["leads", i, "phone"], f"the same number as leads[{first}]", "duplicate")
            )
        rows.append(row)
    if errors:
        raise invalid(errors)
    return rows


async def bulk_leads(req: ApiRequest) -> Reply:
    campaign = req.path["campaign"]
    body: BulkLeadsIn = req.body
    region = region_of(req.state, body.region, ["region"])
    required = await req.state.required_fields(campaign)
    # Number parsing is CPU work: a large batch must not stall the other requests.
    rows = await asyncio.to_thread(_normalise_all, body, region, required)
    token = req.who
    async with req.state.pool.acquire() as conn, conn.transaction():
        try:
            campaign_id = await find_campaign(conn, campaign)
        except CampaignNotFoundError as exc:
            raise _no_campaign(campaign) from exc
        await _refuse_taken_numbers(conn, campaign_id, rows)
        try:
            written = await upsert_leads(conn, campaign_id, rows)
        except asyncpg.UniqueViolationError as exc:  # a concurrent writer took a number
            raise ApiProblem(409, "conflict", _PHONE_TAKEN) from exc
        await audit_many(
            conn,
            token.id,
            token.name,
            ["lead.create" if r.inserted else "lead.update" for r in written],
            [lead_target(campaign, r.external_id or "") for r in written],
        )
    created = sum(1 for r in written if r.inserted)
    results = [
        BulkLeadResult(external_id=r.external_id or "", id=r.id, created=r.inserted)
        for r in written
    ]
    return Reply(BulkLeadsOut(created=created, updated=len(written) - created, leads=results))


async def _refuse_taken_numbers(
    conn: asyncpg.Connection, campaign_id: int, rows: list[LeadValues]
) -> None:
    """409 naming each lead whose number belongs to another lead of the campaign."""
    owner = await numbers_taken(conn, campaign_id, [r[0] for r in rows])
    errors = [
        body_field(["leads", i, "phone"], _PHONE_TAKEN, "taken")
        for i, row in enumerate(rows)
        if row[0] in owner and owner[row[0]] != row[1]
    ]
    if errors:
        raise ApiProblem(409, "conflict", f"{len(errors)} lead(s): {_PHONE_TAKEN}", errors=errors)


OPERATIONS = [
    Operation(
        "PUT",
        "/v1/campaigns/{campaign}/leads/{external_id}",
        "putLead",
        "Create or replace one lead",
        "leads",
        put_lead,
        LeadOut,
        success=(200, 201),
        scope="leads:write",
        body=LeadIn,
        problems=(404, 409),
        description="201 when the lead is new, 200 when the lead with this external id was "
        "updated. Validation is the CSV import's, including the fields the campaign's script "
        "requires (422 `missing_field` pointing at the field). The lead's dialling state is "
        "kept.",
    ),
    Operation(
        "GET",
        "/v1/campaigns/{campaign}/leads/{external_id}",
        "getLead",
        "Read one lead",
        "leads",
        get_lead,
        LeadOut,
        scope="leads:read",
        problems=(404,),
    ),
    Operation(
        "POST",
        "/v1/campaigns/{campaign}/leads",
        "bulkLeads",
        "Create or replace many leads at once",
        "leads",
        bulk_leads,
        BulkLeadsOut,
        scope="leads:write",
        body=BulkLeadsIn,
        problems=(404, 409),
        description="All or nothing: when any lead is refused, none is written and the "
        "response lists every refused lead with a pointer to the field at fault.",
    ),
]
