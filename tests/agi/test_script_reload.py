"""A script edited and reloaded during a live call: the call keeps its version, new calls don't."""

from __future__ import annotations

import asyncio

import pytest

from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from tests.agi.conftest import AUDIO, LiveStack, originate

pytestmark = pytest.mark.slow

OLD = "Great, your order will arrive"
NEW = "Wonderful, your order arrives"


async def test_live_call_keeps_its_script_version(live_stack: LiveStack) -> None:
    yes = str(AUDIO / "ko_yes_1.wav")
    steps = [{"wait_for_bot": True}, {"say": yes}, {"wait_for_bot": True}, {"say": yes}]
    scenario = Scenario.model_validate(
        {
            "outcomes": {"answer": 1.0},
            "customers": {"happy": {"steps": [*steps, {"silence": 20}]}},
        }
    )
    fields = {"customer_name": "Kim", "order_number": "B-7", "item": "a fan", "address": "1 Elm"}
    await live_stack.add_call("call-reload", "+12025550199", fields)
    dialplan = default_dialplan(f"agi://127.0.0.1:{live_stack.service.agi_port}/outdial")
    sim_config = SimConfig(scenario=scenario, dialplan=dialplan, bot_silence_gap=1.0)
    async with PbxSim(sim_config) as sim:
        await originate(sim.ami_port, [("5550199", "call-reload")])
        for _ in range(600):  # the session writes its calls row when the media starts
            if await live_stack.pool.fetchval("SELECT count(*) FROM calls"):
                break
            await asyncio.sleep(0.1)
        # The call is live: edit the script on disk and reload, as SIGHUP does.
        path = live_stack.catalog.directory / "order_confirmation_en.yaml"
        path.write_text(path.read_text().replace(OLD, NEW))
        reloaded = await live_stack.catalog.reload()
        assert [r.version for r in reloaded] == [2]
        await sim.wait_calls_done(1, timeout=120)
    await live_stack.turns.close()
    call = await live_stack.pool.fetchrow("SELECT * FROM calls WHERE call_id = 'call-reload'")
    assert call["script_version"] == 1
    assert call["outcome"] == "confirmed"
    last_bot = await live_stack.pool.fetchval(
        "SELECT text FROM turns WHERE call_id = 'call-reload' AND speaker = 'bot' "
        "ORDER BY seq DESC LIMIT 1"
    )
    assert last_bot.startswith(OLD)
    assert live_stack.catalog.get("order_confirmation_en").version == 2
    versions = await live_stack.pool.fetch(
        """SELECT v.version FROM script_versions v JOIN scripts s ON s.id = v.script_id
            WHERE s.name = 'order_confirmation_en' ORDER BY v.version"""
    )
    assert [v["version"] for v in versions] == [1, 2]
