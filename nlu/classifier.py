"""Intent classification: `spacy.blank(language)` plus a `textcat` trained from examples.

Usage (the call session does this once per script version, in an executor):

    intents = merge_intents("zh", script_intents)          # built-in library + script
    clf = IntentClassifier.train("zh", intents, cache_dir)  # trains or loads from cache
    result = clf.classify("嗯我明天还三千五", today=local_date)
    result.intent, result.confidence, result.entities

Training is CPU work (seconds) and is cached on disk under `cache_dir`, keyed by a sha256 of
the language, the training data and the model recipe; within a process a trained pipeline is
kept in memory, so training or loading happens once per process per training set.

Thread safety: `classify` may be called from any number of executor threads at once; it
serialises access to the spaCy pipeline with a lock (one classification takes about a
millisecond). `train` is also safe to call concurrently: the per-hash memo is locked.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import compounding, fix_random_seed, minibatch

from nlu.entities import Entity, extract_entities
from nlu.library import check_language

# Bump when the recipe below changes so stale caches are not reused.
_RECIPE_VERSION = 2
# Bag-of-n-grams: fast (well under a millisecond) and, with the large built-in library,
# as accurate as the CNN ensemble on short phone replies. zh tokens are characters, so
# n-grams up to 3 cover most words.
_NGRAM_SIZE = {"en": 2, "zh": 3}
_SEED = 0
# Higher than Adam's default: the sparse linear model converges in fewer passes.
_LEARN_RATE = 0.004

_PUNCT = re.compile(r"[^\w\s']+", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalize(text: str, language: str) -> str:
    """ASR-like form used for training and classification: lower case, no punctuation."""
    text = _PUNCT.sub(" ", text.lower())
    if language == "zh":
        return _SPACES.sub("", text)  # characters are the tokens; spaces carry nothing
    return _SPACES.sub(" ", text).strip()


# Words that carry no intent on a phone line: a sentence with one of them added or removed says
# the same thing, so a held-out line that differs from a training line only by these is not
# held out (tests/nlu/test_accuracy.py).
EN_FILLERS = frozenset(
    [
        "uh",
        "um",
        "umm",
        "uhm",
        "er",
        "erm",
        "hmm",
        "mm",
        "mhm",
        "ah",
        "oh",
        "well",
        "like",
        "so",
        "just",
        "actually",
        "really",
        "please",
        "look",
        "hey",
        "okay",
        "ok",
        "yeah",
        "the",
        "a",
        "sorry",
        "sir",
        "ma'am",
        "buddy",
        "man",
    ]
)
# Longest first, so that "那个" goes before a single character could split it.
ZH_FILLERS = ("那个", "就是", "这个", "然后", "其实", *"嗯啊呃哦噢喔哎唉诶欸呀吧呢啦嘛哈喂的了")


def without_fillers(text: str, language: str) -> str:
    """The normalised text with every filler word dropped: two lines with the same result
    are near-duplicates."""
    clean = normalize(text, language)
    if language == "zh":
        for filler in ZH_FILLERS:
            clean = clean.replace(filler, "")
        return clean
    return " ".join(word for word in clean.split() if word not in EN_FILLERS)


@dataclass(frozen=True, slots=True)
class NluResult:
    """What the classifier made of one utterance.

    `intent` is None (a no-match) when the best score is below the threshold; `best_intent`
    and `confidence` still say what the best guess was.
    """

    text: str
    intent: str | None
    confidence: float
    best_intent: str | None
    entities: tuple[Entity, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)


def training_hash(language: str, intents: Mapping[str, Sequence[str]], epochs: int) -> str:
    """sha256 over everything that determines the trained model."""
    payload = {
        "recipe": _RECIPE_VERSION,
        "spacy": spacy.__version__,
        "language": language,
        "epochs": epochs,
        "intents": {name: sorted(set(examples)) for name, examples in sorted(intents.items())},
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


_MEMO: dict[str, Language] = {}
_MEMO_LOCK = threading.Lock()


class IntentClassifier:
    """A trained intent classifier for one language and one training set."""

    def __init__(self, nlp: Language, language: str, threshold: float, model_hash: str) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        self._nlp = nlp
        self._lock = threading.Lock()
        self.language = language
        self.threshold = threshold
        self.model_hash = model_hash
        self.labels: tuple[str, ...] = tuple(nlp.get_pipe("textcat").labels)

    @classmethod
    def train(
        cls,
        language: str,
        intents: Mapping[str, Sequence[str]],
        cache_dir: Path,
        *,
        threshold: float = 0.45,
        epochs: int = 20,
    ) -> IntentClassifier:
        """Train on `intents` (name -> examples), or reuse the cached model for the same data."""
        check_language(language)
        _check_intents(intents)
        key = training_hash(language, intents, epochs)
        with _MEMO_LOCK:
            nlp = _MEMO.get(key)
            if nlp is None:
                nlp = _load_or_train(language, intents, epochs, Path(cache_dir), key)
                _MEMO[key] = nlp
        return cls(nlp, language, threshold, key)

    def classify(self, text: str, *, today: date | None = None) -> NluResult:
        """Intent, confidence and entities of one customer utterance.

        `today` anchors relative dates ("明天", "next Friday"); pass the customer's local date.
        """
        clean = normalize(text, self.language)
        entities = tuple(extract_entities(text, self.language, today or date.today()))
        if not clean:
            return NluResult(text, None, 0.0, None, entities, {})
        with self._lock:
            doc = self._nlp(clean)
        scores = {label: float(score) for label, score in doc.cats.items()}
        best = max(scores, key=scores.__getitem__)
        confidence = scores[best]
        intent = best if confidence >= self.threshold else None
        return NluResult(text, intent, confidence, best, entities, scores)


def _check_intents(intents: Mapping[str, Sequence[str]]) -> None:
    if len(intents) < 2:
        raise ValueError("an intent classifier needs at least two intents")
    for name, examples in intents.items():
        if not name or not isinstance(name, str):
            raise ValueError(f"invalid intent name {name!r}")
        if not any(isinstance(e, str) and e.strip() for e in examples):
            raise ValueError(f"intent {name!r} has no examples")


def _load_or_train(
    language: str, intents: Mapping[str, Sequence[str]], epochs: int, cache_dir: Path, key: str
) -> Language:
    target = cache_dir / f"{language}-{key[:24]}"
    if (target / "meta.json").exists():
        return spacy.load(target)
    nlp = _train(language, intents, epochs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a crash or a second process never leaves a
    # half-written model where the loader would find it.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        nlp.to_disk(tmp)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "meta.json").exists():
            raise
    return nlp


def _train(language: str, intents: Mapping[str, Sequence[str]], epochs: int) -> Language:
    fix_random_seed(_SEED)
    nlp = spacy.blank(language)
    model = {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": True,
        "ngram_size": _NGRAM_SIZE[language],
        "no_output_layer": False,
        "length": 65536,
    }
    textcat = nlp.add_pipe("textcat", config={"model": model})
    labels = sorted(intents)
    for label in labels:
        textcat.add_label(label)
    examples = [
        Example.from_dict(
            nlp.make_doc(normalize(text, language)),
            {"cats": {other: float(other == label) for other in labels}},
        )
        for label in labels
        for text in dict.fromkeys(intents[label])
        if normalize(text, language)
    ]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = _LEARN_RATE
    rng = random.Random(_SEED)
    for _ in range(epochs):
        rng.shuffle(examples)
        for batch in minibatch(examples, size=compounding(8.0, 32.0, 1.05)):
            nlp.update(batch, sgd=optimizer)
    return nlp
