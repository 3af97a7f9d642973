"""Replay the captured AMI sessions against pbxsim and compare field by field.

What the client wrote comes from the capture's `>>> SENT` blocks (plus the few actions the
capture did not record: login, the CoreShowChannels, the bad Originate and the Logoff); what
pbxsim answers is compared, per channel leg and in order, with what Asterisk answered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from tests.pbxsim.simcaptures import read_agi_capture, read_ami_capture
from tests.pbxsim.simcompare import assert_same_streams
from tests.pbxsim.simpeers import AudioSocketPeer, RawAmi, ScriptedAgi, has

SPEED = 5.0
LOGIN = [("Action", "Login"), ("Username", "outdial"), ("Secret", "s3cret")]


def capture_scenario(fixtures: Path, **customers: dict) -> Scenario:
    """Customers that behave like the capture's customer-* contexts, pinned by dial string."""
    return Scenario.model_validate(
        {
            "ring_seconds": 0,
            "customers": customers,
            "numbers": {f"s@{name}": {"customer": name} for name in customers},
            "base_dir": fixtures,
        }
    )


HELLO = {"say": "customer-hello.wav"}


async def wait_call_over(ami: RawAmi, dial: str, action_id: str) -> None:
    await ami.wait_for(lambda m: has(m, Event="OriginateResponse", ActionID=action_id))
    for leg in (";1", ";2"):
        await ami.wait_for(
            lambda m, leg=leg: (
                has(m, Event="Hangup")
                and dict(m)["Channel"].startswith(f"Local/{dial}-")
                and dict(m)["Channel"].endswith(leg)
            )
        )


async def login(ami: RawAmi, action_id: str = "login-1") -> None:
    ami.send([*LOGIN, ("ActionID", action_id)])
    await ami.wait_for(lambda m: has(m, Event="SuccessfulAuth"))


async def test_originate_outcomes_match_the_capture(fixtures: Path) -> None:
    banner, captured = read_ami_capture("ami-originate-outcomes.txt")
    agi_capture = read_agi_capture("fastagi-session-answered.txt")
    media = AudioSocketPeer(close_after_audio=40)
    media_port = await media.start()
    script = [c.replace(":9092", f":{media_port}") for c, _ in agi_capture.exchanges]
    agi = ScriptedAgi(script)
    agi_port = await agi.start()
    scenario = capture_scenario(
        fixtures,
        **{
            "customer-answer": {
                "steps": [{"silence": 0.3}, HELLO, {"silence": 4}, {"hangup": True}]
            },
            "customer-busy": {"outcome": "busy"},
            "customer-noanswer": {"outcome": "no_answer"},
            "customer-congestion": {"outcome": "congestion"},
        },
    )
    url = f"agi://127.0.0.1:{agi_port}/outdial?campaign=c1&lead=42"
    sim = PbxSim(SimConfig(scenario=scenario, dialplan=default_dialplan(url), speed=SPEED))
    await sim.start()
    ami = await RawAmi.connect(sim.ami_port)
    try:
        assert ami.banner == banner
        await login(ami)
        for msg in (m for m in captured if m.sent):
            ami.send(msg.fields)
            dial = msg.get("Channel").removeprefix("Local/")
            await wait_call_over(ami, dial, msg.get("ActionID"))
        ami.send([("Action", "CoreShowChannels"), ("ActionID", "csc-1")])
        ami.send(
            [("Action", "Originate"), ("ActionID", "bad-1"), ("Channel", "Bogus/x")]
            + [("Context", "bot-agi"), ("Exten", "s"), ("Priority", "1"), ("Async", "true")]
        )
        ami.send([("Action", "Logoff"), ("ActionID", "bye")])
        await ami.wait_for(lambda m: has(m, Response="Goodbye"))
        await ami.closed.wait()
    finally:
        await ami.close()
        await sim.stop()
        await agi.stop()
        await media.stop()

    assert_same_streams([m.fields for m in captured if not m.sent], ami.messages)
    # The AGI replies of the answered call, line for line, as the capture read them.
    assert agi.runs[0].replies == [
        (c.replace(":9092", f":{media_port}"), r) for c, r in agi_capture.exchanges
    ]
    records = sim.calls
    assert [(r.outcome, r.reason) for r in records] == [
        ("answer", 4), ("busy", 5), ("no_answer", 3), ("congestion", 8)
    ]  # fmt: skip
    assert records[0].call_id == "call-0"
    assert records[0].hangup_side == "bot"
    assert records[0].audiosocket_results == [0]


