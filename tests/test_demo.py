"""`outdial demo` end to end: its summary is read back from the database and must match it,
and it touches nothing it did not create."""

from __future__ import annotations

import wave
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from pydantic import SecretStr

from dialer.campaigns import CampaignSettings, create_campaign
from outdial.commands.calls import load_call, render_call
from outdial.commands.demo import demo_config
from outdial.config import Config
from outdial.demo import DEMO_SCRIPT, run_demo


async def _operator_campaign(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """An operator's live campaign, due now, in the database the demo is given."""
    async with pool.acquire() as conn:
        always = CampaignSettings(window="00:00-23:59", days="mon-sun")
        campaign = await create_campaign(conn, "operators-own", DEMO_SCRIPT, always)
        await conn.execute(
            """INSERT INTO leads (campaign_id, phone_e164, timezone, fields)
               SELECT $1, '+1202555' || (3000 + n), 'UTC', '{"customer_name": "Pat"}'
                 FROM generate_series(1, 5) AS n""",
            campaign.id,
        )
        return await conn.fetch(
            "SELECT * FROM leads WHERE campaign_id = $1 ORDER BY id", campaign.id
        )


@pytest.mark.slow
async def test_demo_summary_matches_the_database_and_leaves_others_alone(
    pg_url: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    before = await _operator_campaign(db_pool)
    config = Config.model_validate({"state_dir": str(tmp_path / "state")})
    config = config.model_copy(
        update={"database": config.database.model_copy(update={"url": SecretStr(pg_url)})}
    )
    progress: list[tuple[int, int]] = []
    summary = await run_demo(config, 4, lambda done, total: progress.append((done, total)))

    assert summary.calls == 4
    assert progress[-1] == (4, 4)
    async with db_pool.acquire() as conn:
        attempts = await conn.fetch(
            """SELECT a.disposition FROM call_attempts a JOIN campaigns c ON c.id = a.campaign_id
                WHERE c.name = $1""",
            summary.campaign,
        )
        turns = await conn.fetchval("SELECT count(*) FROM turns")
        statuses = dict(await conn.fetch("SELECT name, status FROM campaigns"))
        after = await conn.fetch(
            "SELECT * FROM leads WHERE campaign_id = $1 ORDER BY id", before[0]["campaign_id"]
        )
        operator_attempts = await conn.fetchval(
            "SELECT count(*) FROM call_attempts WHERE campaign_id = $1", before[0]["campaign_id"]
        )
        talked = await conn.fetch(
            """SELECT call_id, grade, grade_reason FROM calls
                WHERE disposition IN ('completed', 'transferred')"""
        )
        events = await conn.fetch("SELECT payload FROM outbox WHERE event_type = 'call.outcome'")
    counted: dict[str, int] = {}
    for row in attempts:
        counted[row["disposition"]] = counted.get(row["disposition"], 0) + 1
    assert counted == summary.dispositions
    assert turns == summary.turns
    answered = sum(n for d, n in counted.items() if d in ("completed", "transferred"))
    if answered:
        assert summary.turns > 0
        assert summary.greeting_ms_p50 is not None
    # Every call the bot talked through has a grade and its reason; the summary counts them.
    assert all(r["grade"] in "ABCDEF" and r["grade_reason"] for r in talked)
    graded: dict[str, int] = {}
    for row in talked:
        graded[row["grade"]] = graded.get(row["grade"], 0) + 1
    assert summary.grades == graded
    # Each outcome event says what to send next (or why nothing may be sent).
    assert len(events) == 4
    payloads = [e["payload"] for e in events]  # the pool decodes jsonb
    assert all(p["follow_up"]["reason"] for p in payloads)
    # The CRM hears each graded call's grade and reason.
    heard = {p["call_id"]: (p["grade"], p["grade_reason"]) for p in payloads}
    assert all(heard[r["call_id"]] == (r["grade"], r["grade_reason"]) for r in talked)
    # The operator's campaign: same leads, byte for byte, no attempt, still active; the demo's
    # own campaign is left finished, so no real daemon dials it later.
    assert after == before
    assert operator_attempts == 0
    assert statuses == {"operators-own": "active", summary.campaign: "finished"}
    await _recorded_and_shown(db_pool, config, summary.campaign, summary.recordings)


async def _recorded_and_shown(
    pool: asyncpg.Pool, config: Config, campaign: str, recordings: int
) -> None:
    """The demo campaign records: every call the bot answered has a WAV of both directions,
    its path on the call; and `outdial calls show` prints each call's whole conversation."""
    calls = await pool.fetch(
        """SELECT c.call_id, c.recording_path FROM calls c JOIN campaigns p ON p.id = c.campaign_id
           WHERE p.name = $1 ORDER BY c.call_id""",
        campaign,
    )
    assert calls and recordings == len(calls)
    monitor = config.state_dir / "monitor"
    for call in calls:
        path = Path(call["recording_path"])
        assert path == monitor / "outdial" / f"{call['call_id']}.wav"
        with wave.open(str(path)) as recording:
            assert (recording.getframerate(), recording.getnchannels()) == (8000, 1)
            audio = np.frombuffer(recording.readframes(recording.getnframes()), dtype="<i2")
        assert audio.size > 8000 and np.abs(audio).max() > 1000  # a second or more, not silence
    for call in calls:
        shown = await load_call(config, call["call_id"])
        stored = await pool.fetch(
            "SELECT seq, speaker, node, text FROM turns WHERE call_id = $1 ORDER BY seq",
            call["call_id"],
        )
        assert [(t.seq, t.speaker, t.node) for t in shown.turns] == [
            (r["seq"], r["speaker"], r["node"]) for r in stored
        ]
        assert shown.recording_path == call["recording_path"]
        text = "\n".join(render_call(shown))
        for row in stored:
            if row["text"]:
                # Wrapped at 80 columns: the first words of every turn are on one line.
                assert " ".join(row["text"].split()[:3]) in text


def test_demo_ignores_the_working_directorys_config_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outdial.yaml").write_text(
        "models: {dir: /var/lib/outdial/models}\nstate_dir: /var/lib/outdial\n"
    )
    monkeypatch.setenv("OUTDIAL_CONFIG", str(tmp_path / "outdial.yaml"))
    monkeypatch.setenv("OUTDIAL_DATABASE_URL", "postgresql://u:p@real-db/outdial")
    monkeypatch.setenv("OUTDIAL_STATE_DIR", "/var/lib/outdial")
    with demo_config(None, None) as config:
        temporary = config.state_dir
        assert temporary.is_dir() and temporary.name.startswith("outdial-demo-")
        assert config.database.url is None  # its own embedded database
        assert config.models.dir is None  # never the operator's packs
    assert not temporary.exists()
    with demo_config(None, tmp_path / "keep") as config:
        assert config.state_dir == tmp_path / "keep" and config.database.url is None
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("default_region: GB\n")
    with demo_config(explicit, None) as config:
        assert config.default_region == "GB"
