"""Bad input around the EAGI bridge: no daemon, bad arguments, malformed AGI replies, fd 3
closing early, unknown calls and broken hellos. pbxsim forks the real `outdial-eagi`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from agi import eagi_protocol as proto
from pbxsim import CallRecord, FaultConfig, SimConfig
from tests.agi.conftest import AUDIO, LiveStack
from tests.eagi.conftest import bridges_running, eagi_dialplan, one_customer, run_calls

SILENT = [{"silence": 8}]
ANSWERS = [{"wait_for_bot": True}, {"say": str(AUDIO / "ko_yes_1.wav")}, {"silence": 8}]
FIELDS = {"customer_name": "Alex", "order_number": "A-1", "item": "a kettle", "address": "x"}


def _config(
    port: int,
    sounds: Path,
    steps: list[dict[str, object]],
    *,
    args: tuple[str, ...] = ("--fallback=outdial-fallback",),
    faults: FaultConfig | None = None,
) -> SimConfig:
    return SimConfig(
        scenario=one_customer(steps),
        dialplan=eagi_dialplan(port, sounds, *args),
        bot_silence_gap=1.0,
        faults=faults or FaultConfig(),
    )


def _verbose(record: CallRecord) -> list[str]:
    return [e.command for e in record.agi if e.command.startswith("VERBOSE")]


def _clean(record: CallRecord, sounds: Path) -> None:
    """The bridge was reaped and left no prompt file behind."""
    assert record.eagi_status is not None
    assert bridges_running(sounds) == []
    assert not sounds.exists() or list(sounds.iterdir()) == []


@pytest.mark.parametrize("fallback", [True, False])
async def test_daemon_down_says_why_and_falls_back(
    closed_port: int, tmp_path: Path, fallback: bool
) -> None:
    sounds = tmp_path / "sounds"
    args = ("--fallback=outdial-fallback",) if fallback else ()
    config = _config(closed_port, sounds, SILENT, args=args)
    record = (await run_calls(config, [("5551000", "c-down")]))["c-down"]
    assert _verbose(record) == [
        f'VERBOSE "outdial-eagi: outdial daemon unreachable at 127.0.0.1:{closed_port}: '
        'Connection refused" 1'
    ]
    assert record.variables["OUTDIAL_RESULT"] == "unreachable"
    assert (record.eagi_status, record.agi_status, record.eagi_stderr) == (0, "SUCCESS", "")
    if fallback:
        assert record.transfer is not None
        assert (record.transfer.application, record.transfer.target) == (
            "Goto",
            "outdial-fallback,s,1",
        )
        assert record.variables["FELL_BACK"] == "yes"
    else:
        assert "FELL_BACK" not in record.variables  # went on to the next priority
    _clean(record, sounds)


async def test_bad_arguments_are_reported(closed_port: int, tmp_path: Path) -> None:
    config = _config(closed_port, tmp_path / "sounds", SILENT, args=("--server=nowhere",))
    record = (await run_calls(config, [("5551000", "c-args")]))["c-args"]
    (verbose,) = _verbose(record)
    assert "outdial-eagi: bad arguments" in verbose and "HOST:PORT" in verbose
    assert (record.eagi_status, record.agi_status) == (1, "FAILURE")


async def test_malformed_first_reply_ends_the_bridge(closed_port: int, tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    faults = FaultConfig(eagi_malformed_reply_after=0)
    config = _config(closed_port, sounds, SILENT, faults=faults)
    record = (await run_calls(config, [("5551000", "c-garbage")]))["c-garbage"]
    assert [e.reply for e in record.agi] == ["this is not an AGI reply"]
    assert (record.eagi_status, record.agi_status) == (1, "FAILURE")
    assert "outdial-eagi: AGI failed: unparsable AGI reply" in record.eagi_stderr
    _clean(record, sounds)


# --- with a live daemon ---------------------------------------------------------------------


async def _call_row(stack: LiveStack, call_id: str) -> dict[str, object]:
    row = await stack.pool.fetchrow("SELECT * FROM calls WHERE call_id = $1", call_id)
    assert row is not None
    return dict(row)


@pytest.mark.slow
async def test_unknown_call_is_refused_and_counted(eagi_stack: LiveStack, tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    config = _config(eagi_stack.service.audiosocket_port, sounds, SILENT)
    record = (await run_calls(config, [("5551000", "nobody")]))["nobody"]
    assert _verbose(record) == ['VERBOSE "outdial: unknown call nobody" 1']
    assert record.variables["OUTDIAL_RESULT"] == "refused"
    assert "FELL_BACK" not in record.variables  # refused on purpose, as on the FastAGI path
    assert eagi_stack.service.audiosocket.rejected == {"unknown_call": 1}
    _clean(record, sounds)


@pytest.mark.slow
async def test_malformed_reply_mid_call(eagi_stack: LiveStack, tmp_path: Path) -> None:
    """Garbage in answer to the first STREAM FILE: the bridge quits, the prompt file goes,
    and the daemon hears a hang-up and records the call."""
    await eagi_stack.add_call("c-mid", "+12025550199", FIELDS)
    sounds = tmp_path / "sounds"
    faults = FaultConfig(eagi_malformed_reply_after=2)
    config = _config(eagi_stack.service.audiosocket_port, sounds, SILENT, faults=faults)
    record = (await run_calls(config, [("5551000", "c-mid")]))["c-mid"]
    assert record.agi[-1].command.startswith("STREAM FILE ")
    assert (record.eagi_status, record.agi_status) == (1, "FAILURE")
    assert "unparsable AGI reply" in record.eagi_stderr
    _clean(record, sounds)
    await _wait_idle(eagi_stack)
    row = await _call_row(eagi_stack, "c-mid")
    assert row["ended_at"] is not None and row["hangup_side"] == "customer"


@pytest.mark.slow
async def test_audio_fd_closing_early_falls_back(eagi_stack: LiveStack, tmp_path: Path) -> None:
    await eagi_stack.add_call("c-fd3", "+12025550198", FIELDS)
    sounds = tmp_path / "sounds"
    faults = FaultConfig(eagi_close_audio_after=10)
    config = _config(eagi_stack.service.audiosocket_port, sounds, ANSWERS, faults=faults)
    record = (await run_calls(config, [("5551000", "c-fd3")]))["c-fd3"]
    assert _verbose(record) == [
        'VERBOSE "outdial-eagi: the caller\'s audio (fd 3) closed during the call" 1'
    ]
    assert record.variables["OUTDIAL_RESULT"] == "failed"
    assert record.variables["FELL_BACK"] == "yes"
    assert (record.eagi_status, record.eagi_stderr) == (0, "")
    _clean(record, sounds)
    await _wait_idle(eagi_stack)
    row = await _call_row(eagi_stack, "c-fd3")
    assert row["ended_at"] is not None and row["hangup_side"] == "customer"


@pytest.mark.slow
async def test_broken_hellos_are_refused(eagi_stack: LiveStack) -> None:
    port = eagi_stack.service.audiosocket_port
    # Not JSON at all.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(proto.encode_frame(proto.HELLO, b"{not json"))
    assert await reader.read() == b""
    writer.close()
    # A granted UUID, then a different one: the connection is refused, the call fails.
    await eagi_stack.add_call("c-swap", "+12025550197", FIELDS)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(proto.encode_frame(proto.HELLO, proto.Hello("c-swap").to_payload()))
    header = await reader.readexactly(3)
    assert header[0] == proto.GRANT
    granted = await reader.readexactly(int.from_bytes(header[1:], "big"))
    assert len(granted) == 16
    writer.write(proto.encode_frame(proto.UUID, uuid.uuid4().bytes))
    assert await reader.read() == b""
    writer.close()
    assert eagi_stack.service.audiosocket.rejected == {"bad_hello": 1, "unknown_uuid": 1}
    # The granted call never got its media: settled `error` (the lead is retried, as on the
    # FastAGI path since issue 25), its slot given back.
    await _wait_idle(eagi_stack)
    assert (await _call_row(eagi_stack, "c-swap"))["disposition"] == "error"


async def _wait_idle(stack: LiveStack) -> None:
    """The daemon side finishes the call after the bridge has gone."""
    await stack.service.eagi.drain(10)
    assert (stack.service.active, stack.service.eagi.live) == (0, 0)
