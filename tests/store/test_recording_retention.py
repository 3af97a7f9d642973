"""Call recordings follow the privacy settings: past `recordings_days`, when their call is
deleted, or when their person is erased, the path leaves the call and the file is deleted;
nothing outside `privacy.recordings_dir` is ever deleted, and files on a host outdial cannot
see wait in the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from typer.testing import CliRunner

from outdial.cli import app
from outdial.retention import RECORDING_FILES, purge
from store.settings import PrivacySettings, RetentionSettings


async def _call(
    conn: asyncpg.Connection | asyncpg.Pool, call_id: str, age: str, path: Path | str
) -> None:
    lead = await conn.fetchval("SELECT min(id) FROM leads")
    await conn.execute(
        """INSERT INTO calls (call_id, campaign_id, lead_id, started_at, recording_path)
           VALUES ($1, (SELECT id FROM campaigns), $2, now() - $3::text::interval, $4)""",
        call_id,
        lead,
        age,
        str(path),
    )


async def _setup(pool: asyncpg.Pool, monitor: Path) -> dict[str, Path]:
    await pool.execute(
        """INSERT INTO campaigns (name, script_name) VALUES ('c', 's');
           INSERT INTO leads (campaign_id, phone_e164, timezone)
           SELECT id, '+12025550123', 'UTC' FROM campaigns"""
    )
    files = {name: monitor / "outdial" / f"{name}.wav" for name in ("old", "new", "ancient")}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
    await _call(pool, "old", "100 days", files["old"])
    await _call(pool, "new", "1 day", files["new"])
    await _call(pool, "ancient", "800 days", files["ancient"])
    return files


def _settings(monitor: Path, **days: int | None) -> PrivacySettings:
    return PrivacySettings(recordings_dir=monitor, retention=RetentionSettings(**days))


async def test_old_recordings_and_deleted_calls_lose_their_files(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    monitor = tmp_path / "monitor"
    files = await _setup(db_pool, monitor)
    settings = _settings(monitor)  # recordings 90 days, calls 730 days

    dry = await purge(db_pool, settings, webhooks=False, dry_run=True)
    rows = {(r.kind, r.table): r.rows for r in dry}
    assert rows[("recordings_days", "calls")] == 2
    assert all(path.exists() for path in files.values())

    results = await purge(db_pool, settings, webhooks=False)
    rows = {(r.kind, r.table): r.rows for r in results}
    assert rows[("recordings_days", "calls")] == 2
    assert rows[("calls_days", "calls")] == 1  # the ancient call itself
    assert rows[(RECORDING_FILES, "recording_deletions")] == 2
    assert not files["old"].exists() and not files["ancient"].exists()
    assert files["new"].exists()
    paths = dict(await db_pool.fetch("SELECT call_id, recording_path FROM calls"))
    assert paths == {"old": None, "new": str(files["new"])}
    assert await db_pool.fetchval("SELECT count(*) FROM recording_deletions") == 0


async def test_a_deleted_call_takes_its_recording_along(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    monitor = tmp_path / "monitor"
    files = await _setup(db_pool, monitor)
    await purge(db_pool, _settings(monitor, recordings_days=None), webhooks=False)
    assert not files["ancient"].exists()
    assert files["old"].exists() and files["new"].exists()


async def test_files_outside_the_directory_or_out_of_reach_wait_in_the_queue(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    monitor = tmp_path / "monitor"
    files = await _setup(db_pool, monitor)
    elsewhere = tmp_path / "precious.txt"
    elsewhere.write_text("not a recording")
    await db_pool.execute(
        "UPDATE calls SET recording_path = $1 WHERE call_id = 'old'", str(elsewhere)
    )
    sneaky = monitor / "outdial" / ".." / ".." / "precious.txt"
    await _call(db_pool, "sneaky", "100 days", sneaky)

    # outdial on another host: the directory is not here, so nothing counts as deleted.
    away = _settings(tmp_path / "not-mounted")
    results = await purge(db_pool, away, webhooks=False)
    assert {r.kind: r.rows for r in results}[RECORDING_FILES] == 0
    assert files["ancient"].exists()
    queued = await db_pool.fetchval("SELECT count(*) FROM recording_deletions")
    assert queued == 3

    await purge(db_pool, _settings(monitor), webhooks=False)
    assert elsewhere.read_text() == "not a recording"
    assert not files["ancient"].exists()
    kept = await db_pool.fetch("SELECT path, attempts, last_error FROM recording_deletions")
    assert sorted(r["path"] for r in kept) == sorted([str(elsewhere), str(sneaky)])
    assert all("outside privacy.recordings_dir" in r["last_error"] for r in kept)
    assert all(r["attempts"] == 1 for r in kept)


def test_forget_deletes_the_persons_recordings(pg_url: str, tmp_path: Path) -> None:
    monitor = tmp_path / "monitor"

    async def seed() -> dict[str, Path]:
        pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
        try:
            return await _setup(pool, monitor)
        finally:
            await pool.close()

    files = asyncio.run(seed())
    config = tmp_path / "outdial.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\ndefault_region: US\n"
        f"privacy: {{recordings_dir: {monitor}}}\n"
    )
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "leads", "forget", "+12025550123", "--yes"],
        env={"OUTDIAL_DATABASE_URL": pg_url, "COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "recordings" in result.output
    assert not any(path.exists() for path in files.values())

    async def left() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetch(
                """SELECT recording_path FROM calls WHERE recording_path IS NOT NULL
                   UNION ALL SELECT path FROM recording_deletions"""
            )
        finally:
            await conn.close()

    assert asyncio.run(left()) == []
