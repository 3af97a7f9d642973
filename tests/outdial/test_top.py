"""`outdial top`: the floor read from the database, drawn for an 80x24 terminal (under tmux, as
over SSH), refreshed as the calls change, and never showing a phone number."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from outdial.commands.top import parse_metrics
from tests.analytics.cli import invoke

NUMBER = "+12025550147"


async def _seed(pool: asyncpg.Pool) -> None:
    """Campaign spring: three calls talking to the bot (one agitated), one dialling, one handed
    to people and waiting, and settled attempts for the rates; an abandoned call lately."""
    await pool.execute("INSERT INTO campaigns (name, script_name) VALUES ('spring', 's')")
    await pool.execute(
        "INSERT INTO leads (campaign_id, phone_e164, timezone) SELECT id, $1, 'UTC' FROM campaigns",
        NUMBER,
    )
    await pool.execute(
        """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner, started_at,
                                      answered_at, ended_at, disposition)
           SELECT v.id, l.id, l.campaign_id, v.trunk, 'o', now() - v.ago::interval,
                  CASE WHEN v.answered THEN now() - v.ago::interval END,
                  CASE WHEN v.ended THEN now() - interval '5 s' END, v.d
           FROM leads l, (VALUES
             ('live-aaaa-1', 'carrier', '40 s', true, false, NULL),
             ('live-bbbb-2', 'carrier', '30 s', true, false, NULL),
             ('live-cccc-3', 'backup', '20 s', true, false, NULL),
             ('ring-dddd-4', 'carrier', '3 s', false, false, NULL),
             ('xfer-eeee-5', 'carrier', '90 s', true, false, NULL),
             ('done-ffff-6', 'carrier', '50 s', true, true, 'completed'),
             ('done-gggg-7', 'carrier', '45 s', false, true, 'busy'),
             ('done-hhhh-8', 'carrier', '10 min', true, true, 'abandoned')
           ) AS v(id, trunk, ago, answered, ended, d)"""
    )
    await pool.execute(
        """INSERT INTO calls (call_id, campaign_id, lead_id, started_at, ended_at, disposition)
           SELECT v.id, l.campaign_id, l.id, now() - v.ago::interval,
                  CASE WHEN v.d IS NOT NULL THEN now() - interval '60 s' END, v.d
           FROM leads l, (VALUES ('live-aaaa-1', '39 s', NULL), ('live-bbbb-2', '29 s', NULL),
                                 ('live-cccc-3', '19 s', NULL),
                                 ('xfer-eeee-5', '89 s', 'transferred')) AS v(id, ago, d)"""
    )
    await pool.execute(
        """INSERT INTO turns (call_id, seq, speaker, node, text, agitation, timings, created_at)
           VALUES ('live-aaaa-1', 1, 'bot', 'greet', 'Hello', NULL, '{}', now() - interval '38 s'),
                  ('live-aaaa-1', 2, 'customer', 'confirm_identity', $1, 0.82,
                   '{}', now() - interval '30 s'),
                  ('live-aaaa-1', 3, 'bot', 'confirm_identity', 'Thanks', NULL,
                   '{"reply_ms": 700}', now() - interval '29 s'),
                  ('live-bbbb-2', 1, 'bot', 'greet', 'Hello', NULL,
                   '{"reply_ms": 1500}', now() - interval '20 s')""",
        f"my number is {NUMBER}",
    )


async def test_one_screen_at_80_columns(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> None:
    await _seed(db_pool)
    config = "trunks: [{name: carrier, max_channels: 4}]\nmetrics: {port: 1}\n"
    result = await invoke(
        "top", "--once", pg_url=pg_url, tmp_path=tmp_path, config=config, columns=80
    )
    assert result.exit_code == 0, result.output
    screen = result.output
    lines = screen.splitlines()
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    for wanted in (
        "daemon: metrics unreachable",
        "dial 6/min",  # six attempts started in the last minute
        "answer 67% (15 min)",  # of the three settled lately, two answered
        "abandoned 50.0% (cap 3%) OVER",  # one abandoned of two a person answered
        "transfers waiting 1",
        "reply p95 1460 ms (1 min, 2 replies)",
        "carrier 4/4 (1 dialling)",
        "backup 1/?",
        "on the line: 3 with the bot, 1 dialling",
        "live-aaaa-",
        "confirm_identity",
        "0.82",
    ):
        assert wanted in screen, wanted
    assert "0147" not in screen and "xfer-eeee" not in screen  # handed over: not the bot's


def test_the_daemons_metrics_are_read() -> None:
    text = (
        "# TYPE outdial_ami_connected gauge\noutdial_ami_connected 1.0\n"
        "# TYPE outdial_active_calls gauge\n"
        'outdial_active_calls{campaign="a"} 2.0\noutdial_active_calls{campaign="b"} 1.0\n'
    )
    state = parse_metrics(text)
    assert (state.reachable, state.ami_connected, state.sessions) == (True, True, 3)


@pytest.mark.slow
async def test_live_under_tmux_at_80x24(db_pool: asyncpg.Pool, pg_url: str, tmp_path: Path) -> None:
    """Over SSH a supervisor has a terminal, often tmux: the screen there, and a refresh."""
    tmux = shutil.which("tmux")
    assert tmux, "tmux is needed for this test (apt-get install tmux)"
    await _seed(db_pool)
    (tmp_path / "outdial.yaml").write_text("metrics: {port: 1}\n")
    socket = str(tmp_path / "tmux.sock")
    env = {
        **os.environ,
        "OUTDIAL_DATABASE_URL": pg_url,
        "OUTDIAL_CONFIG": str(tmp_path / "outdial.yaml"),
        "OUTDIAL_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    outdial = str(Path(sys.executable).with_name("outdial"))
    tmux_cmd = [tmux, "-S", socket, "-f", "/dev/null"]
    await _tmux([*tmux_cmd, "new-session", "-d", "-x", "80", "-y", "24", outdial, "top"], env=env)
    try:
        first = await _screen_with(tmux_cmd, "live-cccc-")
        lines = first.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "on the line: 3 with the bot" in first and "0147" not in first
        await db_pool.execute("UPDATE calls SET ended_at = now() WHERE call_id = 'live-cccc-3'")
        second = await _screen_with(tmux_cmd, "on the line: 2 with the bot")
        assert "live-cccc-" not in second
    finally:
        await _tmux([*tmux_cmd, "kill-server"])


async def _screen_with(tmux_cmd: list[str], wanted: str) -> str:
    """The pane's text once it shows `wanted` (the command starts, then refreshes each
    second; the box is loaded, so this waits up to a minute)."""
    deadline = time.monotonic() + 60
    screen = ""
    while time.monotonic() < deadline:
        screen = await _tmux([*tmux_cmd, "capture-pane", "-p"])
        if wanted in screen:
            return screen
        await asyncio.sleep(0.5)
    raise AssertionError(f"{wanted!r} never appeared; the screen:\n{screen}")


async def _tmux(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, check=False
    )
    return done.stdout
