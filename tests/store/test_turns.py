"""The turn writer against a real PostgreSQL: batching, idempotency, outages and crashes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from cryptography.fernet import Fernet
from prometheus_client import REGISTRY

from store.db import create_pool
from store.embedded import EmbeddedPostgres
from store.settings import DatabaseSettings
from store.spool import SpoolBusyError, spool_cipher
from store.turns import TurnRecord, TurnWriter


def _turn(call: str, seq: int, **extra: Any) -> TurnRecord:
    return TurnRecord(call_id=call, seq=seq, speaker="customer", text=f"utterance {seq}", **extra)


async def _count(pool_or_url: asyncpg.Pool | str, call: str | None = None) -> int:
    conn = await asyncpg.connect(pool_or_url) if isinstance(pool_or_url, str) else None
    try:
        runner = conn if conn is not None else pool_or_url
        if call is None:
            return await runner.fetchval("SELECT count(*) FROM turns")
        return await runner.fetchval("SELECT count(*) FROM turns WHERE call_id = $1", call)
    finally:
        if conn is not None:
            await conn.close()


async def _eventually(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    # A guard against hanging, not a timing assertion: the condition is what the test checks.
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def _unreachable_url(tmp_path: Path) -> str:
    # A socket directory with no server in it: every connection attempt fails at once.
    return f"postgresql://postgres@/postgres?host={tmp_path / 'no-server'}"


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_batches_reach_the_table(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    counted_before = _metric("outdial_turns_written_total")
    writer = TurnWriter(db_pool, tmp_path / "spool", batch_rows=100)
    await writer.start()
    for seq in range(1234):
        writer.write(_turn("c1", seq))
    await writer.close()
    assert await _count(db_pool) == 1234
    stats = writer.stats()
    assert (stats.rows_written, stats.rows_spooled, stats.spool_depth) == (1234, 0, 0)
    assert _metric("outdial_turns_written_total") - counted_before == 1234


async def test_the_same_rows_twice_are_stored_once(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    turns = [_turn("dup", seq) for seq in range(300)]
    async with TurnWriter(db_pool, tmp_path / "spool", batch_rows=64) as writer:
        for turn in turns + turns:
            writer.write(turn)
    assert await _count(db_pool) == 300
    assert writer.stats().rows_written == 300
    assert writer.stats().rows_duplicate == 300
    async with TurnWriter(db_pool, tmp_path / "spool") as again:
        for turn in turns:
            again.write(turn)
    assert await _count(db_pool) == 300
    assert again.stats().rows_duplicate == 300


async def test_every_field_round_trips(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    turn = TurnRecord(
        call_id="full", seq=7, speaker="customer", node="ask_consent", text="네 좋아요",
        asr_confidence=0.91, intent="affirm", intent_confidence=0.88,
        entities={"date": "2026-03-05", "amount": 120}, emotion={"pitch_z": 1.5},
        agitation=np.float32(0.25), barge_in=np.bool_(True), dtmf="1#",
        timings={"asr_ms": 120.5, "tts_ms": 80.0},
        created_at=when,
    )  # fmt: skip
    async with TurnWriter(db_pool, tmp_path / "spool") as writer:
        writer.write(turn)
    row = await db_pool.fetchrow("SELECT * FROM turns WHERE call_id = 'full'")
    assert row["seq"] == 7 and row["speaker"] == "customer" and row["node"] == "ask_consent"
    assert row["text"] == "네 좋아요" and row["intent"] == "affirm" and row["dtmf"] == "1#"
    assert math.isclose(row["asr_confidence"], 0.91, rel_tol=1e-6)
    assert math.isclose(row["agitation"], 0.25)
    assert row["entities"] == {"date": "2026-03-05", "amount": 120}
    assert row["emotion"] == {"pitch_z": 1.5}
    assert row["timings"] == {"asr_ms": 120.5, "tts_ms": 80.0}
    assert row["barge_in"] is True
    assert row["created_at"] == when


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"call_id": ""}, "call_id is empty"),
        ({"seq": -1}, "seq -1 is outside"),
        ({"seq": 2**31}, "is outside"),
        ({"seq": "3"}, "seq '3' is outside"),
        ({"text": b"bytes"}, "text must be text, not bytes"),
        ({"speaker": "agent"}, "speaker 'agent'"),
        ({"text": "a\x00b"}, "text contains a NUL"),
        ({"text": "bad \udce9 byte"}, "text is not valid Unicode"),
        ({"created_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_a_turn_the_table_would_refuse_is_refused_at_once(
    fields: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {"call_id": "c", "seq": 1, "speaker": "bot"}
    with pytest.raises(ValueError, match=message):
        TurnRecord(**(base | fields))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"entities": {"when": datetime(2026, 1, 1)}}, "entities is not JSON"),
        ({"emotion": {"pitch": float("nan")}}, "emotion is not JSON"),
        ({"timings": {"x\x00": 1.0}}, "timings contains a NUL"),
        ({"entities": {"name": "Jos\udce9"}}, "entities is not valid Unicode"),
        ({"agitation": "high"}, "agitation is not a number"),
    ],
)
async def test_write_refuses_unstorable_json(
    db_pool: asyncpg.Pool, tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    async with TurnWriter(db_pool, tmp_path / "spool") as writer:
        with pytest.raises(ValueError, match=message):
            writer.write(_turn("bad", 1, **fields))
        writer.write(_turn("good", 1))
    assert await _count(db_pool) == 1


async def test_write_needs_a_started_writer(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    writer = TurnWriter(db_pool, tmp_path / "spool")
    with pytest.raises(RuntimeError, match="not running"):
        writer.write(_turn("c", 1))
    await writer.start()
    await writer.close()
    with pytest.raises(RuntimeError, match="not running"):
        writer.write(_turn("c", 2))


async def test_a_full_queue_spills_to_the_spool(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    writer = TurnWriter(db_pool, tmp_path / "spool", batch_rows=10, max_queue=10)
    await writer.start()
    # No await between writes: the flusher cannot run, so the queue fills and the rest spill.
    for seq in range(100):
        writer.write(_turn("burst", seq))
    assert writer.stats().overflow_spills == 9
    assert writer.spool_depth == 90
    await writer.close()
    assert await _count(db_pool) == 100
    assert writer.spool_depth == 0
    # The ten queued rows went straight to the table, the ninety spilled ones via the spool.
    assert writer.stats().rows_replayed == 90
    assert writer.stats().rows_spooled == 90


async def test_unreachable_database_spools_and_close_keeps_rows(
    pg_url: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    async with TurnWriter(_unreachable_url(tmp_path), spool_dir, max_backoff=0.05) as writer:
        for seq in range(250):
            writer.write(_turn("offline", seq))
        await _eventually(lambda: not writer.stats().db_up, "the writer noticing the outage")
    assert writer.spool_depth == 250
    assert writer.stats().rows_written == 0
    assert writer.stats().db_errors >= 1
    assert _metric("outdial_spool_depth_rows") == 250
    # The next writer, pointed at a live database, replays the spool on start.
    async with TurnWriter(pg_url, spool_dir) as recovered:
        await _eventually(lambda: recovered.spool_depth == 0, "the spool replay")
    assert await _count(pg_url, "offline") == 250
    assert recovered.stats().rows_replayed == 250
    assert _metric("outdial_spool_depth_rows") == 0


async def test_a_server_error_keeps_rows_in_the_spool(
    pg_admin_url: str, pg_url: str, tmp_path: Path
) -> None:
    # The admin database has no turns table (as before `outdial db migrate`): the server
    # refuses every write, and the rows must wait on disk rather than vanish.
    spool_dir = tmp_path / "spool"
    async with TurnWriter(pg_admin_url, spool_dir, max_backoff=0.05) as writer:
        for seq in range(40):
            writer.write(_turn("early", seq))
        await _eventually(lambda: writer.stats().db_errors > 0, "the refused write")
    assert writer.spool_depth == 40
    async with TurnWriter(pg_url, spool_dir) as migrated:
        await _eventually(lambda: migrated.spool_depth == 0, "the spool replay")
    assert await _count(pg_url, "early") == 40


async def test_one_spool_has_one_writer(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    async with TurnWriter(db_pool, tmp_path / "spool"):
        with pytest.raises(SpoolBusyError):
            await TurnWriter(db_pool, tmp_path / "spool").start()


# -- a database that goes away mid-stream --------------------------------------------------


async def test_outage_mid_stream_loses_and_doubles_nothing(
    own_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    pool = await create_pool(own_server.url, DatabaseSettings(pool_min=1, pool_max=2))
    writer = TurnWriter(
        pool, tmp_path / "spool", flush_interval=0.02, batch_rows=50, max_backoff=0.1
    )
    await writer.start()
    written = 0

    async def stream(count: int) -> None:
        nonlocal written
        for _ in range(count):
            writer.write(_turn(f"call-{written % 7}", written))
            written += 1
            if written % 25 == 0:
                await asyncio.sleep(0.005)

    try:
        await stream(600)
        await _eventually(lambda: writer.stats().rows_written >= 300, "rows before the outage")
        await asyncio.to_thread(own_server.stop)  # a fast shutdown: sessions are cut
        await stream(600)
        await _eventually(lambda: writer.spool_depth > 0, "rows spooled during the outage")
        assert not writer.stats().db_up
        await asyncio.to_thread(own_server.start_again)
        await stream(600)
        await writer.close()
        stats = writer.stats()
        assert stats.spool_depth == 0
        assert stats.rows_replayed > 0
        assert await pool.fetchval("SELECT count(*) FROM turns") == 1800
        assert await pool.fetchval("SELECT count(DISTINCT (call_id, seq)) FROM turns") == 1800
        assert await pool.fetchval("SELECT max(seq) FROM turns") == 1799
    finally:
        await pool.close()


_CRASHING_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from store.turns import TurnRecord, TurnWriter

    async def main() -> None:
        url, spool, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
        writer = TurnWriter(url, spool, flush_interval=0.01, batch_rows=40, max_backoff=0.05)
        await writer.start()
        for seq in range(count):
            writer.write(TurnRecord(call_id="crashed", seq=seq, speaker="bot", text=str(seq)))
        while writer.spool_depth < count:
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)  # die without close(): a crash

    asyncio.run(main())
    """
)


