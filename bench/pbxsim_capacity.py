"""How many concurrent simulated calls pbxsim streams in real time.

Every customer talks continuously; a sink AudioSocket server (in this process's child) reads the
audio and counts frames that arrive more than 40 ms after their 20 ms slot.

    .venv/bin/python bench/pbxsim_capacity.py --calls 200 --seconds 20 [--find-max] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import struct
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbxsim import PbxSim, Scenario, SimConfig  # noqa: E402
from pbxsim.dialplan import default_dialplan  # noqa: E402

LATE_SECONDS = 0.040
FRAME = 0.020


# -- the sink: its own process, so its work does not count against pbxsim's loop --------------
def sink_main(port_q: mp.Queue, result_q: mp.Queue, seconds: float) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_sink(port_q, result_q, seconds))


async def _sink(port_q: mp.Queue, result_q: mp.Queue, seconds: float) -> None:
    stats = {"frames": 0, "late": 0, "calls": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats["calls"] += 1
        first: float | None = None
        n = 0
        try:
            while True:
                kind, length = struct.unpack("!BH", await reader.readexactly(3))
                await reader.readexactly(length)
                if kind != 0x10:
                    continue
                now = time.monotonic()
                if first is None:
                    first = now
                elif now - (first + n * FRAME) > LATE_SECONDS:
                    stats["late"] += 1
                n += 1
                stats["frames"] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def agi(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        call_uuid = "00000000-0000-0000-0000-000000000001"
        writer.write(f"EXEC AudioSocket {call_uuid},127.0.0.1:{media_port}\n".encode())
        await reader.readline()
        writer.close()

    media = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    media_port = media.sockets[0].getsockname()[1]
    agi_server = await asyncio.start_server(agi, "127.0.0.1", 0, backlog=1024)
    port_q.put(agi_server.sockets[0].getsockname()[1])
    await asyncio.sleep(seconds + 5)
    result_q.put(stats)


# -- pbxsim side ------------------------------------------------------------------------------
def _talk_wav(directory: Path, seconds: float) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
    path = directory / "talk.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return path


async def run_once(calls: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    port_q: mp.Queue = ctx.Queue()
    result_q: mp.Queue = ctx.Queue()
    sink = ctx.Process(target=sink_main, args=(port_q, result_q, seconds))
    sink.start()
    agi_port = await asyncio.to_thread(port_q.get)
    with tempfile.TemporaryDirectory() as tmp:
        wav = _talk_wav(Path(tmp), seconds)
        scenario = Scenario.model_validate(
            {
                "ring_seconds": 0,
                "customers": {
                    "talker": {"answer_delay": 0, "steps": [{"say": wav.name}, {"hangup": True}]}
                },
                "base_dir": Path(tmp),
            }
        )
        dialplan = default_dialplan(f"agi://127.0.0.1:{agi_port}/bench")
        sim = PbxSim(SimConfig(scenario=scenario, dialplan=dialplan, record_audio=False))
        await sim.start()
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
        await reader.readline()
        msg = "Action: Login\r\nUsername: outdial\r\nSecret: s3cret\r\n\r\n"
        for i in range(calls):
            msg += (
                f"Action: Originate\r\nActionID: b{i}\r\nChannel: Local/{i}@bench\r\n"
                "Context: bot-agi\r\nExten: s\r\nPriority: 1\r\nAsync: true\r\n\r\n"
            )
        writer.write(msg.encode())
        await sim.wait_calls_done(calls, seconds * 3 + 30)
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        writer.close()
        await sim.stop()
    stats = await asyncio.to_thread(result_q.get)
    sink.join()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    frames = max(stats["frames"], 1)
    return {
        "calls": calls,
        "frames": stats["frames"],
        "late_frames": stats["late"],
        "late_frames_per_10k": round(stats["late"] * 10000 / frames, 2),
        "pbxsim_cpu_percent": round(100 * cpu / wall, 1),
        "frames_per_second": round(stats["frames"] / wall, 1),
    }


async def find_max(seconds: float, start: int) -> int:
    best, n = 0, start
    while True:
        result = await run_once(n, seconds)
        print(f"  {n} calls: {result['late_frames_per_10k']} late/10k", flush=True)
        if result["late_frames"] > 0:
            return best
        best, n = n, n * 2 if n < 400 else n + 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--find-max", action="store_true", help="largest N with 0 late frames")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    result = asyncio.run(run_once(args.calls, args.seconds))
    result["loop"] = loop_name
    print(
        f"{args.calls} calls x {args.seconds:g} s ({loop_name}): {result['frames']} frames, "
        f"{result['late_frames_per_10k']} late (>40 ms) per 10k, pbxsim CPU "
        f"{result['pbxsim_cpu_percent']} %"
    )
    if args.find_max:
        result["max_calls"] = asyncio.run(find_max(args.seconds, 100))
        print(f"largest N with zero late frames: {result['max_calls']}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
