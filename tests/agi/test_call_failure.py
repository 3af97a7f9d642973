"""End to end: a call that fails mid-prompt is not a customer lost.

The dialer, the call service, real models and PostgreSQL run in this process against pbxsim.
Fault points (agi/faults.py) make the real code raise: in one campaign while the reply after
the first "yes" plays, in the other when the synthesis of the question after it fails. Each
failed call's customer must hear an apology, then be handed to people (a script whose
`on_error` names a target) or hear a goodbye (one that does not); the call is settled
`error` and the lead is dialled again after `dialer.retry.error_s`, when it goes through.
Meanwhile the emotion features fail on every utterance of every call: an optional signal,
which never ends a call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import yaml
from prometheus_client import REGISTRY

from agi import faults
from dialer.campaigns import CampaignSettings
from dialer.engine import Dialer
from dialer.settings import RetryDelays, TrunkSettings
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import DialplanStep, default_dialplan
from tests.agi.conftest import YES, YES2, LiveStack, order_campaign_lead
from tests.dialer.helpers import dialer_settings, running

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

ERROR_RETRY_S = 1.0
GOODBYE_SCRIPT = "order_confirmation_goodbye"


def _goodbye_script(scripts: Path) -> None:
    """The shipped order script without anyone to hand a failed call to."""
    source = yaml.safe_load((scripts / "order_confirmation_en.yaml").read_text())
    source["name"] = GOODBYE_SCRIPT
    source["on_error"] = {}
    source.pop("variants", None)
    (scripts / f"{GOODBYE_SCRIPT}.yaml").write_text(yaml.safe_dump(source, allow_unicode=True))


async def _campaign(pool: asyncpg.Pool, name: str, script: str, phone: str) -> int:
    settings = CampaignSettings(window="00:00-23:59", max_attempts=3)
    return await order_campaign_lead(pool, name, script, phone, settings)


def _failures(stage: str) -> float:
    labels = {"stage": stage}
    return REGISTRY.get_sample_value("outdial_call_failures_total", labels) or 0.0


def _signal_failures() -> float:
    labels = {"signal": "emotion"}
    return REGISTRY.get_sample_value("outdial_optional_signal_failures_total", labels) or 0.0


async def _settled(pool: asyncpg.Pool, leads: list[int]) -> None:
    while True:
        done = await pool.fetchval(
            "SELECT count(*) FROM leads WHERE id = ANY($1::bigint[]) AND status = 'done'", leads
        )
        if done == len(leads):
            return
        await asyncio.sleep(0.2)


async def test_a_call_killed_mid_prompt_apologises_falls_back_and_is_retried(
    live_stack: LiveStack,
) -> None:
    stack = live_stack
    _goodbye_script(stack.catalog.directory)
    await stack.catalog.reload()
    order = "order_confirmation_en"
    transfer_lead = await _campaign(stack.pool, "to-people", order, "+12025550101")
    goodbye_lead = await _campaign(stack.pool, "goodbye", GOODBYE_SCRIPT, "+12025550102")
    dialplan = default_dialplan(f"agi://127.0.0.1:{stack.service.agi_port}/outdial")
    dialplan["orders_queue"] = [DialplanStep.model_validate(s) for s in ("Answer()", "Wait(1)")]
    talk = {"wait_for_bot": True}
    scenario = Scenario.model_validate(
        {
            "seed": 5,
            "ring_seconds": 0.5,
            "media": {"framing": "random"},
            "customers": {
                "answers": {"steps": [talk, {"say": YES}, talk, {"say": YES2}, {"silence": 20}]}
            },
        }
    )
    config = SimConfig(scenario=scenario, dialplan=dialplan, bot_silence_gap=1.0)
    speaking_before, signals_before = _failures("speaking"), _signal_failures()
    with (
        faults.armed(faults.PROMPT, node="read_order", campaign="to-people") as prompt_fault,
        faults.armed(faults.SYNTHESIS, node="confirm_order", campaign="goodbye") as synthesis,
        faults.armed(faults.EMOTION, times=None) as emotion_fault,
    ):
        async with PbxSim(config) as sim:
            trunk = TrunkSettings(
                name="sim",
                port=sim.ami_port,
                secret=sim.config.secret,
                dial_string="Local/{number}@customers",
                context="bot-agi",
                ring_timeout_s=10,
            )
            settings = dialer_settings(
                "failure-test",
                retry=RetryDelays(error_s=ERROR_RETRY_S),
                session_result_wait_s=5.0,
            )
            dialer = Dialer(stack.pool, settings, [trunk])
            async with running(dialer), asyncio.timeout(180):
                await _settled(stack.pool, [transfer_lead, goodbye_lead])
            records = {r.call_id: r for r in sim.calls}
    assert prompt_fault.hits == synthesis.hits == 1 and emotion_fault.hits > 0
    await stack.turns.close()

    attempts = await stack.pool.fetch(
        """SELECT a.call_id, a.lead_id, a.disposition, a.started_at, a.ended_at,
                  c.disposition AS session, c.transfer_target, c.transfer_reason
           FROM call_attempts a LEFT JOIN calls c USING (call_id) ORDER BY a.id"""
    )
    by_lead = {lead: [a for a in attempts if a["lead_id"] == lead]
               for lead in (transfer_lead, goodbye_lead)}  # fmt: skip
    for lead, (failed, retried) in by_lead.items():
        # The failed call is settled `error`; the lead is dialled again after error_s, and
        # that call goes through.
        assert (failed["disposition"], failed["session"]) == ("error", "error")
        assert (retried["disposition"], retried["session"]) == ("completed", "completed")
        gap = (retried["started_at"] - failed["ended_at"]).total_seconds()
        assert gap >= ERROR_RETRY_S - 0.05, (lead, gap)
    leads = await stack.pool.fetch(
        "SELECT id, status, attempts FROM leads WHERE id = ANY($1::bigint[])",
        [transfer_lead, goodbye_lead],
    )
    assert {(r["status"], r["attempts"]) for r in leads} == {("done", 2)}

    runtime = stack.catalog.get("order_confirmation_en")
    assert runtime is not None
    tts = runtime.pack.tts
    apology = runtime.script.error_apology()
    goodbye_runtime = stack.catalog.get(GOODBYE_SCRIPT)
    assert goodbye_runtime is not None
    for lead, fallback in ((transfer_lead, [apology]),
                           (goodbye_lead, [goodbye_runtime.script.error_apology(),
                                           goodbye_runtime.script.error_goodbye()])):  # fmt: skip
        failed = by_lead[lead][0]
        record = records[failed["call_id"]]
        # The fallback is on the wire: its audio, frame for frame, in what pbxsim received.
        for text in fallback:
            pcm = await tts.render(text)
            assert pcm[: len(pcm) // 320 * 320] in record.bot_audio, text
        turns = await stack.pool.fetch(
            "SELECT speaker, node, text FROM turns WHERE call_id = $1 ORDER BY seq",
            failed["call_id"],
        )
        bot = [(t["node"], t["text"]) for t in turns if t["speaker"] == "bot"]
        assert bot[-len(fallback) :] == [("on_error", text) for text in fallback]
        # It failed mid-call, after the customer had answered. (Whether the reply's first
        # prompt was logged before the failure depends on how far synthesis ahead had got.)
        assert any(t["speaker"] == "customer" for t in turns)

    transferred = records[by_lead[transfer_lead][0]["call_id"]]
    assert transferred.transfer is not None and "orders_queue" in transferred.transfer.target
    assert transferred.variables["OUTDIAL_TRANSFER_REASON"] == "bot error"
    assert by_lead[transfer_lead][0]["transfer_target"] == "orders_queue"
    hung_up = records[by_lead[goodbye_lead][0]["call_id"]]
    assert hung_up.transfer is None and hung_up.hangup_side == "bot"
    assert by_lead[goodbye_lead][0]["transfer_target"] is None

    assert _failures("speaking") - speaking_before == 2
    # Emotion failed on every utterance; no call ended for it.
    assert _signal_failures() - signals_before >= 4
