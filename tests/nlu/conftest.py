from __future__ import annotations

from pathlib import Path

import pytest

from nlu.classifier import IntentClassifier
from nlu.library import builtin_intents


@pytest.fixture(scope="session")
def nlu_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlu-cache")


@pytest.fixture(scope="session")
def classifiers(nlu_cache: Path) -> dict[str, IntentClassifier]:
    """One classifier per language over the built-in library (trained once per session)."""
    return {
        lang: IntentClassifier.train(lang, builtin_intents(lang), nlu_cache)
        for lang in ("en", "zh")
    }
