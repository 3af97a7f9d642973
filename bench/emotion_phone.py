"""Impatience through a telephone line: the held-out evaluation set of tests/emotion/phone_set.py.

    .venv/bin/python bench/emotion_phone.py [--json] [--rebuild]

Needs the Debian packages flite and espeak-ng for those generators (voices whose engine is
missing are left out and named). The set is built once (a few minutes on 2 cores) and cached
under .cache/emotion_phone/. The held-out split (Piper and flite voices, the figures) was
never used to choose anything; the detector's defaults come from the "tune" speakers of
tests/fixtures/emotion and the `--split tune` part of this set (other espeak-ng voices).

A call's score is its highest agitation score over the three test turns; a call is
transferred when the tracker reaches "agitated" (the shipped threshold). Reported: ROC AUC of
impatient calls against calm and confounder calls, recall at the best threshold with at most
5 % false transfers (from the ROC), recall and false transfers at the shipped threshold,
recall per strength and false transfers per confounder, and AUC per generator.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emotion.agitation import AgitationTracker  # noqa: E402
from emotion.features import extract_features  # noqa: E402
from emotion.settings import EmotionSettings  # noqa: E402
from tests.emotion.phone_set import (  # noqa: E402
    HELD_OUT_VOICES,
    STRENGTHS,
    TUNE_VOICES,
    PhoneCall,
    available,
    build_calls,
)

CACHE = ROOT / ".cache" / "emotion_phone"
SEED = 2020
MAX_FALSE_TRANSFERS = 0.05


def load_calls(split: str, rebuild: bool) -> list[PhoneCall]:
    wanted = HELD_OUT_VOICES if split == "held_out" else TUNE_VOICES
    voices = tuple(voice for voice in wanted if available(voice))
    missing = [voice.id for voice in wanted if voice not in voices]
    if missing:
        print(f"left out (engine not installed): {', '.join(missing)}")
    path = CACHE / f"calls-{SEED}-{'-'.join(v.id.replace(':', '_') for v in voices)}.pickle"
    if path.exists() and not rebuild:
        return pickle.loads(path.read_bytes())
    calls = build_calls(voices, SEED)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(calls))
    return calls


def score_call(call: PhoneCall, settings: EmotionSettings) -> tuple[float, bool]:
    """The call's highest test-turn score and whether it was transferred."""
    tracker = AgitationTracker(settings)
    readings = [tracker.update(extract_features(pcm)) for pcm in (*call.baseline, *call.turns)]
    return max(r.score for r in readings[len(call.baseline) :]), any(
        r.state == "agitated" for r in readings
    )


def evaluate(calls: list[PhoneCall], settings: EmotionSettings) -> dict[str, object]:
    scored = [(call, *score_call(call, settings)) for call in calls]
    labels = np.array([call.impatient for call, _, _ in scored])
    scores = np.array([score for _, score, _ in scored])
    transferred = np.array([moved for _, _, moved in scored])
    false_rate, true_rate, thresholds = roc_curve(labels, scores)
    allowed = false_rate <= MAX_FALSE_TRANSFERS
    best = int(np.argmax(np.where(allowed, true_rate, -1.0)))
    threshold = float(thresholds[best])
    per_strength = {}
    for strength in STRENGTHS:
        mask = np.array([call.strength == strength for call, _, _ in scored])
        per_strength[strength] = {
            "at_shipped_threshold": round(float(transferred[mask].mean()), 3),
            "at_roc_threshold": round(float((scores[mask] >= threshold).mean()), 3),
            "calls": int(mask.sum()),
        }
    per_negative = {}
    for kind in sorted({call.kind for call in calls} - {"impatient"}):
        mask = np.array([call.kind == kind for call, _, _ in scored])
        per_negative[kind] = {
            "false_transfers": round(float(transferred[mask].mean()), 3),
            "calls": int(mask.sum()),
        }
    by_generator: dict[str, list[int]] = defaultdict(list)
    for index, (call, _, _) in enumerate(scored):
        by_generator[call.voice.generator].append(index)
    return {
        "calls": len(calls),
        "impatient_calls": int(labels.sum()),
        "auc": round(float(roc_auc_score(labels, scores)), 3),
        "recall_at_5pct_false_transfers": round(float(true_rate[best]), 3),
        "false_transfers_at_that_threshold": round(float(false_rate[best]), 3),
        "recall_at_shipped_threshold": round(float(transferred[labels].mean()), 3),
        "false_transfers_at_shipped_threshold": round(float(transferred[~labels].mean()), 3),
        "per_strength_recall": per_strength,
        "negatives": per_negative,
        "auc_by_generator": {
            generator: round(float(roc_auc_score(labels[rows], scores[rows])), 3)
            for generator, rows in sorted(by_generator.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--rebuild", action="store_true", help="make the set again")
    parser.add_argument(
        "--split",
        choices=("held_out", "tune"),
        default="held_out",
        help="held_out (Piper and flite voices; the figures) or tune (espeak-ng voices)",
    )
    args = parser.parse_args()
    calls = load_calls(args.split, args.rebuild)
    result = evaluate(calls, EmotionSettings())
    voices = sorted({call.voice.id for call in calls})
    print(f"voices: {', '.join(voices)}")
    print(f"calls: {result['calls']} ({result['impatient_calls']} impatient)")
    print(f"ROC AUC: {result['auc']}")
    print(
        f"recall at <= 5% false transfers: {result['recall_at_5pct_false_transfers']} "
        f"(false transfers {result['false_transfers_at_that_threshold']})"
    )
    print(
        f"at the shipped threshold: recall {result['recall_at_shipped_threshold']}, "
        f"false transfers {result['false_transfers_at_shipped_threshold']}"
    )
    for strength, row in result["per_strength_recall"].items():  # type: ignore[union-attr]
        print(f"  {strength:9s} recall {row}")
    for kind, row in result["negatives"].items():  # type: ignore[union-attr]
        print(f"  {kind:9s} {row}")
    print(f"AUC by generator: {result['auc_by_generator']}")
    if args.json:
        print(json.dumps({**result, "split": args.split, "voices": voices}))


if __name__ == "__main__":
    main()
