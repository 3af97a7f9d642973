"""One call as a conversation: the document the API's call resource and `outdial calls show`
both return, built from what store.calls reads.

Turn times come from the session's own clock where it logged one (`turns.timings`: seconds since
the bot's media started): a bot turn starts at its first audio out, a customer turn at the start
of its speech. Everything else (keyed digits, compliance events) is placed by its log time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from api.schemas import CallOut, ComplianceEventOut, TurnOut
from store.calls import CallRows

Shown = Callable[[str | None], str | None]
SPARK = "▁▂▃▄▅▆▇█"


def media_start(call: asyncpg.Record | dict[str, Any], turns: list[Any]) -> datetime | None:
    """When the bot's media started: a bot turn is logged as its first frame goes out, so its
    log time less its `first_audio_out` offset is that moment (the earliest such estimate)."""
    starts = [
        t["created_at"] - timedelta(seconds=float(t["timings"]["first_audio_out"]))
        for t in turns
        if t["speaker"] == "bot" and "first_audio_out" in (t["timings"] or {})
    ]
    return min(starts) if starts else call["bot_started_at"]


def _seconds(at: datetime | None, start: datetime | None) -> float | None:
    if at is None or start is None:
        return None
    return round((at - start).total_seconds(), 3)


def _timing(timings: dict[str, Any], name: str) -> float | None:
    value = timings.get(name)
    return float(value) if isinstance(value, int | float) else None


def turn_offsets(turn: Any, start: datetime | None) -> tuple[float | None, float | None]:
    """(start, end) of a turn in seconds since the media started; end only for speech heard."""
    timings = turn["timings"] or {}
    began = _timing(timings, "first_audio_out" if turn["speaker"] == "bot" else "speech_start")
    if began is None:
        began = _seconds(turn["created_at"], start)
    return began, _timing(timings, "speech_end")


def _turn(row: Any, start: datetime | None, shown: Shown) -> TurnOut:
    offset, end = turn_offsets(row, start)
    timings = row["timings"] or {}
    return TurnOut(
        seq=row["seq"],
        speaker=row["speaker"],
        node=row["node"],
        text=shown(row["text"]) or "",
        intent=row["intent"],
        intent_confidence=row["intent_confidence"],
        asr_confidence=row["asr_confidence"],
        agitation=row["agitation"],
        barge_in=row["barge_in"],
        dtmf=shown(row["dtmf"]),  # keyed digits can be a card or an account number
        at=row["created_at"],
        offset_s=offset,
        end_offset_s=end,
        reply_ms=_timing(timings, "reply_ms"),
        processing_ms=_timing(timings, "processing_ms"),
    )


def _event(row: Any, start: datetime | None, shown: Shown) -> ComplianceEventOut:
    detail = row["detail"] or {}
    term = detail.get("term")
    return ComplianceEventOut(
        offset_s=_seconds(row["created_at"], start),
        direction=row["direction"],
        category=row["category"],
        action=row["action"],
        node=detail.get("node"),
        term=shown(term) if isinstance(term, str) else None,
        at=row["created_at"],
    )


def call_document(rows: CallRows, shown: Shown) -> CallOut:
    """The call, its turns and compliance events; `shown` redacts free text on the way out.
    CPU work (redaction matches numbers): run it off the event loop for many calls."""
    start = media_start(rows.call, rows.turns)
    values = {k: v for k, v in dict(rows.call).items() if k in CallOut.model_fields}
    values["summary"] = shown(values["summary"])
    agitation = [t["agitation"] for t in rows.turns if t["agitation"] is not None]
    return CallOut(
        **values,
        agitation_peak=max(agitation) if agitation else None,
        turns=[_turn(t, start, shown) for t in rows.turns],
        compliance_events=[_event(e, start, shown) for e in rows.events],
    )


def sparkline(values: list[float]) -> str:
    """Agitation scores (0..1) as block characters, one per customer turn scored."""
    top = len(SPARK) - 1
    return "".join(SPARK[round(min(max(v, 0.0), 1.0) * top)] for v in values)
