"""A script edited and reloaded during a live call, or a staged version promoted: the call
keeps its version, new calls don't; a restarted daemon still serves the promoted version (not
the older file). pbxsim plays Asterisk; real Vosk, Piper, spaCy and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from agi.catalog import ScriptCatalog
from dialog import parse_script
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from store.scripts import promote_script_version, stage_script_version
from tests.agi.conftest import AUDIO, LiveStack, originate

pytestmark = pytest.mark.slow

NAME = "order_confirmation_en"
OLD = "Great, your order will arrive"
NEW = "Wonderful, your order arrives"


@contextlib.asynccontextmanager
async def call_under_way(
    live_stack: LiveStack, call_id: str, number: str, script: str = NAME
) -> AsyncIterator[None]:
    """A customer who says yes twice is on the line (its calls row written) inside the block;
    the call has ended after it."""
    yes = str(AUDIO / "ko_yes_1.wav")
    steps = [{"wait_for_bot": True}, {"say": yes}, {"wait_for_bot": True}, {"say": yes}]
    scenario = Scenario.model_validate(
        {
            "outcomes": {"answer": 1.0},
            "customers": {"happy": {"steps": [*steps, {"silence": 20}]}},
        }
    )
    fields = {"customer_name": "Kim", "order_number": "B-7", "item": "a fan", "address": "1 Elm"}
    await live_stack.add_call(call_id, f"+120255{number}", fields, script)
    dialplan = default_dialplan(f"agi://127.0.0.1:{live_stack.service.agi_port}/outdial")
    sim_config = SimConfig(scenario=scenario, dialplan=dialplan, bot_silence_gap=1.0)
    async with PbxSim(sim_config) as sim:
        await originate(sim.ami_port, [(number, call_id)])
        for _ in range(600):  # the session writes its calls row when the media starts
            if await live_stack.pool.fetchval("SELECT count(*) FROM calls"):
                break
            await asyncio.sleep(0.1)
        yield
        await sim.wait_calls_done(1, timeout=120)
    await live_stack.turns.close()


async def assert_kept_version_1(live_stack: LiveStack, call_id: str) -> None:
    call = await live_stack.pool.fetchrow("SELECT * FROM calls WHERE call_id = $1", call_id)
    assert (call["script_version"], call["outcome"]) == (1, "confirmed")
    last_bot = await live_stack.pool.fetchval(
        "SELECT text FROM turns WHERE call_id = $1 AND speaker = 'bot' ORDER BY seq DESC LIMIT 1",
        call_id,
    )
    assert last_bot.startswith(OLD)
    served = live_stack.catalog.get(NAME)
    assert served is not None and served.version == 2 and NEW in served.loaded.source


async def test_live_call_keeps_its_script_version(live_stack: LiveStack) -> None:
    async with call_under_way(live_stack, "call-reload", "5550199"):
        # The call is live: edit the script on disk and reload, as SIGHUP does.
        path = live_stack.catalog.directory / f"{NAME}.yaml"
        path.write_text(path.read_text().replace(OLD, NEW))
        reloaded = await live_stack.catalog.reload()
        assert [r.version for r in reloaded] == [2]
    await assert_kept_version_1(live_stack, "call-reload")
    versions = await live_stack.pool.fetch(
        """SELECT v.version FROM script_versions v JOIN scripts s ON s.id = v.script_id
            WHERE s.name = 'order_confirmation_en' ORDER BY v.version"""
    )
    assert [v["version"] for v in versions] == [1, 2]


async def test_a_call_in_progress_keeps_its_version_across_a_promotion(
    live_stack: LiveStack,
) -> None:
    path = live_stack.catalog.directory / f"{NAME}.yaml"
    staged = parse_script(path.read_text().replace(OLD, NEW), "staged.yaml")
    async with call_under_way(live_stack, "call-promote", "5550198"):
        # The call is live: an admin stages a new version and promotes it; SIGHUP reloads.
        version = await stage_script_version(
            live_stack.pool, NAME, staged.source, staged.content_hash, (), {}, "ann"
        )
        assert version == 2
        assert await live_stack.catalog.reload() == []  # staged is not live
        await promote_script_version(live_stack.pool, NAME, version, "bob")
        assert [r.version for r in await live_stack.catalog.reload()] == [2]
    await assert_kept_version_1(live_stack, "call-promote")
    # A restart: the file still holds version 1, but the promoted version 2 stays live.
    old = live_stack.catalog
    restarted = ScriptCatalog(old.directory, old.services, old.cache_dir, old.pool)
    await restarted.reload()
    again = restarted.get(NAME)
    assert again is not None and again.version == 2


async def test_a_promoted_version_with_no_file_serves_calls_a_staged_one_does_not(
    live_stack: LiveStack,
) -> None:
    path = live_stack.catalog.directory / f"{NAME}.yaml"
    renamed = path.read_text().replace(f"name: {NAME}\n", "name: stored_order_en\n")
    stored = parse_script(renamed, "stored.yaml")
    version = await stage_script_version(
        live_stack.pool, "stored_order_en", stored.source, stored.content_hash, (), {}, "ann"
    )
    await live_stack.catalog.reload()
    assert live_stack.catalog.get("stored_order_en") is None  # staged only: no calls
    await promote_script_version(live_stack.pool, "stored_order_en", version, "bob")
    await live_stack.catalog.reload()
    async with call_under_way(live_stack, "call-stored", "5550197", "stored_order_en"):
        pass
    call = await live_stack.pool.fetchrow("SELECT * FROM calls WHERE call_id = 'call-stored'")
    assert (call["script_name"], call["script_version"], call["outcome"]) == (
        "stored_order_en", 1, "confirmed",
    )  # fmt: skip
