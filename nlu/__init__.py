"""Intent understanding: built-in intent library, spaCy text classifier, entity rules.

Public API:

- `builtin_intents(language)`, `merge_intents(language, extra)`: the training data.
- `IntentClassifier.train(language, intents, cache_dir, threshold=..., epochs=...)` trains (or
  loads from the on-disk cache, keyed by a hash of the data) once per process;
  `classify(text, today=...) -> NluResult(intent | None, confidence, best_intent, entities,
  scores)`. CPU work: call it from an executor; it is thread-safe.
- `extract_entities(text, language, today)`: yes/no, numbers, amounts, dates, times.

Pure: no sockets, no database, no environment; imports only libraries.

Import from the submodules (kept out of this file so that importing the package's
settings does not load heavy libraries).
"""
