"""pbxsim's MixMonitor (a WAV of both directions, placed by arrival time) and the part of
Asterisk's expression language its dialplans use (`ExecIf($[...]?App(...))`)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from pbxsim.dialplan import (
    RECORD_STEP,
    DialplanStep,
    ExpressionError,
    default_dialplan,
    evaluate,
    split_condition,
    substitute,
)
from pbxsim.mixmonitor import MixMonitor, MixMonitorError, MixOptions, full_path, split_args


def _frame(value: int, samples: int = 160) -> bytes:
    return np.full(samples, value, dtype="<i2").tobytes()


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as recording:
        assert (recording.getframerate(), recording.getnchannels()) == (8000, 1)
        return np.frombuffer(recording.readframes(recording.getnframes()), dtype="<i2")


def test_both_directions_are_mixed_where_they_arrived(tmp_path: Path) -> None:
    monitor = MixMonitor(tmp_path / "c.wav", MixOptions.parse("r(in.wav)t(out.wav)"), tmp_path, 0)
    assert (tmp_path / "c.wav").exists()  # there from the start, as Asterisk's file is
    monitor.hear("read", _frame(1000), 0.0)  # the customer, 0-20 ms
    monitor.hear("write", _frame(500), 0.01)  # the bot, 10-30 ms
    monitor.hear("write", _frame(32000, 80), 0.1)  # saturates nothing alone
    monitor.hear("read", _frame(32000, 80), 0.1)  # ...but mixed it would: clipped
    written = monitor.stop()
    assert written == [tmp_path / "c.wav", tmp_path / "in.wav", tmp_path / "out.wav"]
    mixed = _read(tmp_path / "c.wav")
    assert mixed.size == 800 + 80
    assert (mixed[:80] == 1000).all() and (mixed[80:160] == 1500).all()
    assert (mixed[160:240] == 500).all() and (mixed[240:800] == 0).all()  # silence filled
    assert (mixed[800:] == 32767).all()
    assert (_read(tmp_path / "in.wav")[:160] == 1000).all()
    assert (_read(tmp_path / "out.wav")[80:240] == 500).all()
    assert monitor.stop() == []  # once only
    monitor.hear("read", _frame(1), 1.0)  # after the stop: nothing
    assert _read(tmp_path / "c.wav").size == 880


def test_options_volume_skip_and_time_scale(tmp_path: Path) -> None:
    options = MixOptions.parse("V(1)v(-1)s(1)i(REC_ID)")
    assert (options.write_volume, options.read_volume, options.skip_s) == (1, -1, 1.0)
    assert options.id_variable == "REC_ID"
    # speed 10: 0.15 wall seconds are 1.5 simulated seconds of audio.
    monitor = MixMonitor(tmp_path / "v.wav", options, tmp_path, 0, speed=10)
    monitor.hear("write", _frame(100), 0.05)  # 0.5 s: skipped
    monitor.hear("write", _frame(100), 0.15)
    monitor.hear("read", _frame(100), 0.15)
    monitor.stop()
    audio = _read(tmp_path / "v.wav")
    assert audio.size == 4000 + 160 and (audio[4000:] == 250).all()
    assert MixOptions.parse("s(0.5)").skip_s == 0.0  # under a second: ignored, as Asterisk does


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("c.mp3", "", "pbxsim writes only"),
        ("c.wav", "D", "the D option needs a .raw file"),
        ("c.wav", "r(in.gsm)", "pbxsim writes only"),
    ],
)
def test_recordings_pbxsim_cannot_write_are_refused(
    tmp_path: Path, name: str, options: str, message: str
) -> None:
    with pytest.raises(MixMonitorError, match=message):
        MixMonitor(tmp_path / name, MixOptions.parse(options), tmp_path, 0)


def test_bad_volumes_are_refused() -> None:
    with pytest.raises(MixMonitorError, match="a volume from -4 to 4"):
        MixOptions.parse("V(9)")
    with pytest.raises(MixMonitorError, match="a volume from -4 to 4"):
        MixOptions.parse("W(loud)")


def test_names_and_arguments_as_asterisk_reads_them(tmp_path: Path) -> None:
    assert full_path("outdial/x.wav", tmp_path) == tmp_path / "outdial" / "x.wav"
    assert full_path("/abs/x.wav", tmp_path) == Path("/abs/x.wav")
    assert split_args("a.wav,r(x,y)b,cmd") == ["a.wav", "r(x,y)b", "cmd"]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ('"1" = "1"', "1"),
        ('"" = "1"', "0"),
        ('"MACHINE" = "MACHINE" & "x" != ""', "1"),
        ('"MACHINE" = "MACHINE" & "" != ""', "0"),
        ("2 < 10", "1"),  # numbers compare as numbers
        ('"2" < "10"', "1"),
        ("abc < abd", "1"),
        ("!(1 = 2) | 0", "1"),
        ("", ""),
    ],
)
def test_expressions(expression: str, value: str) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize("expression", ['"1" = ', "(1 = 1", "1 = 1)", "= 1"])
def test_malformed_expressions_are_errors_and_substitute_to_nothing(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression)
    assert substitute(f"x$[{expression}]y", {}) == "xy"


def test_the_recording_step_runs_only_when_the_dialer_asks() -> None:
    step = DialplanStep.model_validate(RECORD_STEP)
    assert step.app == "ExecIf"
    asked = substitute(step.data, {"OUTDIAL_RECORD": "1", "OUTDIAL_CALL_ID": "c-9"})
    condition, if_true, if_false = split_condition(asked)
    assert condition == "1" and if_false is None
    assert if_true == DialplanStep(app="MixMonitor", data="outdial/c-9.wav")
    assert split_condition(substitute(step.data, {}))[0] == "0"
    with pytest.raises(ValueError, match="usage: ExecIf"):
        split_condition("1")
    recording = [s.app for s in default_dialplan(record=True)["bot-amd"]]
    assert recording.index("ExecIf") == recording.index("AGI") - 1
    assert "ExecIf" not in [s.app for s in default_dialplan()["bot-amd"]]
