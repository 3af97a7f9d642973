"""Call behaviour: AudioSocket framing, caller hang-up, barge-in, panoramisk as the client."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import numpy as np
from panoramisk import Manager

from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from tests.pbxsim.simcaptures import CAPTURES, read_agi_capture, read_audiosocket_capture
from tests.pbxsim.simpeers import AudioSocketPeer, RawAmi, ScriptedAgi, has

SPEED = 5.0


async def start_sim(fixtures: Path, agi_port: int, customers: dict, **config: object) -> PbxSim:
    scenario = Scenario.model_validate(
        {"ring_seconds": 0, "customers": customers, "base_dir": fixtures}
    )
    url = f"agi://127.0.0.1:{agi_port}/outdial?campaign=c1&lead=42"
    cfg = {"speed": SPEED, **config}
    sim = PbxSim(SimConfig(scenario=scenario, dialplan=default_dialplan(url), **cfg))
    await sim.start()
    return sim


async def originate(port: int, n: int = 1, context: str = "bot-agi") -> RawAmi:
    ami = await RawAmi.connect(port)
    ami.send([("Action", "Login"), ("Username", "outdial"), ("Secret", "s3cret")])
    await ami.wait_for(lambda m: has(m, Event="FullyBooted"))
    for i in range(n):
        ami.send(
            [("Action", "Originate"), ("ActionID", f"o{i}"), ("Channel", f"Local/{i}@cust")]
            + [("Context", context), ("Exten", "s"), ("Priority", "1"), ("Async", "true")]
            + [("Variable", f"OUTDIAL_CALL_ID=call-{i}"), ("CallerID", '"Outdial" <4000>')]
        )
    return ami


async def test_caller_hangup_matches_the_captures(fixtures: Path) -> None:
    """A silent customer sends DTMF 1 2 # and hangs up: AudioSocket framing and AGI replies."""
    media_capture = read_audiosocket_capture("audiosocket-dtmf-caller-hangup.json")
    agi_capture = read_agi_capture("fastagi-session-caller-hangup.txt")
    media = AudioSocketPeer()
    media_port = await media.start()
    agi = ScriptedAgi([c.replace(":9092", f":{media_port}") for c, _ in agi_capture.exchanges])
    agi_port = await agi.start()
    steps = [{"silence": 1}, {"dtmf": "12#"}, {"silence": 1}, {"hangup": True}]
    sim = await start_sim(fixtures, agi_port, {"dtmf": {"steps": steps}})
    ami = await originate(sim.ami_port)
    try:
        (record,) = await sim.wait_calls_done(1, 20)
    finally:
        await ami.close()
        await sim.stop()
    run = media.runs[0]
    kinds: dict[str, int] = {}
    for _, kind, _ in run.frames:
        kinds[hex(kind)] = kinds.get(hex(kind), 0) + 1
    assert kinds == media_capture["kinds"]
    assert run.closed_by_peer and run.error is None  # a plain TCP close, no 0x00 frame
    first = run.frames[0]
    assert first[1] == 0x01 and len(first[2]) == 16
    uuid_in_command = agi_capture.exchanges[3][0].split()[2].split(",")[0]
    assert uuid.UUID(bytes=first[2]) == uuid.UUID(uuid_in_command)
    digits = [payload.decode() for _, kind, payload in run.frames if kind == 0x03]
    expected = [bytes.fromhex(f[3]).decode() for f in media_capture["first"] if f[1] == "0x3"]
    assert digits == expected == record.dtmf_sent
    assert agi.runs[0].replies == [
        (c.replace(":9092", f":{media_port}"), r) for c, r in agi_capture.exchanges
    ]
    assert record.hangup_side == "customer" and record.audiosocket_results == [-1]
    assert record.agi_status == "HANGUP"


async def test_agi_environment_matches_the_capture(fixtures: Path) -> None:
    captured = read_agi_capture("fastagi-session-answered.txt").environment
    agi = ScriptedAgi(["HANGUP"])
    sim = await start_sim(fixtures, await agi.start(), {"c": {"steps": []}})
    ami = await originate(sim.ami_port)
    try:
        await sim.wait_calls_done(1, 20)
    finally:
        await ami.close()
        await sim.stop()
    env = agi.runs[0].environment
    assert [k for k, _ in env] == [k for k, _ in captured]
    volatile = {"agi_channel", "agi_uniqueid", "agi_threadid", "agi_request", "agi_network_script"}
    assert [(k, v) for k, v in env if k not in volatile] == [
        (k, v) for k, v in captured if k not in volatile
    ]
    assert dict(env)["agi_network_script"] == "outdial?campaign=c1&lead=42"
    assert dict(env)["agi_channel"] == sim.calls[0].channel


def _tone(seconds: float, amplitude: int = 8000) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


async def _bot_speaks(run, writer: asyncio.StreamWriter) -> None:  # noqa: ANN001
    """The bot says a 1 s tone right away, paced at 20 ms per frame (5x speed)."""
    audio = _tone(1.0)
    for i in range(0, len(audio), 320):
        writer.write(b"\x10\x01\x40" + audio[i : i + 320])
        await asyncio.sleep(0.02 / SPEED)


