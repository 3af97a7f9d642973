"""The dialer through database trouble (issue 17, chaos): a session the server cuts in the
middle of a transaction is retried, not the end of the dialer; a step that keeps failing
warns once per outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from dialer.dispositions import Disposition, NextStep
from dialer.engine import Dialer
from dialer.leasing import AttemptResult
from dialer.results import ResultWriter
from pbxsim import PbxSim
from pbxsim.scenario import OutcomeWeights, Scenario
from tests.dbcuts import end_backend_now
from tests.dialer.helpers import (
    add_leads,
    dialer_settings,
    make_campaign,
    numbers,
    running,
    sim_config,
    trunk_for,
    until,
    wait_attempts_settled,
)

ANSWER_ALL = Scenario(seed=3, ring_seconds=0.2, outcomes=OutcomeWeights(answer=1))


def records(
    caplog: pytest.LogCaptureFixture, text: str, level: int | None = None
) -> list[logging.LogRecord]:
    """The records with `text`, at `level` (any level if None)."""
    return [
        r
        for r in caplog.records
        if text in r.getMessage() and (level is None or r.levelno == level)
    ]


def writer_of_one_result(pool: asyncpg.Pool, call_id: str, written: list[str]) -> ResultWriter:
    """A closed ResultWriter with one result queued: `run()` writes it and returns."""
    writer = ResultWriter(pool, "cuts", None, 0.05, lambda r, _: written.append(r.call_id))
    result = AttemptResult(call_id, Disposition.BUSY, NextStep(True), datetime.now(UTC))
    writer.add(result, None)  # type: ignore[arg-type]  # the call is only handed back
    writer.close()
    return writer


@asynccontextmanager
async def writes_blocked(pg_url: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """Writes to `table` wait on a lock (reads go on) until the block ends."""
    locker = await asyncpg.connect(pg_url)
    try:
        async with locker.transaction():
            await locker.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            yield locker
    finally:
        await locker.close()


async def cut_the_waiting_session(locker: asyncpg.Connection) -> None:
    """The server ends the session that waits on the locker's lock, as a restart would: the
    session dies in the middle of its transaction."""
    async with asyncio.timeout(30):
        while True:
            cut = await locker.fetchval(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'
                     AND pid <> pg_backend_pid()"""
            )
            if cut:
                return
            await asyncio.sleep(0.02)


async def test_a_session_cut_mid_transaction_leaves_the_result_writer_retrying(
    db_pool: asyncpg.Pool, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    written: list[str] = []
    writer = writer_of_one_result(db_pool, "c-1", written)
    async with writes_blocked(pg_url, "call_attempts") as locker:
        task = asyncio.create_task(writer.run())
        await cut_the_waiting_session(locker)
    async with asyncio.timeout(30):
        await task  # asyncpg's InterfaceError from the cut transaction used to end it here
    assert written == ["c-1"]
    assert len(records(caplog, "could not write 1 call results", logging.WARNING)) == 1


async def test_a_session_cut_while_recording_attempts_does_not_stop_the_dialer(
    db_pool: asyncpg.Pool, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(4))
    async with PbxSim(sim_config(ANSWER_ALL)) as sim:
        dialer = Dialer(db_pool, dialer_settings("cut"), [trunk_for(sim)])
        async with running(dialer) as task, asyncio.timeout(60):
            async with writes_blocked(pg_url, "call_attempts") as locker:
                await cut_the_waiting_session(locker)  # the INSERT of the attempts waits
            await wait_attempts_settled(db_pool, 4)
            assert not task.done()
    assert await db_pool.fetchval("SELECT count(*) FROM leads WHERE status = 'done'") == 4
    assert records(caplog, "could not record attempts", logging.WARNING)


async def set_attempts_refused(pool: asyncpg.Pool, refused: bool) -> None:
    if refused:
        await pool.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
                   AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
               CREATE TRIGGER refuse BEFORE INSERT ON call_attempts
                   FOR EACH ROW EXECUTE FUNCTION refuse()"""
        )
    else:
        await pool.execute("DROP TRIGGER refuse ON call_attempts; DROP FUNCTION refuse()")


async def test_attempts_that_cannot_be_recorded_warn_once_per_outage(
    db_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dialer.engine")
    text = "could not record attempts"
    campaign = await make_campaign(db_pool)
    await add_leads(db_pool, campaign.id, numbers(40))
    async with PbxSim(sim_config(ANSWER_ALL)) as sim:
        # A slow trunk: leads wait in the buffer and the claim is tried on every tick.
        dialer = Dialer(db_pool, dialer_settings("once"), [trunk_for(sim, cps=4.0)])
        async with running(dialer), asyncio.timeout(60):
            for outage in (1, 2):
                await set_attempts_refused(db_pool, True)
                await until(lambda n=outage: len(records(caplog, text)) >= 5 * n)
                originated = dialer.originated
                await set_attempts_refused(db_pool, False)
                await until(lambda before=originated: dialer.originated > before)
    assert len(records(caplog, text, logging.WARNING)) == 2  # one per outage


async def test_a_session_ended_while_idle_in_the_pool_leaves_the_writer_retrying(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
        written: list[str] = []
        writer = writer_of_one_result(pool, "c-2", written)
        end_backend_now(pid)
        # The loop reads the server's FATAL while the connection is idle, not yet its EOF.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        async with asyncio.timeout(30):
            await writer.run()
    finally:
        await pool.close()
    assert written == ["c-2"]
    # What the chaos run saw end the dialer: asyncpg's protocol is left mid-operation.
    [warning] = records(caplog, "could not write 1 call results", logging.WARNING)
    assert "another operation (2) is in progress" in warning.getMessage()
