"""What the database says about a call is true: one call down each media path (AudioSocket
after AMD, and the half-duplex EAGI bridge), placed by the real dialer, and every column of
its `calls` and `call_attempts` rows read back against what pbxsim saw happen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from dialer.campaigns import CampaignSettings
from dialer.engine import Dialer
from dialer.settings import TrunkSettings
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from tests.agi.conftest import YES, YES2, LiveStack, order_campaign_lead
from tests.dialer.helpers import dialer_settings, running, wait_attempts_settled
from tests.eagi.conftest import eagi_dialplan

pytestmark = pytest.mark.slow

PATHS = {"audiosocket": ("bot-amd", "+12025550201"), "eagi": ("bot-eagi", "+12025550202")}


async def _lead(pool: asyncpg.Pool, path: str, phone: str) -> int:
    settings = CampaignSettings(window="00:00-23:59", trunks=[path], caller_id="+12025550100")
    return await order_campaign_lead(
        pool, f"records-{path}", "order_confirmation_en", phone, settings
    )


async def test_every_column_of_a_call_is_what_happened(
    eagi_stack: LiveStack, tmp_path: Path
) -> None:
    stack = eagi_stack
    leads = {path: await _lead(stack.pool, path, phone) for path, (_, phone) in PATHS.items()}
    dialplan = {
        **default_dialplan(f"agi://127.0.0.1:{stack.service.agi_port}/outdial"),
        **eagi_dialplan(stack.service.audiosocket_port, tmp_path / "sounds"),
    }
    talk = {"wait_for_bot": True}
    scenario = Scenario.model_validate(
        {
            "ring_seconds": 0.5,
            "media": {"framing": "random"},
            "customers": {
                "c": {"steps": [talk, {"say": YES}, talk, {"say": YES2}, {"silence": 20}]}
            },
        }
    )
    config = SimConfig(scenario=scenario, dialplan=dialplan, bot_silence_gap=1.0)
    async with PbxSim(config) as sim:
        trunks = [
            TrunkSettings(
                name=path,
                port=sim.ami_port,
                secret=sim.config.secret,
                dial_string="Local/{number}@customers",
                context=context,
                ring_timeout_s=10,
            )
            for path, (context, _) in PATHS.items()
        ]
        dialer = Dialer(stack.pool, dialer_settings("records", session_result_wait_s=5.0), trunks)
        async with running(dialer), asyncio.timeout(150):
            await wait_attempts_settled(stack.pool, len(PATHS))
        records = {r.number: r for r in sim.calls}
    await stack.turns.close()
    runtime = stack.catalog.get("order_confirmation_en")
    assert runtime is not None

    for path, (context, phone) in PATHS.items():
        attempt = dict(
            await stack.pool.fetchrow("SELECT * FROM call_attempts WHERE lead_id = $1", leads[path])
        )
        call = dict(await stack.pool.fetchrow("SELECT * FROM calls WHERE call_id = $1",
                                              attempt["call_id"]))  # fmt: skip
        record = records[phone]
        assert record.call_id == attempt["call_id"]
        amd = ("HUMAN", "HUMAN-800-800") if context == "bot-amd" else (None, None)

        # call_attempts: the dialer's record of the Originate and its end.
        assert attempt["trunk"] == path and attempt["owner"] == "records"
        assert attempt["action_id"] == f"od-{attempt['call_id']}"
        assert attempt["channel"] == record.channel
        assert attempt["uniqueid"] and attempt["uniqueid"].count(".") == 1
        assert attempt["started_at"] <= attempt["answered_at"] <= attempt["ended_at"]
        assert attempt["disposition"] == "completed"
        assert attempt["ami_reason"] == record.reason == 4
        # The bot ended the call: Asterisk's Hangup events then say cause 0, "Unknown"
        # (ami-originate-outcomes.txt, the answered call the dialplan hung up).
        assert (attempt["hangup_cause"], attempt["hangup_cause_txt"]) == (0, "Unknown")
        assert (attempt["amd_status"], attempt["amd_cause"]) == amd
        assert attempt["campaign_id"] is not None

        # calls: the session's record of the conversation.
        assert call["campaign_id"] == attempt["campaign_id"]
        assert call["lead_id"] == leads[path]
        assert (call["script_name"], call["script_version"]) == (runtime.name, runtime.version)
        assert call["variant"] is None  # this stack's chooser runs the script as written
        assert call["amd_status"] == amd[0]
        assert call["half_duplex"] is (path == "eagi")
        assert attempt["answered_at"] <= call["started_at"] <= call["ended_at"]
        assert call["ended_at"] <= attempt["ended_at"]
        assert (call["disposition"], call["outcome"], call["success"]) == (
            "completed",
            "confirmed",
            True,
        )
        assert call["transfer_target"] is None and call["transfer_reason"] is None
        assert call["summary"] is None
        assert call["hangup_side"] == "bot" == record.hangup_side
        assert 0 < call["greeting_latency_ms"] < 10_000