async def test_wait_for_bot_and_barge_in(fixtures: Path) -> None:
    media = AudioSocketPeer(reply=_bot_speaks)
    media_port = await media.start()
    agi = ScriptedAgi([f"EXEC AudioSocket {uuid.uuid4()},127.0.0.1:{media_port}"], trailing=0)
    customers = {
        "polite": {"steps": [{"wait_for_bot": True}, {"say": "customer-yes-stereo.wav"}]},
        "rude": {"steps": [{"barge_in_after": 0.3}, {"say": "customer-yes-stereo.wav"}]},
    }
    scenario_pins = {"0": {"customer": "polite"}, "1": {"customer": "rude"}}
    sim = PbxSim(
        SimConfig(
            scenario=Scenario.model_validate(
                {"ring_seconds": 0, "customers": customers, "numbers": scenario_pins,
                 "base_dir": fixtures}
            ),
            dialplan=default_dialplan(f"agi://127.0.0.1:{await agi.start()}/x"),
            speed=SPEED,
        )
    )  # fmt: skip
    await sim.start()
    ami = await originate(sim.ami_port, n=2)
    try:
        records = await asyncio.wait_for(_both_spoke(sim), 20)
    finally:
        await ami.close()
        await sim.stop()
    polite, rude = sorted(records, key=lambda r: r.customer)
    for r in (polite, rude):
        assert r.bot_frames and r.audio_sent_times
    bot_end = polite.bot_frames[-1].t
    assert polite.audio_sent_times[0] > bot_end  # waited for the bot to finish
    assert rude.bot_frames[0].t < rude.audio_sent_times[0] < rude.bot_frames[-1].t  # barged in
    # Stereo 22.05 kHz fixture, resampled to 8 kHz mono: 1.7 s = 85 frames of 320 bytes, the
    # last one partial as Asterisk frames a playback.
    sizes = polite.audio_sent_sizes
    assert len(polite.audio_sent) == sum(sizes) and len(sizes) == len(polite.audio_sent_times)
    assert set(sizes[:-1]) == {320} and 0 < sizes[-1] < 320
    assert 80 <= len(polite.audio_sent_times) <= 86


async def _bot_speaks_pauses_speaks(run, writer: asyncio.StreamWriter) -> None:  # noqa: ANN001
    """Two sentences with a pause between (frames of zeros), as a prompt of two sentences
    sounds: 0.5 s tone, 1 s pause, 1 s tone, in real time."""
    audio = _tone(0.5) + bytes(16000) + _tone(1.0)
    for i in range(0, len(audio), 320):
        writer.write(b"\x10\x01\x40" + audio[i : i + 320])
        await asyncio.sleep(0.02)


async def test_a_customer_who_talks_over_the_bot_waits_out_its_pause(fixtures: Path) -> None:
    """`barge_in_after` that falls in a pause between two sentences: the customer starts when
    the bot's voice comes back, so they talk over it (not into the pause)."""
    media = AudioSocketPeer(reply=_bot_speaks_pauses_speaks)
    media_port = await media.start()
    agi = ScriptedAgi([f"EXEC AudioSocket {uuid.uuid4()},127.0.0.1:{media_port}"], trailing=0)
    # 0.9 s after the bot started: inside the pause (0.5-1.5 s); real time (speed 1), so the
    # pause is long enough for the customer's start-up on a loaded box.
    customers = {"rude": {"steps": [{"barge_in_after": 0.9}, {"say": "customer-yes-stereo.wav"}]}}
    sim = PbxSim(
        SimConfig(
            scenario=Scenario.model_validate(
                {"ring_seconds": 0, "customers": customers, "numbers": {"0": {"customer": "rude"}},
                 "base_dir": fixtures}
            ),
            dialplan=default_dialplan(f"agi://127.0.0.1:{await agi.start()}/x"),
        )
    )  # fmt: skip
    await sim.start()
    ami = await originate(sim.ami_port, n=1)
    try:
        (rude,) = await asyncio.wait_for(_spoke(sim, 1), 20)
    finally:
        await ami.close()
        await sim.stop()
    voiced = [f.t for f in rude.bot_frames if f.payload.strip(b"\x00")]
    # The second sentence starts after the only long gap between voiced frames.
    resumes = next(i for i in range(1, len(voiced)) if voiced[i] - voiced[i - 1] > 0.5)
    second_sentence = voiced[resumes:]
    assert second_sentence[0] <= rude.audio_sent_times[0] < second_sentence[-1]


