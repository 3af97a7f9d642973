"""Vosk decoding cost on the fixture utterances, free mode versus grammar mode.

Every speech fixture (Korean and English) is streamed through an `AsrSession` frame by frame as
fast as it decodes. Cost is the process's CPU time (all threads: VAD, event loop and Vosk), so
other load on the machine does not distort it. RTF is CPU time over the audio the session
decoded (speech plus its padding: silence is never decoded), that is the cost of a caller who
talks without pause; `stream_rtf_*` divides by the whole stream, silences included.

    .venv/bin/python bench/asr.py [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voice.asr import AsrEngine  # noqa: E402
from voice.audio import FRAME_S, duration_s, iter_frames, read_wav  # noqa: E402
from voice.settings import AsrSettings  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio"
GRAMMAR = ["네", "아니요", "아뇨", "좋아요", "상담원 연결", "여보세요"]


async def decode_all(
    engine: AsrEngine, streams: list[bytes], grammar: list[str] | None
) -> tuple[float, float, float]:
    """(CPU seconds, seconds decoded, seconds streamed) for every stream once."""
    cpu = decoded = streamed = 0.0
    for pcm in streams:
        session = engine.session(grammar)
        now = 0.0
        started = time.process_time()
        for frame in iter_frames(pcm):
            now += FRAME_S
            await session.feed(frame, now)
        await session.flush(now)
        cpu += time.process_time() - started
        decoded += session.decoded_s
        streamed += duration_s(pcm)
        await session.close()
    return cpu, decoded, streamed


async def main(rounds: int) -> dict[str, float]:
    started = time.perf_counter()
    engine = await AsrEngine.load(AsrSettings(executor_threads=1, prewarm_recognizers=1))
    load_s = time.perf_counter() - started
    names = sorted(p for p in FIXTURES.glob("*.wav") if p.stem.startswith(("ko_", "en_")))
    streams = [read_wav(p) for p in names]
    await decode_all(engine, streams[:2], GRAMMAR)  # warm-up
    figures: dict[str, float] = {"model_load_s": round(load_s, 2), "fixtures": len(streams)}
    for mode, grammar in (("free", None), ("grammar", GRAMMAR)):
        cpu = decoded = streamed = 0.0
        for _ in range(rounds):
            c, d, s = await decode_all(engine, streams, grammar)
            cpu, decoded, streamed = cpu + c, decoded + d, streamed + s
        rtf = cpu / decoded
        figures[f"rtf_{mode}"] = round(rtf, 4)
        figures[f"streams_per_core_{mode}"] = round(1 / rtf, 1)
        figures[f"stream_rtf_{mode}"] = round(cpu / streamed, 4)
        figures[f"decoded_s_{mode}"] = round(decoded, 1)
    engine.shutdown()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = asyncio.run(main(args.rounds))
    print(f"model load                 {result['model_load_s']} s")
    for mode in ("free", "grammar"):
        print(
            f"{mode:8} RTF {result[f'rtf_{mode}']:.4f} over decoded speech "
            f"({result[f'streams_per_core_{mode}']} talking callers per core), "
            f"{result[f'stream_rtf_{mode}']:.4f} over whole streams"
        )
    if args.json:
        print(json.dumps(result))