async def test_spool_of_a_crashed_process_is_replayed_on_start(
    db_pool: asyncpg.Pool, tmp_path: Path, repo_root: Path
) -> None:
    spool_dir = tmp_path / "spool"
    previous = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CRASHING_WRITER, _unreachable_url(tmp_path), str(spool_dir), "333"],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        capture_output=True,
        timeout=120,
    )
    assert previous.returncode == -signal.SIGKILL, previous.stderr.decode()
    assert list(spool_dir.glob("turns-*.jsonl"))
    async with TurnWriter(db_pool, spool_dir) as writer:
        await _eventually(lambda: writer.spool_depth == 0, "the replay of the crashed spool")
    assert await _count(db_pool, "crashed") == 333
    assert not list(spool_dir.glob("turns-*.jsonl"))


_KILLED_WITH_A_QUEUE = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from store.spool import spool_cipher
    from store.turns import TurnRecord, TurnWriter

    async def main() -> None:
        url, spool, count, key = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        # The flush is an hour away: every row is still in the queue when the process dies.
        writer = TurnWriter(url, spool, flush_interval=3600, cipher=spool_cipher([key.encode()]))
        await writer.start()
        for seq in range(count):
            writer.write(TurnRecord(call_id="killed", seq=seq, speaker="bot", text="secret words"))
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_rows_queued_when_the_process_is_killed_are_stored_at_the_next_start(
    db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path, repo_root: Path
) -> None:
    spool_dir, key = tmp_path / "spool", Fernet.generate_key()
    previous = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _KILLED_WITH_A_QUEUE, pg_url, str(spool_dir), "25", key.decode()],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        capture_output=True,
        timeout=120,
    )
    assert previous.returncode == -signal.SIGKILL, previous.stderr.decode()
    journals = list(spool_dir.glob("turns-journal-*.jsonl"))
    assert journals and all(b"secret" not in j.read_bytes() for j in journals)  # encrypted
    assert all(j.stat().st_mode & 0o077 == 0 for j in journals)
    assert await _count(db_pool, "killed") == 0
    async with TurnWriter(db_pool, spool_dir, cipher=spool_cipher([key])) as writer:
        await _eventually(lambda: writer.spool_depth == 0, "the replay of the killed queue")
    assert await _count(db_pool, "killed") == 25
    assert not list(spool_dir.glob("turns-*.jsonl"))


