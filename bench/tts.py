"""Piper synthesis: time to the first sentence of a streamed prompt, and real-time factor.

Each prompt is streamed uncached through `TtsEngine.stream` (8 kHz slin out, resampling
included) after one warm-up. First-chunk latency is wall time from the call to the first
sentence's audio; RTF is the process's CPU time over the seconds of audio produced (CPU, so
other load on the machine does not distort it; Piper's onnxruntime may use several threads,
all counted). `first_chunk_*` is wall time and so does depend on that load.

    .venv/bin/python bench/tts.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voice.audio import duration_s  # noqa: E402
from voice.settings import TtsSettings  # noqa: E402
from voice.tts import TtsEngine  # noqa: E402

PROMPTS = [
    "Hello, this is Anna calling from Acme Energy. Is this a good time to talk?",
    "Thank you. I am calling about your electricity contract, which ends next month.",
    "We can offer you a fixed price for two years. Would you like to hear more?",
    "No problem. When would be a better time to call you back?",
    "I understand. I will put you through to one of my colleagues now. Please hold.",
    "Your appointment is on Tuesday at ten in the morning. Goodbye!",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        engine = await TtsEngine.load(TtsSettings(cache_dir=Path(cache)))
        load_s = time.perf_counter() - started
        [_ async for _ in engine.stream("Warming up the voice.")]
        first_chunk_ms: list[float] = []
        audio_s = cpu_s = 0.0
        for _ in range(rounds):
            for prompt in PROMPTS:
                cpu_started, started = time.process_time(), time.perf_counter()
                first: float | None = None
                async for chunk in engine.stream(prompt):
                    first = first if first is not None else time.perf_counter() - started
                    audio_s += duration_s(chunk)
                cpu_s += time.process_time() - cpu_started
                assert first is not None
                first_chunk_ms.append(first * 1000)
        engine.shutdown()
    return {
        "voice_load_s": round(load_s, 2),
        "prompts": len(first_chunk_ms),
        "first_chunk_ms_p50": round(statistics.median(first_chunk_ms), 1),
        "first_chunk_ms_p95": round(percentile(first_chunk_ms, 0.95), 1),
        "rtf": round(cpu_s / audio_s, 4),
        "audio_s": round(audio_s, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = asyncio.run(main(args.rounds))
    print(f"voice load           {result['voice_load_s']} s")
    print(
        f"first sentence       p50 {result['first_chunk_ms_p50']} ms, "
        f"p95 {result['first_chunk_ms_p95']} ms over {result['prompts']} prompts"
    )
    print(f"RTF (CPU / audio)    {result['rtf']} over {result['audio_s']} s of audio")
    if args.json:
        print(json.dumps(result))
