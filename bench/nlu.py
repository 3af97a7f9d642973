"""Latency of NLU plus compliance per customer utterance, with a 10,000-term word list.

Per utterance: intent classification with entities, the sensitive-word check and PII
redaction, i.e. what the call session does with each transcript.

    .venv/bin/python bench/nlu.py [--json] [--utterances N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compliance.redact import redact  # noqa: E402
from compliance.words import WordCategory, WordFilter  # noqa: E402
from nlu.classifier import IntentClassifier  # noqa: E402
from nlu.library import builtin_intents  # noqa: E402

TERMS = 10_000
FILLERS = {"en": ["uh", "um", "well", "so", "like"], "zh": ["嗯", "呃", "那个", "就是", "啊"]}
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家"


def word_list(rng: random.Random) -> WordFilter:
    """10,000 synthetic terms, half Latin words and half CJK strings, in four categories."""
    terms: set[str] = set()
    while len(terms) < TERMS // 2:
        terms.add("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(5, 10))))
    while len(terms) < TERMS:
        terms.add("".join(rng.choices(CJK, k=rng.randint(3, 5))))
    ordered = sorted(terms)
    actions = ["block", "replace", "flag", "escalate"]
    categories = {
        f"cat_{action}": WordCategory(action=action, terms=ordered[i::4])  # type: ignore[arg-type]
        for i, action in enumerate(actions)
    }
    return WordFilter(categories)


def utterances(language: str, count: int, rng: random.Random) -> list[str]:
    pool = [t for examples in builtin_intents(language).values() for t in examples]
    joiner = "" if language == "zh" else " "
    return [joiner.join([rng.choice(FILLERS[language]), rng.choice(pool)]) for _ in range(count)]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON object last")
    parser.add_argument("--utterances", type=int, default=2000, help="per language")
    args = parser.parse_args()
    rng = random.Random(7)
    started = time.perf_counter()
    word_filter = word_list(rng)
    build_s = time.perf_counter() - started
    timings: list[float] = []
    per_language: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for language in ("en", "zh"):
            clf = IntentClassifier.train(language, builtin_intents(language), Path(cache))
            texts = utterances(language, args.utterances, rng)
            for text in texts[:50]:  # warm up
                clf.classify(text)
            lang_times = []
            for text in texts:
                t0 = time.perf_counter()
                clf.classify(text)
                word_filter.check(text, "customer")
                redact(text)
                lang_times.append((time.perf_counter() - t0) * 1000)
            timings += lang_times
            per_language[language] = {
                "p50_ms": round(percentile(lang_times, 50), 3),
                "p95_ms": round(percentile(lang_times, 95), 3),
            }
    result = {
        "terms": word_filter.term_count,
        "utterances": len(timings),
        "automaton_build_s": round(build_s, 3),
        "p50_ms": round(percentile(timings, 50), 3),
        "p95_ms": round(percentile(timings, 95), 3),
        "per_language": per_language,
    }
    print(f"sensitive-word list: {result['terms']} terms, automaton built in {build_s:.2f} s")
    for language, figures in per_language.items():
        print(f"{language}: p50 {figures['p50_ms']:.3f} ms, p95 {figures['p95_ms']:.3f} ms")
    print(
        f"all {len(timings)} utterances: p50 {result['p50_ms']:.3f} ms, "
        f"p95 {result['p95_ms']:.3f} ms (target p95 <= 5 ms)"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
