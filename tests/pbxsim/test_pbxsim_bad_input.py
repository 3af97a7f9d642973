"""Bad input is rejected with a logged error and other calls keep working; fault switches."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from pbxsim import FaultConfig, Scenario, ScenarioError, load_scenario
from pbxsim.ami_codec import AmiParseError, AmiReader
from pbxsim.audio import prepare
from pbxsim.audiosocket import AudioSocketProtocolError, FrameReader
from tests.pbxsim.simpeers import AudioSocketPeer, RawAmi, ScriptedAgi, has
from tests.pbxsim.test_pbxsim_calls import originate, start_sim

TALK = {"steps": [{"say": "customer-hello.wav"}, {"hangup": True}]}


def test_ami_reader_rejects_lines_without_colon_and_oversized_messages() -> None:
    out = AmiReader().feed(b"Action: Ping\r\nno colon here\r\n\r\nAction: Ping\r\n\r\n")
    assert isinstance(out[0], AmiParseError) and out[1] == [("Action", "Ping")]
    assert isinstance(AmiReader().feed(b"A: " + b"x" * 70000)[0], AmiParseError)
    assert isinstance(AmiReader().feed(b"Action: \xff\xfe\r\n\r\n")[0], AmiParseError)


def test_frame_reader_rejects_unknown_kind_and_oversized_audio() -> None:
    with pytest.raises(AudioSocketProtocolError, match="unknown frame kind"):
        FrameReader().feed(b"\x42\x00\x01x")
    with pytest.raises(AudioSocketProtocolError, match="oversized"):
        FrameReader().feed(b"\x10\xff\xff")
    assert FrameReader().feed(b"\x10\x00\x02ab\x00\x00\x00") == [(0x10, b"ab"), (0x00, b"")]


async def test_bad_ami_from_a_client_gets_an_error_and_the_session_goes_on(
    fixtures: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await start_sim(fixtures, 1, {"c": {}})
    try:
        ami = await originate(sim.ami_port, n=0)
        ami.writer.write(b"Action: Ping\r\ngarbage line\r\n\r\n")
        ami.send([("ActionID", "x1")])  # no Action at all
        ami.send([("Action", "Frobnicate"), ("ActionID", "x2")])
        ami.send([("Action", "Ping"), ("ActionID", "p1")])
        pong = await ami.wait_for(lambda m: has(m, ActionID="p1"))
        errors = [m for m in ami.messages if has(m, Response="Error")]
        await ami.close()
    finally:
        await sim.stop()
    assert dict(pong)["Ping"] == "Pong"
    assert [dict(m)["Message"].split(":")[0] for m in errors] == [
        "Malformed", "Missing action in request", "Invalid/unknown command"
    ]  # fmt: skip
    assert "bad AMI message" in caplog.text


async def test_bad_agi_lines_get_510_and_the_session_goes_on(fixtures: Path) -> None:
    agi = ScriptedAgi(
        ["FROBNICATE now", 'SET VARIABLE X "unterminated', "GET VARIABLE", "SET VARIABLE A b",
         "GET VARIABLE A", "HANGUP", "ANSWER", "NOOP"]
    )  # fmt: skip
    agi_port = await agi.start()
    sim = await start_sim(fixtures, agi_port, {"c": {}})
    ami = await originate(sim.ami_port)
    try:
        (record,) = await sim.wait_calls_done(1, 20)
    finally:
        await ami.close()
        await sim.stop()
    replies = [r for _, r in agi.runs[0].replies]
    assert replies[:2] == ["510 Invalid or unknown command"] * 2
    assert replies[2].startswith("520-Invalid command syntax")
    lines = agi.runs[0].lines
    assert lines[lines.index("200 result=1 (b)") + 1 :] == [
        "200 result=1",
        "HANGUP",
        "511 Command Not Permitted on a dead channel or intercept routine",
    ]
    assert record.variables["A"] == "b" and any("bad line" in e for e in record.errors)


async def _garbage_then_hold(run, writer: asyncio.StreamWriter) -> None:  # noqa: ANN001
    writer.write(b"\x42\x00\x03abc")


async def test_garbage_on_audiosocket_ends_that_call_only(fixtures: Path) -> None:
    bad_media, good_media = AudioSocketPeer(reply=_garbage_then_hold), AudioSocketPeer()
    bad_port, good_port = await bad_media.start(), await good_media.start()
    agi = ScriptedAgi([])
    ports = iter([bad_port, good_port])
    agi.script_for = lambda: [f"EXEC AudioSocket {uuid.uuid4()},127.0.0.1:{next(ports)}", "HANGUP"]
    agi_port = await agi.start()
    sim = await start_sim(fixtures, agi_port, {"c": TALK})
    ami = await originate(sim.ami_port, n=2)
    try:
        records = await sim.wait_calls_done(2, 20)
    finally:
        await ami.close()
        await sim.stop()
    by_result = sorted(records, key=lambda r: r.audiosocket_results)
    assert by_result[0].audiosocket_results == [-1]
    assert any("unknown frame kind 0x42" in e for e in by_result[0].errors)
    assert by_result[1].audiosocket_results == [-1]  # the customer hung up the good one
    assert by_result[1].hangup_side == "customer" and len(by_result[1].audio_sent_times) > 100


@pytest.mark.parametrize(
    ("switch", "expected_error"),
    [
        ("audiosocket_reset_mid_frame_after", {"partial frame", "reset"}),
        ("audiosocket_oversized_length_after", {"oversized"}),
        ("audiosocket_unknown_kind_after", {"unknown kind"}),
    ],
)
async def test_audiosocket_fault_switches(
    fixtures: Path, switch: str, expected_error: set[str]
) -> None:
    media = AudioSocketPeer()
    media.strict_kinds = True
    media_port = await media.start()
    agi = ScriptedAgi([f"EXEC AudioSocket {uuid.uuid4()},127.0.0.1:{media_port}", "HANGUP"])
    faults = FaultConfig(**{switch: 10})
    sim = await start_sim(fixtures, await agi.start(), {"c": TALK}, faults=faults)
    ami = await originate(sim.ami_port)
    try:
        await asyncio.wait_for(media.done.wait(), 20)
    finally:
        await ami.close()
        await sim.stop()
    run = media.runs[0]
    assert sum(k == 0x10 for _, k, _ in run.frames) == 10
    assert run.error in expected_error


async def test_ami_fault_switches(fixtures: Path) -> None:
    faults = FaultConfig(ami_malformed_after_events=1, ami_drop_after_events=2)
    sim = await start_sim(fixtures, 1, {"c": {}}, faults=faults)
    try:
        ami = await RawAmi.connect(sim.ami_port)
        ami.send([("Action", "Login"), ("Username", "outdial"), ("Secret", "s3cret")])
        await asyncio.wait_for(ami.closed.wait(), 5)
    finally:
        await sim.stop()
    assert ("this line has no colon", "") in [f for m in ami.messages for f in m]
    events = [dict(m)["Event"] for m in ami.messages if "Event" in dict(m)]
    assert events == ["Newstate", "FullyBooted", "SuccessfulAuth"]  # then the drop


def test_scenario_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "seed: 1\ncustomers:\n  alice:\n    steps:\n      - say_text: hi\n      - silence: -2\n"
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}:6: customers.alice.steps.1" in str(err.value)
    path.write_text("outcomes: {answer: 0}\n")
    with pytest.raises(ScenarioError, match="bad.yaml:1: outcomes: .*positive"):
        load_scenario(path)
    path.write_text("numbers: {'555': {customer: nobody}}\n")
    with pytest.raises(ScenarioError, match="unknown customer 'nobody'"):
        load_scenario(path)
    path.write_text("customers: [1, 2\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(path)


async def test_missing_wav_is_reported(tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {"customers": {"a": {"steps": [{"say": "nope.wav"}]}}, "base_dir": tmp_path}
    )
    with pytest.raises(ScenarioError, match="nope.wav"):
        await prepare(scenario)


async def test_audio_is_resampled_rendered_with_piper_and_agitated(fixtures: Path) -> None:
    agitation = {"pitch_semitones": 3, "gain_db": 6, "tempo": 1.25}
    scenario = Scenario.model_validate(
        {
            "customers": {
                "a": {"steps": [{"say": "customer-yes-stereo.wav"}, {"say_text": "Yes please."}]},
                "b": {"agitation": agitation, "steps": [{"say": "customer-yes-stereo.wav"}]},
            },
            "base_dir": fixtures,
        }
    )
    bank = await prepare(scenario)
    calm = np.frombuffer(bank.get("wav:customer-yes-stereo.wav", None), "<i2")
    assert abs(len(calm) / 8000 - 37383 / 22050) < 0.01  # same duration at 8 kHz
    spoken = np.frombuffer(bank.get("text:Yes please.", None), "<i2")
    assert 0.4 < len(spoken) / 8000 < 3 and np.abs(spoken).max() > 1000
    from pbxsim.scenario import Agitation  # noqa: PLC0415

    agitated = np.frombuffer(bank.get("wav:customer-yes-stereo.wav", Agitation(**agitation)), "<i2")
    assert len(agitated) < len(calm) * 0.9  # faster
    assert np.sqrt(np.mean(agitated.astype(float) ** 2)) > np.sqrt(np.mean(calm.astype(float) ** 2))


def test_seed_makes_outcomes_deterministic() -> None:
    from pbxsim.scenario import CustomerPicker  # noqa: PLC0415

    def outcomes(seed: int) -> list[str]:
        weights = {"answer": 1, "busy": 1, "no_answer": 1, "congestion": 1}
        picker = CustomerPicker(Scenario.model_validate({"seed": seed, "outcomes": weights}))
        return [picker.pick(f"{i}@x")[2] for i in range(40)]

    assert outcomes(3) == outcomes(3) != outcomes(4)
    assert set(outcomes(3)) == {"answer", "busy", "no_answer", "congestion"}


def test_ring_spread_draws_each_call_its_own_ring_time() -> None:
    from pbxsim.scenario import CustomerPicker  # noqa: PLC0415

    def rings(seed: int, spread: float) -> list[float]:
        scenario = {"seed": seed, "ring_seconds": 2.0, "ring_spread": spread}
        picker = CustomerPicker(Scenario.model_validate(scenario))
        return [picker.ring_time() for _ in range(50)]

    spread = rings(5, 8.0)
    assert all(2.0 <= ring <= 10.0 for ring in spread)
    assert max(spread) - min(spread) > 4.0 and spread == rings(5, 8.0)
    assert set(rings(5, 0.0)) == {2.0}


def test_cli_help_and_bad_scenario(tmp_path: Path) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "pbxsim", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--ami" in help_text and "--scenario" in help_text
    bad = tmp_path / "s.yaml"
    bad.write_text("seed: [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pbxsim", "--ami", "127.0.0.1:0", "--scenario", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "not valid YAML" in proc.stderr


async def test_cli_serves_ami(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbxsim", "--ami", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        port = int(line.rsplit(":", 1)[1])
        ami = await RawAmi.connect(port)
        assert ami.banner == "Asterisk Call Manager/13.0.0"
        await ami.close()
    finally:
        proc.terminate()
        assert await proc.wait() == 0
