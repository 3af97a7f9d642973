"""Settings of the intent classifier (composed into the daemon config by `outdial/config.py`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class NluSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Below this top-class probability an utterance is a no-match (intent None).
    threshold: float = Field(default=0.45, ge=0.0, le=1.0)
    # Where trained classifiers are cached, keyed by a hash of their training data;
    # None means "<state dir>/nlu-cache" chosen by the daemon.
    cache_dir: Path | None = None
    # Training passes over the examples; more is slower at first load, rarely more accurate.
    epochs: int = Field(default=20, ge=1, le=100)
