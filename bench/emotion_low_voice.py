"""A low, creaky voice through a telephone line: the tune-split case for the pitch tracker.

    .venv/bin/python bench/emotion_low_voice.py [--json] [--rebuild]

Two espeak-ng tune voices (en-us+m7, en-gb-x-gbclan+m6; never the held-out Piper or flite
voices) are moved to a 100 Hz median with Praat's PSOLA, with 3 % period-to-period jitter and
sentence-final creak (the last 20-40 % of each sentence at 0.7 times the pitch, periods
alternating +-25 %), then made into the calls of tests/emotion/phone_set.py (calm, impatient,
confounders, each through its line). A 100 Hz voice's 3rd harmonic is the lowest the line's
300 Hz high-pass leaves, which is where a frame-wise tracker goes wrong.

Reported: how much the utterance pitch medians of calm calls vary within a call (the standard
deviation over the call's six utterances, averaged over calls), the mean measured rise per
impatience strength, and the detector's scores on these calls (as bench/emotion_phone.py).
The set is cached under .cache/emotion_low_voice/.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import zlib
from pathlib import Path

import numpy as np
import parselmouth
from parselmouth.praat import call

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.emotion_phone import evaluate  # noqa: E402
from emotion.features import extract_features  # noqa: E402
from emotion.settings import EmotionSettings  # noqa: E402
from tests.emotion.phone_set import STRENGTHS, PhoneCall, Voice, build_calls, speak  # noqa: E402

CACHE = ROOT / ".cache" / "emotion_low_voice"
SEED = 2021
VOICES = (Voice("espeak", "en-us+m7"), Voice("espeak", "en-gb-x-gbclan+m6"))
MEDIAN_HZ = 100.0
JITTER = 0.03
CREAK_SHARE = (0.2, 0.4)
CREAK_PITCH = 0.7
CREAK_ALTERNATION = 0.25
RATE = 16000


def low_creaky(voice: Voice, text: str, tempo: float = 1.0) -> np.ndarray:
    """`speak`, then PSOLA to a 100 Hz median with jitter and sentence-final creak."""
    pcm = speak(voice, text, tempo)
    seed = zlib.crc32(pcm.tobytes())
    rng = np.random.default_rng(seed)
    parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({seed % 2**31})")
    sound = parselmouth.Sound(pcm.astype(np.float64) / 32768.0, sampling_frequency=RATE)
    manipulation = call(sound, "To Manipulation", 0.01, 50, 400)
    tier = call(manipulation, "Extract pitch tier")
    points = call(tier, "Get number of points")
    if points == 0:
        return pcm
    times = np.array([call(tier, "Get time from index", i + 1) for i in range(points)])
    values = np.array([call(tier, "Get value at index", i + 1) for i in range(points)])
    values *= MEDIAN_HZ / np.median(values)
    creak_from = times[0] + (1.0 - rng.uniform(*CREAK_SHARE)) * (times[-1] - times[0])
    new_tier = call("Create PitchTier", "low", sound.xmin, sound.xmax)
    time, period = times[0], 0
    while time < times[-1]:
        pitch = np.interp(time, times, values) * (1.0 + JITTER * rng.standard_normal())
        if time > creak_from:
            pitch *= CREAK_PITCH * (1.0 + CREAK_ALTERNATION * (-1) ** period)
            period += 1
        call(new_tier, "Add point", time, float(pitch))
        time += 1.0 / pitch
    call([manipulation, new_tier], "Replace pitch tier")
    signal = call(manipulation, "Get resynthesis (overlap-add)").values[0]
    return np.round(np.clip(signal, -1.0, 1.0) * 32767).astype(np.int16)


def load_calls(rebuild: bool) -> list[PhoneCall]:
    path = CACHE / f"calls-{SEED}.pickle"
    if path.exists() and not rebuild:
        return pickle.loads(path.read_bytes())
    calls = build_calls(VOICES, SEED, speaker=low_creaky)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(calls))
    return calls


def pitch_medians(calls: list[PhoneCall]) -> dict[str, object]:
    """Within-call spread of calm calls' utterance medians; mean rise per strength."""
    spreads = []
    rises: dict[str, list[float]] = {strength: [] for strength in STRENGTHS}
    for phone_call in calls:
        if phone_call.kind not in ("calm", "impatient"):
            continue
        baseline = [extract_features(pcm).f0_median_st for pcm in phone_call.baseline]
        turns = [extract_features(pcm).f0_median_st for pcm in phone_call.turns]
        if phone_call.kind == "calm":
            spreads.append(float(np.std([*baseline, *turns])))
        else:
            rises[phone_call.strength or ""].append(float(np.mean(turns) - np.mean(baseline)))
    return {
        "calm_within_call_sd_st": round(float(np.mean(spreads)), 2),
        "mean_rise_st": {strength: round(float(np.mean(r)), 2) for strength, r in rises.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--rebuild", action="store_true", help="make the set again")
    args = parser.parse_args()
    calls = load_calls(args.rebuild)
    medians = pitch_medians(calls)
    scores = evaluate(calls, EmotionSettings())
    print(f"calls: {len(calls)} ({scores['impatient_calls']} impatient)")
    print(f"calm calls, sd of utterance pitch medians: {medians['calm_within_call_sd_st']} st")
    print(f"mean pitch rise by strength (st): {medians['mean_rise_st']}")
    print(
        f"ROC AUC {scores['auc']}, recall at <= 5% false transfers "
        f"{scores['recall_at_5pct_false_transfers']}, shipped threshold: recall "
        f"{scores['recall_at_shipped_threshold']}, false transfers "
        f"{scores['false_transfers_at_shipped_threshold']}"
    )
    if args.json:
        print(json.dumps({**medians, **scores}))


if __name__ == "__main__":
    main()
