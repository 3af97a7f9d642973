"""Settling calls while the database is away (issue 17, chaos): the session's verdict cannot
be read, the AMI's decides, and the outage is one WARNING, not one per call (7 in a 10-call
chaos run)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from dialer.dispositions import Disposition
from dialer.settling import Settler
from dialer.tracking import LiveCall
from tests.dialer.helpers import dialer_settings

REASON_ANSWERED = 4


def _answered(call_id: str) -> LiveCall:
    call = LiveCall(call_id, f"a-{call_id}", 1, "c1", 1, "sim", datetime.now(UTC), epoch=1)
    call.reason, call.amd_status = REASON_ANSWERED, "HUMAN"
    return call


async def test_calls_settled_while_the_database_is_away_warn_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A socket directory with no server in it: every connection attempt fails at once.
    pool = await asyncpg.create_pool(
        f"postgresql://postgres@/postgres?host={tmp_path}", min_size=0, max_size=1
    )
    settler = Settler(pool, dialer_settings("settler"), lambda: datetime.now(UTC))
    caplog.set_level(logging.DEBUG, logger="dialer.settling")
    try:
        results = [await settler.settle(_answered(f"call-{n}")) for n in range(3)]
    finally:
        await pool.close()
    assert {r.disposition for r in results} == {Disposition.ANSWERED}
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert "call-0" in warned[0].getMessage()
