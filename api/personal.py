"""Erasure on request (GDPR art. 17, PIPL art. 47): one person's data, in every campaign."""

from __future__ import annotations

from api.problems import ApiProblem
from api.routing import ApiRequest, Operation, Reply
from api.schemas import ErasureOut
from store.erasure import SubjectError, erase_subject, find_subject


async def erase(req: ApiRequest) -> Reply:
    lead_id = int(req.path["lead_id"])
    async with req.state.pool.acquire() as conn:
        try:
            subject = await find_subject(conn, lead_id=lead_id)
        except SubjectError as exc:
            raise ApiProblem(404, "not_found", str(exc)) from exc
        try:
            report = await erase_subject(conn, subject, req.who.name, token_id=req.who.id)
        except SubjectError as exc:  # being dialled now
            raise ApiProblem(409, "conflict", str(exc)) from exc
    return Reply(ErasureOut(**report.as_dict()))


OPERATIONS = [
    Operation(
        "DELETE",
        "/v1/leads/{lead_id}/personal-data",
        "erasePersonalData",
        "Erase everything held about the person of a lead",
        "personal data",
        erase,
        ErasureOut,
        scope="personal-data:erase",
        problems=(404, 409),
        description="The person is the lead's phone number: every lead with it, in every "
        "campaign, is anonymised with everything its calls left (transcripts, summaries, "
        "events, webhook events, audit targets). A do-not-call entry stays as a hash of the "
        "number alone so an opt-out is still honoured. A `lead.erased` webhook event tells the "
        "CRM. 409 while one of the leads is being dialled. Audited.",
    ),
]