async def test_amd_call_matches_the_capture(fixtures: Path) -> None:
    """bot-amd: AMD() says MACHINE, the AGI runs, the customer hangs up after the bot's HANGUP."""
    banner, captured = read_ami_capture("ami-originate-amd.txt")
    agi_capture = read_agi_capture("fastagi-session-amd-machine.txt")
    media = AudioSocketPeer(close_after_audio=20, hangup_frame=True)
    media_port = await media.start()
    script: list = [c.replace(":9092", f":{media_port}") for c, _ in agi_capture.exchanges]
    agi = ScriptedAgi(script)
    agi_port = await agi.start()
    amd = {"status": "MACHINE", "cause": "MAXWORDS-3-2", "seconds": 2.6}
    scenario = capture_scenario(
        fixtures,
        **{
            "customer-amd": {
                "answer_delay": 0,
                "amd": amd,
                "steps": [HELLO, {"silence": 3}, {"hangup": True}],
            }
        },
    )
    url = f"agi://127.0.0.1:{agi_port}/outdial?campaign=c1&lead=43"
    sim = PbxSim(SimConfig(scenario=scenario, dialplan=default_dialplan(url), speed=SPEED))
    await sim.start()
    ami = await RawAmi.connect(sim.ami_port)
    try:
        # The capture's FastAGI server closed only after the customer had hung up.
        script.append(
            lambda: ami.wait_for(lambda m: has(m, Event="Hangup") and m[2][1].endswith(";2"))
        )
        await login(ami)
        for msg in (m for m in captured if m.sent):
            ami.send(msg.fields)
        await wait_call_over(ami, "s@customer-amd", "orig-0")
        ami.send([("Action", "CoreShowChannels"), ("ActionID", "csc-1")])
        ami.send([("Action", "Originate"), ("ActionID", "bad-1"), ("Channel", "Bogus/x")])
        ami.send([("Action", "Logoff"), ("ActionID", "bye")])
        await ami.closed.wait()
    finally:
        await ami.close()
        await sim.stop()
        await agi.stop()
        await media.stop()
    assert ami.banner == banner
    assert_same_streams([m.fields for m in captured if not m.sent], ami.messages)
    assert agi.runs[0].replies == [
        (c.replace(":9092", f":{media_port}"), r) for c, r in agi_capture.exchanges
    ]
    record = sim.calls[0]
    assert (record.amd_status, record.amd_cause) == ("MACHINE", "MAXWORDS-3-2")
    assert record.variables["AMDSTATUS"] == "MACHINE"


def _is(event: str, leg: str, **fields: str):  # noqa: ANN202
    return lambda m: has(m, Event=event, **fields) and dict(m).get("Channel", "").endswith(leg)


async def test_live_call_queries_match_the_capture(fixtures: Path) -> None:
    """CoreShowChannels, Getvar, Status and Setvar during the AudioSocket, then a Goto hand-over."""
    _, captured = read_ami_capture("ami-live-call-queries.txt")
    transfer = read_agi_capture("fastagi-session-transfer.txt")
    media = AudioSocketPeer()  # closes when the test says so
    media_port = await media.start()
    sent = [m for m in captured if m.sent]
    ami_holder: list[RawAmi] = []

    async def queries_then_close_media() -> None:
        ami = ami_holder[0]
        await ami.wait_for(_is("Newexten", ";2", Application="Playback"))
        bot = dict(await ami.wait_for(_is("Newchannel", ";1")))["Channel"]
        for msg in sent[2:6]:  # CoreShowChannels, Getvar, Status, Setvar
            ami.send([(k, bot if k == "Channel" else v) for k, v in msg.fields])
            await ami.wait_for(lambda m, a=msg.get("ActionID"): has(m, ActionID=a))
        await ami.wait_for(_is("VarSet", ";1", Variable="OUTDIAL_SUMMARY"))
        media.close_all()

    async def after_playback() -> None:
        ami = ami_holder[0]
        await ami.wait_for(_is("Newexten", ";2", Application="Wait", AppData="10"))
        ami.send(sent[6].fields)  # CoreShowChannels while the FastAGI is still open
        await ami.wait_for(lambda m: has(m, Event="CoreShowChannelsComplete", ActionID="csc-after"))
        ami.send(sent[7].fields)  # Logoff
        await ami.closed.wait()

    commands = [c.replace(":9092", f":{media_port}") for c, _ in transfer.exchanges]
    agi = ScriptedAgi([*commands, after_playback])
    agi_port = await agi.start()
    steps = [{"silence": 0.5}, HELLO, {"silence": 10}, {"hangup": True}]
    scenario = capture_scenario(fixtures, **{"customer-talk": {"steps": steps}})
    url = f"agi://127.0.0.1:{agi_port}/outdial?campaign=c1&lead=42"
    sim = PbxSim(SimConfig(scenario=scenario, dialplan=default_dialplan(url), speed=SPEED))
    await sim.start()
    ami = await RawAmi.connect(sim.ami_port)
    ami_holder.append(ami)
    try:
        ami.send(sent[0].fields)  # Login
        await ami.wait_for(lambda m: has(m, Event="SuccessfulAuth"))
        ami.send(sent[1].fields)  # Originate
        await queries_then_close_media()
        await asyncio.wait_for(ami.closed.wait(), 30)
    finally:
        await ami.close()
        await sim.stop()
        await agi.stop()
        await media.stop()
    assert_same_streams([m.fields for m in captured if not m.sent], ami.messages)
    assert agi.runs[0].replies[: len(transfer.exchanges)] == [
        (c.replace(":9092", f":{media_port}"), r) for c, r in transfer.exchanges
    ]
    record = sim.calls[0]
    assert record.transfer is not None and record.transfer.target == "agent-queue,s,1"
    assert record.variables["OUTDIAL_SUMMARY"] == "promised to pay friday"
    assert record.variables["OUTDIAL_TRANSFER_REASON"] == "agitated"
