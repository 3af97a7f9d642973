"""Intent accuracy on held-out phone replies that are not in the training library."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nlu.classifier import IntentClassifier, normalize, without_fillers
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
def test_no_heldout_line_is_a_training_line_give_or_take_fillers(language: str) -> None:
    training = {
        without_fillers(t, language): t for ex in builtin_intents(language).values() for t in ex
    }
    near = [
        f"{u!r} ~ {training[without_fillers(u, language)]!r}"
        for utterances in heldout(language).values()
        for u in utterances
        if without_fillers(u, language) in training
    ]
    assert near == [], f"held-out lines that are training lines give or take a filler: {near}"


@pytest.mark.parametrize(
    ("language", "line", "training_line"),
    [
        ("en", "uh no thanks", "no thanks"),
        ("en", "stop calling me please", "stop calling me"),
        ("zh", "嗯对的", "对"),
        ("zh", "那个钱我已经还了", "钱我已经还了"),
    ],
)
def test_a_filler_added_or_removed_is_a_near_duplicate(
    language: str, line: str, training_line: str
) -> None:
    assert without_fillers(line, language) == without_fillers(training_line, language)
    assert without_fillers("no thanks", "en") != without_fillers("no i'm good thanks", "en")


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
