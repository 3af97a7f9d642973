"""CPU cost of agitation detection: feature extraction plus a tracker update per utterance.

    .venv/bin/python bench/emotion.py [--json]

Utterances are 3 s of real fixture speech (espeak-ng, 8 kHz). CPU time is process time, after
one warm-up so numba compilation is not counted (the daemon warms at install and start).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emotion.agitation import AgitationTracker  # noqa: E402
from emotion.features import extract_features  # noqa: E402
from emotion.warmup import warm  # noqa: E402
from tests.emotion.labelled_set import FIXTURES, read_wav  # noqa: E402

RATE = 8000
UTTERANCE_SECONDS = 3
TARGET_MS = 5.0


def three_second_utterances() -> list[np.ndarray]:
    """All calm and agitated fixture takes, end to end, cut into 3 s utterances."""
    speech = np.concatenate([read_wav(path) for path in sorted(FIXTURES.glob("wav/*/*.wav"))])
    size = RATE * UTTERANCE_SECONDS
    return [speech[start : start + size] for start in range(0, speech.size - size + 1, size)]


def measure(utterances: list[np.ndarray], rounds: int) -> float:
    """Mean CPU milliseconds per utterance for extraction plus tracker update."""
    started = time.process_time()
    for _ in range(rounds):
        tracker = AgitationTracker()
        for pcm in utterances:
            tracker.update(extract_features(pcm))
    return (time.process_time() - started) * 1000.0 / (rounds * len(utterances))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warm()
    utterances = three_second_utterances()
    ms_per_utterance = measure(utterances, args.rounds)
    ms_per_second = ms_per_utterance / UTTERANCE_SECONDS
    print(f"utterances: {len(utterances)} x {UTTERANCE_SECONDS} s, rounds: {args.rounds}")
    print(f"CPU per second of audio: {ms_per_second:.2f} ms")
    print(f"CPU per 3 s utterance:   {ms_per_utterance:.2f} ms (target <= {TARGET_MS} ms)")
    if args.json:
        result = {
            "ms_per_second_of_audio": round(ms_per_second, 3),
            "ms_per_3s_utterance": round(ms_per_utterance, 3),
            "target_ms_per_3s_utterance": TARGET_MS,
            "utterances": len(utterances),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
