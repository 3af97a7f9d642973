"""Campaigns: list, create, pause, resume and stats, through `dialer.campaigns`."""

from __future__ import annotations

from api.audit import audit
from api.problems import ApiProblem, body_field, invalid
from api.routing import ApiRequest, Operation, Reply
from api.schemas import CampaignIn, CampaignList, CampaignOut, CampaignStatsOut
from dialer.campaigns import (
    Campaign,
    CampaignError,
    Status,
    campaign_stats,
    create_campaign,
    get_campaign,
    list_campaigns,
    set_status,
)
from dialog import RECORDING_NOT_ANNOUNCED, ScriptError, announces_recording, parse_script
from store.scripts import (
    STAGED_ONLY,
    LiveVersion,
    live_script_version,
    newest_script_version,
    script_registered,
)


def _announces_recording(live: LiveVersion | None) -> bool:
    if live is None:
        return False  # no version stored to read: refuse rather than guess
    try:
        return announces_recording(parse_script(live.source).script)
    except ScriptError:
        return False  # a stored version the daemon loaded once; refuse rather than guess


def campaign_out(campaign: Campaign) -> CampaignOut:
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        script=campaign.script_name,
        status=campaign.status,
        paused_reason=campaign.paused_reason,
        paused_detail=campaign.paused_detail,
        settings=campaign.settings.model_dump(mode="json", exclude_defaults=True),
    )


def _not_found(name: str) -> ApiProblem:
    return ApiProblem(404, "not_found", f"no campaign named {name!r}")


async def list_all(req: ApiRequest) -> Reply:
    async with req.state.pool.acquire() as conn:
        campaigns = await list_campaigns(conn)
    return Reply(CampaignList(campaigns=[campaign_out(c) for c in campaigns]))


async def create(req: ApiRequest) -> Reply:
    body: CampaignIn = req.body
    async with req.state.pool.acquire() as conn, conn.transaction():
        # Scripts are registered by the daemon that loaded them: a campaign needs one it has.
        if not await script_registered(conn, body.script):
            raise invalid(
                [body_field(["script"], f"no script named {body.script!r} is loaded", "unknown")]
            )
        # Calls use the live version (a file's, or promoted); a staged-only one is no use.
        live = await live_script_version(conn, body.script)
        staged = await newest_script_version(conn, body.script)
        if live is None and staged is not None:
            message = STAGED_ONLY.format(name=body.script, version=staged)
            hint = f" (or POST /v1/scripts/{body.script}/promote)"
            raise invalid([body_field(["script"], message + hint, "not_live")])
        if body.settings.record and not _announces_recording(live):
            message = RECORDING_NOT_ANNOUNCED.format(name=body.script)
            raise invalid([body_field(["settings", "record"], message, "recording_not_announced")])
        try:
            campaign = await create_campaign(conn, body.name, body.script, body.settings)
        except CampaignError as exc:
            raise ApiProblem(409, "conflict", str(exc)) from exc
        await audit(conn, req.who, "campaign.create", f"campaign/{campaign.name}")
    return Reply(campaign_out(campaign), 201)


async def get(req: ApiRequest) -> Reply:
    name = req.path["campaign"]
    async with req.state.pool.acquire() as conn:
        try:
            campaign = await get_campaign(conn, name)
        except CampaignError as exc:
            raise _not_found(name) from exc
    return Reply(campaign_out(campaign))


async def _set_status(req: ApiRequest, status: Status, action: str) -> Reply:
    name = req.path["campaign"]
    async with req.state.pool.acquire() as conn, conn.transaction():
        try:
            campaign = await set_status(conn, name, status)
        except CampaignError as exc:
            raise _not_found(name) from exc
        await audit(conn, req.who, action, f"campaign/{name}")
    return Reply(campaign_out(campaign))


async def pause(req: ApiRequest) -> Reply:
    return await _set_status(req, "paused", "campaign.pause")


async def resume(req: ApiRequest) -> Reply:
    return await _set_status(req, "active", "campaign.resume")


async def stats(req: ApiRequest) -> Reply:
    name = req.path["campaign"]
    async with req.state.pool.acquire() as conn:
        try:
            result = await campaign_stats(conn, name)
        except CampaignError as exc:
            raise _not_found(name) from exc
    return Reply(
        CampaignStatsOut(
            campaign=name,
            status=result.campaign.status,
            paused_reason=result.campaign.paused_reason,
            paused_detail=result.campaign.paused_detail,
            leads_by_status=result.leads_by_status,
            blocked_by_reason=result.blocked_by_reason,
            postponed_by_reason=result.postponed_by_reason,
            attempts_by_disposition=result.attempts_by_disposition,
            live_attempts=result.live_attempts,
            answer_rate=result.answer_rate,
            abandoned_rate_30d=result.abandoned_rate_30d,
        )
    )


_ONE = "/v1/campaigns/{campaign}"

OPERATIONS = [
    Operation(
        "GET",
        "/v1/campaigns",
        "listCampaigns",
        "List campaigns",
        "campaigns",
        list_all,
        CampaignList,
        scope="campaigns:read",
    ),
    Operation(
        "POST",
        "/v1/campaigns",
        "createCampaign",
        "Create a campaign",
        "campaigns",
        create,
        CampaignOut,
        success=(201,),
        scope="campaigns:write",
        body=CampaignIn,
        problems=(409,),
        description="The script must be one the daemon has loaded (from its scripts_dir) or "
        "a stored version promoted; a staged-only script is refused (422).",
    ),
    Operation(
        "GET",
        _ONE,
        "getCampaign",
        "Read a campaign",
        "campaigns",
        get,
        CampaignOut,
        scope="campaigns:read",
        problems=(404,),
    ),
    Operation(
        "POST",
        _ONE + "/pause",
        "pauseCampaign",
        "Stop dialling (calls in progress finish)",
        "campaigns",
        pause,
        CampaignOut,
        scope="campaigns:write",
        problems=(404,),
    ),
    Operation(
        "POST",
        _ONE + "/resume",
        "resumeCampaign",
        "Dial a campaign again",
        "campaigns",
        resume,
        CampaignOut,
        scope="campaigns:write",
        problems=(404,),
    ),
    Operation(
        "GET",
        _ONE + "/stats",
        "campaignStats",
        "Leads by status, attempts by disposition, answer and abandoned rates",
        "campaigns",
        stats,
        CampaignStatsOut,
        scope="campaigns:read",
        problems=(404,),
    ),
]
