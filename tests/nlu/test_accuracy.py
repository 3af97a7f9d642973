"""Intent accuracy on held-out phone replies that are not in the training library."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nlu.classifier import IntentClassifier, normalize
from nlu.library import BUILTIN_INTENTS, builtin_intents

HERE = Path(__file__).parent


def heldout(language: str) -> dict[str, list[str]]:
    with (HERE / f"heldout_{language}.yaml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_heldout_set_covers_every_intent_and_never_overlaps_training(language: str) -> None:
    data = heldout(language)
    assert set(data) == set(BUILTIN_INTENTS)
    training = {normalize(t, language) for ex in builtin_intents(language).values() for t in ex}
    for intent, utterances in data.items():
        assert len(set(utterances)) >= 20, intent
        overlap = [u for u in utterances if normalize(u, language) in training]
        assert overlap == [], f"{intent}: held-out utterances found in the training library"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_library_is_large_and_every_example_is_text(language: str) -> None:
    for intent, examples in builtin_intents(language).items():
        assert len(examples) >= 60, intent
        assert all(isinstance(e, str) and e for e in examples)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_heldout_accuracy_at_least_90_percent(
    language: str, classifiers: dict[str, IntentClassifier]
) -> None:
    clf = classifiers[language]
    total = correct = 0
    per_intent: dict[str, tuple[int, int]] = {}
    for intent, utterances in heldout(language).items():
        hits = sum(clf.classify(u).intent == intent for u in utterances)
        per_intent[intent] = (hits, len(utterances))
        total += len(utterances)
        correct += hits
    accuracy = correct / total
    print(
        f"\nintent accuracy [{language}]: {accuracy:.1%} ({correct}/{total}, threshold "
        f"{clf.threshold})"
    )
    for intent, (hits, n) in per_intent.items():
        print(f"  {intent:15s} {hits}/{n}")
    assert accuracy >= 0.90
