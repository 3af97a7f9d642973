"""End to end through the EAGI bridge: pbxsim forks the real `outdial-eagi` as Asterisk would,
the bridge relays fd 3 into a real CallService (Vosk, Piper, spaCy, librosa, PostgreSQL) and
plays the prompts with STREAM FILE. Same checks as the AudioSocket path (tests/agi)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxsim import Scenario, SimConfig
from tests.agi.conftest import NO, ORDER_FIELDS, YES, YES2, LiveStack
from tests.eagi.conftest import bridges_running, eagi_dialplan, run_calls

pytestmark = pytest.mark.slow

CUSTOMERS = {
    "happy": [{"wait_for_bot": True}, {"say": YES}, {"wait_for_bot": True}, {"say": YES2}],
    # Talks over the second prompt: half duplex, so that is never heard nor a barge-in.
    "hangup": [{"wait_for_bot": True}, {"say": YES}, {"barge_in_after": 1.0}, {"hangup": True}],
    "transfer": [{"wait_for_bot": True}, {"say": YES}, {"wait_for_bot": True}, {"say": NO}],
}


async def _turns(stack: LiveStack, call_id: str) -> list[dict[str, object]]:
    rows = await stack.pool.fetch("SELECT * FROM turns WHERE call_id = $1 ORDER BY seq", call_id)
    return [dict(r) for r in rows]


async def _hear_no_when_confirming(stack: LiveStack, scripts: Path) -> None:
    """Half duplex, "no" can only be said once confirm_order listens, and the Korean demo
    grammar there has no word for it: teach this copy of the script one."""
    path = scripts / "order_confirmation_en.yaml"
    text = path.read_text()
    anchor = '      change_address: ["change the address"]\n'
    assert text.count(anchor) == 1
    path.write_text(text.replace(anchor, anchor + '      deny: ["no"]\n'))
    await stack.catalog.reload()


async def test_three_calls_through_the_eagi_bridge(eagi_stack: LiveStack, tmp_path: Path) -> None:
    await _hear_no_when_confirming(eagi_stack, tmp_path / "scripts")
    sounds = tmp_path / "sounds"
    numbers = {}
    calls = []
    for i, name in enumerate(CUSTOMERS):
        await eagi_stack.add_call(f"eagi-{name}", f"+1202555010{i}", ORDER_FIELDS)
        numbers[f"555010{i}"] = {"customer": name, "outcome": "answer"}
        calls.append((f"555010{i}", f"eagi-{name}"))
    scenario = Scenario.model_validate(
        {
            "seed": 1,
            "outcomes": {"answer": 1.0},
            "numbers": numbers,
            "customers": {n: {"steps": [*s, {"silence": 20}]} for n, s in CUSTOMERS.items()},
        }
    )
    config = SimConfig(
        scenario=scenario,
        dialplan=eagi_dialplan(eagi_stack.service.audiosocket_port, sounds),
        # Half duplex: customers wait for the end of a prompt, not a pause between sentences.
        bot_silence_gap=1.0,
    )
    records = await run_calls(config, calls)
    await eagi_stack.turns.close()
    rows = {r["call_id"]: dict(r) for r in await eagi_stack.pool.fetch("SELECT * FROM calls")}

    happy = rows["eagi-happy"]
    assert (happy["disposition"], happy["outcome"], happy["success"]) == (
        "completed",
        "confirmed",
        True,
    )
    turns = await _turns(eagi_stack, "eagi-happy")
    customer = [t for t in turns if t["speaker"] == "customer"]
    assert [t["intent"] for t in customer] == ["affirm", "affirm"]
    assert not any(t["barge_in"] for t in customer)
    assert any("Alex" in t["text"] for t in turns if t["speaker"] == "bot")
    record = records["eagi-happy"]
    commands = [exchange.command for exchange in record.agi]
    assert commands[0] == 'GET VARIABLE "OUTDIAL_CALL_ID"'
    # Every bot turn was heard as a whole prompt, each from its own temporary file.
    bot_turns = [t for t in turns if t["speaker"] == "bot"]
    assert len(record.prompts_played) == len(set(record.prompts_played)) >= len(bot_turns) - 1
    assert all(name.startswith(str(sounds)) for name in record.prompts_played)
    assert commands[-1] == "HANGUP"
    assert record.variables["OUTDIAL_RESULT"] == "completed"
    # The bot hung up itself: Asterisk sets AGISTATUS=HANGUP; the bridge exited cleanly.
    assert (record.eagi_status, record.agi_status, record.eagi_stderr) == (0, "HANGUP", "")

    hangup = rows["eagi-hangup"]
    assert hangup["hangup_side"] == "customer"
    assert hangup["ended_at"] is not None
    hung = records["eagi-hangup"]
    assert hung.hangup_side == "customer"
    assert hung.agi_status == "HANGUP"
    assert hung.eagi_status == 0
    assert not any(e.command == "HANGUP" for e in hung.agi)

    transfer = rows["eagi-transfer"]
    assert transfer["disposition"] == "transferred"
    moved = records["eagi-transfer"]
    assert moved.transfer is not None and "orders_queue" in moved.transfer.target
    assert moved.variables["OUTDIAL_TRANSFER_REASON"] == "customer needs an agent"
    assert moved.variables["OUTDIAL_LAST_INTENT"] == "deny"
    assert moved.variables["OUTDIAL_SUMMARY"]
    assert float(moved.variables["OUTDIAL_AGITATION"]) >= 0

    # Nothing left behind: prompt files, bridge processes, call slots, UUIDs.
    assert list(sounds.iterdir()) == []
    assert bridges_running(sounds) == []
    service = eagi_stack.service
    assert (service.active, len(service.registry)) == (0, 0)
