"""The customer's audio as a real Asterisk sends it: partial frames, random framing, wideband
kinds, a trunk that never goes quiet, DTMF between audio frames."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest

from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from tests.pbxsim.simcaptures import CAPTURES
from tests.pbxsim.simpeers import AudioSocketPeer, MediaRun, ScriptedAgi
from tests.pbxsim.test_pbxsim_calls import SPEED, originate

AUDIO, DTMF, UUID = 0x10, 0x03, 0x01


def _write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def _speech(n_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 3000, n_samples)).clip(-32768, 32767).astype(np.int16)


async def _media_of(
    directory: Path, customers: dict, media_line: dict | None = None
) -> tuple[MediaRun, PbxSim]:
    """One call's AudioSocket traffic as pbxsim sends it, until the customer hangs up."""
    media = AudioSocketPeer()
    port = await media.start()
    agi = ScriptedAgi([f"EXEC AudioSocket {uuid.uuid4()},127.0.0.1:{port}"], trailing=0)
    url = f"agi://127.0.0.1:{await agi.start()}/outdial"
    scenario = Scenario.model_validate(
        {"ring_seconds": 0, "customers": customers, "base_dir": directory,
         "media": media_line or {}}
    )  # fmt: skip
    sim = PbxSim(SimConfig(scenario=scenario, dialplan=default_dialplan(url), speed=SPEED))
    await sim.start()
    ami = await originate(sim.ami_port)
    try:
        await sim.wait_calls_done(1, 30)
        await asyncio.wait_for(media.done.wait(), 10)
    finally:
        await ami.close()
        await sim.stop()
        await media.stop()
        await agi.stop()
    return media.runs[0], sim


def _audio(run: MediaRun) -> list[tuple[float, int, bytes]]:
    return [f for f in run.frames if f[1] not in (UUID, DTMF)]


async def test_a_played_file_is_framed_as_the_capture_shows(tmp_path: Path) -> None:
    """Conformance with audiosocket-playback-partial-frames.json: the far end played three
    files with a second of silence between them. Each file arrives as 320-byte frames with a
    partial last frame of exactly the captured size, nothing is sent in the pauses, and the
    end is a plain TCP close."""
    capture = json.loads((CAPTURES / "audiosocket-playback-partial-frames.json").read_text())
    frames = capture["frames"]
    assert frames[0]["kind"] == UUID and frames[-1] == {"t_ms": frames[-1]["t_ms"],
                                                        "event": "tcp_close"}  # fmt: skip
    captured = [f["len"] for f in frames if f.get("kind") == AUDIO]
    files: list[list[int]] = [[]]
    for length in captured:
        files[-1].append(length)
        if length < 320:
            files.append([])
    files.pop()
    steps: list[dict] = [{"silence": 0.5}]
    for index, lengths in enumerate(files):
        name = f"file{index}.wav"
        _write_wav(tmp_path / name, _speech(sum(lengths) // 2, index))
        steps += [{"say": name}, {"silence": 1}]
    steps.append({"hangup": True})
    run, _ = await _media_of(tmp_path, {"player": {"steps": steps}})
    audio = _audio(run)
    assert run.frames[0][1] == UUID
    assert [len(payload) for _, _, payload in audio] == captured
    assert {kind for _, kind, _ in audio} == {AUDIO}
    assert run.closed_by_peer and run.error is None
    # The second of silence after each file is silence on the wire too: no frames at all.
    ends = list(itertools.accumulate(len(f) for f in files))
    for last in ends[:-1]:
        gap = (audio[last][0] - audio[last - 1][0]) * SPEED
        assert gap > 0.9
    # Every sample of each file arrived, in order.
    sent = b"".join(payload for _, _, payload in audio)
    expected = b"".join(
        _speech(sum(lengths) // 2, index).astype("<i2").tobytes()
        for index, lengths in enumerate(files)
    )
    assert sent == expected


async def test_random_framing_sends_any_even_length_and_every_sample(tmp_path: Path) -> None:
    _write_wav(tmp_path / "talk.wav", _speech(12_000, 1))  # 1.5 s
    customers = {"jittery": {"steps": [{"say": "talk.wav"}, {"hangup": True}]}}
    run, sim = await _media_of(tmp_path, customers, {"framing": "random"})
    sizes = [len(payload) for _, _, payload in _audio(run)]
    assert all(size % 2 == 0 and 0 < size <= 3 * 320 for size in sizes)
    assert len(set(sizes)) > 10 and any(size < 320 for size in sizes[:-1])
    assert b"".join(p for _, _, p in _audio(run)) == _speech(12_000, 1).astype("<i2").tobytes()
    assert sim.calls[0].audio_sent_sizes == sizes


@pytest.mark.parametrize(
    ("kind", "code", "rate"), [("slin16", 0x12, 16000), ("slin48", 0x16, 48000)]
)
async def test_wideband_lines_send_their_kind_at_their_rate(
    tmp_path: Path, kind: str, code: int, rate: int
) -> None:
    _write_wav(tmp_path / "talk.wav", _speech(8000, 2))  # 1 s at 8 kHz
    customers = {"wide": {"steps": [{"say": "talk.wav"}, {"hangup": True}]}}
    run, _ = await _media_of(tmp_path, customers, {"kind": kind})
    audio = _audio(run)
    assert {k for _, k, _ in audio} == {code}
    frame = rate // 50 * 2
    assert {len(p) for _, _, p in audio[:-1]} == {frame}
    samples = sum(len(p) for _, _, p in audio) // 2
    assert abs(samples - rate) <= rate // 50


async def test_a_trunk_line_sends_noise_in_silence(tmp_path: Path) -> None:
    """A SIP trunk is never quiet, unlike a Local channel: frames keep coming while the
    customer says nothing, at the line-noise level."""
    customers = {"quiet": {"steps": [{"silence": 2}, {"hangup": True}]}}
    run, _ = await _media_of(tmp_path, customers, {"line": "trunk", "noise_dbfs": -55})
    audio = _audio(run)
    assert len(audio) >= 60  # about 100 frames for 2 s (the call starts after Answer)
    samples = np.frombuffer(b"".join(p for _, _, p in audio), dtype="<i2").astype(np.float64)
    level = 20 * np.log10(np.sqrt(np.mean(samples**2)) / 32768)
    assert -58 < level < -52


async def test_dtmf_pressed_while_talking_arrives_between_audio_frames(tmp_path: Path) -> None:
    _write_wav(tmp_path / "talk.wav", _speech(8000, 3))
    step = {"say": "talk.wav", "dtmf": "5", "dtmf_at": 0.4}
    run, sim = await _media_of(tmp_path, {"presser": {"steps": [step, {"hangup": True}]}})
    kinds = [kind for _, kind, _ in run.frames]
    at = kinds.index(DTMF)
    assert AUDIO in kinds[:at] and AUDIO in kinds[at + 1 :]
    assert sim.calls[0].dtmf_sent == ["5"]