async def test_wait_for_bot_waits_through_amd_for_the_media(fixtures: Path) -> None:
    """AMD() runs before the AudioSocket connects: a customer waiting for the bot keeps
    waiting through it, instead of talking into a channel nobody listens to yet."""
    media = AudioSocketPeer(reply=_bot_speaks)
    media_port = await media.start()
    agi = ScriptedAgi([f"EXEC AudioSocket {uuid.uuid4()},127.0.0.1:{media_port}"], trailing=0)
    customers = {"polite": {"steps": [{"wait_for_bot": True}, {"say": "customer-yes-stereo.wav"}]}}
    sim = await start_sim(fixtures, await agi.start(), customers)
    ami = await originate(sim.ami_port, context="bot-amd")
    try:
        records = await asyncio.wait_for(_spoke(sim, 1), 30)
    finally:
        await ami.close()
        await sim.stop()
    (polite,) = records
    assert polite.amd_seconds is not None and polite.media_connected_at
    assert polite.audio_sent_times[0] > polite.bot_frames[-1].t  # heard the bot out first
    assert 80 <= len(polite.audio_sent_times) <= 86  # the whole answer reached the bot


async def test_a_pbx_stopped_while_a_customer_waits_for_the_bot_leaves_no_waiter(
    fixtures: Path,
) -> None:
    """The chaos run's PBX restart cancels every call: a customer waiting for a bot that never
    speaks left its waits pending ("Task was destroyed but it is pending!", 9 in one run)."""
    media = AudioSocketPeer()  # connects, never speaks
    media_port = await media.start()
    agi = ScriptedAgi([f"EXEC AudioSocket {uuid.uuid4()},127.0.0.1:{media_port}"], trailing=0)
    customers = {"waiting": {"steps": [{"wait_for_bot": True}, {"say": "customer-yes-stereo.wav"}]}}
    sim = await start_sim(fixtures, await agi.start(), customers)
    ami = await originate(sim.ami_port)
    try:
        async with asyncio.timeout(30):
            while not media.runs:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        await ami.close()
        await sim.stop()
    waits = [t for t in asyncio.all_tasks() if "Event.wait" in repr(t.get_coro())]
    assert not [t for t in waits if not t.done()]


async def _spoke(sim: PbxSim, calls: int) -> list:
    while len(sim.calls) < calls or not all(len(r.audio_sent_times) >= 80 for r in sim.calls):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return list(sim.calls)


async def _both_spoke(sim: PbxSim) -> list:
    """Both customers said their whole clip: each one's last frame, which is partial, is out
    (waiting for a count of frames instead raced the last ones on a loaded box)."""
    while len(sim.calls) < 2 or not all(_said_all(r.audio_sent_sizes) for r in sim.calls):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return list(sim.calls)


def _said_all(sizes: list[int]) -> bool:
    return len(sizes) >= 80 and sizes[-1] < 320


async def test_panoramisk_manager_drives_pbxsim(fixtures: Path) -> None:
    agi = ScriptedAgi(["GET VARIABLE OUTDIAL_CALL_ID", "HANGUP"])
    sim = await start_sim(fixtures, await agi.start(), {"c": {"steps": []}})
    manager = Manager(host="127.0.0.1", port=sim.ami_port, username="outdial", secret="s3cret",
                      ping_delay=60)  # fmt: skip
    hangups: list[str] = []
    manager.register_event("Hangup", lambda _m, msg: hangups.append(msg.Channel))
    try:
        await manager.connect()
        pong = await manager.send_action({"Action": "Ping"})
        assert pong.Ping == "Pong"
        reply = await manager.send_action(
            {"Action": "Originate", "Channel": "Local/555@cust", "Context": "bot-agi",
             "Exten": "s", "Priority": "1", "Async": "true", "Variable": "OUTDIAL_CALL_ID=p-1"}
        )  # fmt: skip
        # panoramisk collects an async Originate's reply and its OriginateResponse event.
        assert [m.get("Response") for m in reply] == ["Success", "Success"]
        assert reply[1].Event == "OriginateResponse" and reply[1].Reason == "4"
        (record,) = await sim.wait_calls_done(1, 20)
        await asyncio.sleep(0.1)
    finally:
        manager.close()
        await sim.stop()
    assert agi.runs[0].replies[0] == ("GET VARIABLE OUTDIAL_CALL_ID", "200 result=1 (p-1)")
    assert sorted(hangups) == sorted([record.channel, record.channel[:-1] + "2"])


async def test_login_failure_matches_the_capture(fixtures: Path) -> None:
    lines = (CAPTURES / "ami-login-failure.txt").read_text().splitlines()
    received = [line[4:].split("\\r\\n") for line in lines if line.startswith("<<< ")]
    banner = received[0][0]
    expected = [[tuple(f.split(": ", 1)) for f in received[1] if f]]
    assert "closed" in received[2][0]  # Asterisk closed the connection; the Ping got no reply
    sim = await start_sim(fixtures, 1, {"c": {}})
    try:
        ami = await RawAmi.connect(sim.ami_port)
        ami.send([("Action", "Login"), ("Username", "nobody"), ("Secret", "wrong"),
                  ("ActionID", "a1")])  # fmt: skip
        ami.send([("Action", "Ping"), ("ActionID", "p1")])
        await asyncio.wait_for(ami.closed.wait(), 5)
    finally:
        await sim.stop()
    assert ami.banner == banner
    assert ami.messages == expected
