from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

import nlu.classifier as classifier_module
from nlu.classifier import IntentClassifier
from nlu.library import builtin_intents, merge_intents

SMALL = {
    "greet": ["hello", "hi there", "good morning", "hey"],
    "bye": ["goodbye", "bye bye", "see you", "talk later"],
}


def test_classify_returns_intent_confidence_scores_and_entities(
    classifiers: dict[str, IntentClassifier],
) -> None:
    result = classifiers["zh"].classify("嗯我明天还三千五", today=date(2025, 3, 12))
    assert result.intent == "promise_to_pay"
    assert result.confidence == max(result.scores.values())
    assert set(result.scores) == set(builtin_intents("zh"))
    assert [(e.label, e.value) for e in result.entities] == [
        ("date", "2025-03-13"),
        ("amount", 3500),
    ]


def test_below_threshold_is_a_no_match(classifiers: dict[str, IntentClassifier]) -> None:
    base = classifiers["en"]
    strict = IntentClassifier(base._nlp, "en", 0.999, base.model_hash)
    result = strict.classify("well maybe i guess")
    assert result.intent is None
    assert result.best_intent in base.labels
    assert result.confidence < 0.999


def test_empty_text_is_a_no_match(classifiers: dict[str, IntentClassifier]) -> None:
    result = classifiers["en"].classify("  ...  ")
    assert (result.intent, result.confidence, result.scores) == (None, 0.0, {})


def test_script_intents_extend_the_library(nlu_cache: Path) -> None:
    extra = {
        "ask_amount": [
            "how much do i owe",
            "what's the balance",
            "how much is it",
            "what is the amount",
            "how much money",
        ]
    }
    intents = merge_intents("en", extra)
    assert intents["ask_amount"] == tuple(extra["ask_amount"])
    clf = IntentClassifier.train("en", intents, nlu_cache)
    assert clf.classify("how much is my balance").intent == "ask_amount"
    assert clf.classify("stop calling me please").intent == "opt_out"


def test_trained_model_is_cached_on_disk_by_content_hash(tmp_path: Path) -> None:
    IntentClassifier.train("en", SMALL, tmp_path, epochs=5)
    [model_dir] = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert (model_dir / "meta.json").exists()
    # Mark the cached copy, forget the in-process copy: the next train() must load the mark.
    meta = json.loads((model_dir / "meta.json").read_text())
    meta["name"] = "loaded_from_cache"
    (model_dir / "meta.json").write_text(json.dumps(meta))
    key = classifier_module.training_hash("en", SMALL, 5)
    classifier_module._MEMO.pop(key)
    again = IntentClassifier.train("en", SMALL, tmp_path, epochs=5)
    assert again._nlp.meta["name"] == "loaded_from_cache"
    # Different data -> a different hash -> a second model directory.
    IntentClassifier.train(
        "en", {**SMALL, "thanks": ["thank you", "thanks a lot"]}, tmp_path, epochs=5
    )
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2


def test_classify_is_thread_safe(classifiers: dict[str, IntentClassifier]) -> None:
    clf = classifiers["en"]
    texts = ["yes", "stop calling me", "who is this", "i already paid", "call me later"] * 40
    expected = [clf.classify(t).intent for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda t: clf.classify(t).intent, texts))
    assert got == expected


@pytest.mark.parametrize(
    ("language", "intents", "message"),
    [
        ("fr", SMALL, "unsupported language"),
        ("en", {"only": ["one intent"]}, "at least two intents"),
        ("en", {"greet": ["hi"], "bye": ["  "]}, "has no examples"),
    ],
)
def test_bad_training_input_is_rejected(
    tmp_path: Path, language: str, intents: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        IntentClassifier.train(language, intents, tmp_path)


def test_threshold_out_of_range_is_rejected(classifiers: dict[str, IntentClassifier]) -> None:
    base = classifiers["en"]
    with pytest.raises(ValueError, match="threshold"):
        IntentClassifier(base._nlp, "en", 1.5, base.model_hash)


def test_unknown_library_language_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        builtin_intents("de")