async def test_the_journal_of_stored_rows_is_dropped_while_running(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with TurnWriter(db_pool, tmp_path, flush_interval=0.01) as writer:
        for seq in range(30):
            writer.write(_turn("journaled", seq))
        await _eventually(lambda: writer.stats().rows_written >= 30, "the rows stored")
        await _eventually(
            lambda: not list(tmp_path.glob("turns-journal-*.jsonl")), "the journal dropped"
        )
    assert await _count(db_pool, "journaled") == 30


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes that would grow a file past `limit` bytes fail with EFBIG, as on a full disk
    (Python ignores SIGXFSZ); the whole process is limited, so only briefly."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


async def test_a_full_spool_disk_keeps_rows_in_memory_and_loses_none(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool's disk filled while PostgreSQL was down: the flusher died on the OSError and
    every later write failed until a restart (bench/chaos.py). Now the rows wait in memory,
    one WARNING says so, and they reach the spool (and the table) once there is room."""
    spool_dir = tmp_path / "spool"
    writer = TurnWriter(
        _unreachable_url(tmp_path), spool_dir, batch_rows=10, max_queue=10, max_backoff=0.05
    )
    await writer.start()
    try:
        for seq in range(30):
            writer.write(_turn("before", seq))
        await _eventually(lambda: writer.spool_depth == 30, "the first rows spooled")
        with file_size_limit(1):  # the disk is full: no file may grow
            for seq in range(200):
                writer.write(_turn("during", seq))  # queue full: spills, refused, kept
                if seq % 20 == 0:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # several flushes against the full disk
        for seq in range(20):
            writer.write(_turn("after", seq))  # the writer is still alive
        await _eventually(lambda: writer.spool_depth == 250, "the kept rows spooled")
    finally:
        await writer.close()
    refused = [r for r in caplog.records if "cannot take" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
    async with TurnWriter(pg_url, spool_dir) as recovered:
        await _eventually(lambda: recovered.spool_depth == 0, "the spool replay")
    assert await _count(pg_url, "before") == 30
    assert await _count(pg_url, "during") == 200
    assert await _count(pg_url, "after") == 20
