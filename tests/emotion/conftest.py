"""Features of the labelled fixture set, computed once per session."""

from __future__ import annotations

import pytest

from tests.emotion.labelled_set import SpeakerTakes, load_speakers


@pytest.fixture(scope="session")
def fixture_speakers() -> list[SpeakerTakes]:
    return load_speakers()
