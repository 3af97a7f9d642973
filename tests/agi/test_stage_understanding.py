"""Understanding alone: real Vosk finals, the script's real spaCy classifier and librosa
prosody; utterances fed in as typed events."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from agi import faults
from agi.call.events import Heard
from agi.call.understanding import Understanding
from agi.runtime import CallServices, ScriptRuntime, train_classifier
from dialog import load_script
from tests.agi.conftest import call_services
from tests.agi.stages import GRAMMAR, fixture_pcm, frames_at, silence
from voice.asr import AsrEngine, AsrFinal
from voice.packs import PackRequest
from voice.tts import TtsEngine

REPO = Path(__file__).resolve().parents[2]
WHERE = ("confirm_identity", "understanding-unit")


@pytest.fixture
async def understanding(
    engines: tuple[AsrEngine, TtsEngine], trained_nlu: Path
) -> tuple[Understanding, CallServices]:
    services = call_services(engines)
    loaded = load_script(REPO / "scripts" / "order_confirmation_en.yaml")
    classifier = await services.run_cpu(
        train_classifier, loaded, services.settings.nlu, trained_nlu
    )
    pack = await services.packs.for_request(PackRequest.of(loaded.script))
    runtime = ScriptRuntime(loaded, 1, classifier, pack)
    return Understanding(services, runtime, "call-understanding"), services


async def _heard_yes(asr: AsrEngine) -> Heard:
    """ "네" through the real recognizer, as the demo pack hears a closed question."""
    session = asr.session(GRAMMAR)
    try:
        for frame, at in frames_at(fixture_pcm("ko_yes_1") + silence(1.0), 0.0):
            event = await session.feed(frame, at)
            if isinstance(event, AsrFinal):
                return Heard(event, ready_at=event.endpoint_at)
    finally:
        await session.close()
    raise AssertionError("the recognizer heard nothing")


async def test_a_grammar_answer_is_understood_in_the_scripts_language(
    understanding: tuple[Understanding, CallServices], engines: tuple[AsrEngine, TtsEngine]
) -> None:
    stage, _ = understanding
    heard = await _heard_yes(engines[0])
    understood = await stage.understand(heard, WHERE)
    assert understood.text == "yes"  # phrase_map: what the Korean model hears, in English
    assert understood.nlu is not None and understood.nlu.intent == "affirm"
    assert understood.reading is not None and 0.0 <= understood.reading.score <= 1.0
    assert understood.word_hits == () and understood.heard is heard


async def test_speech_nothing_could_be_made_of_still_counts_for_agitation(
    understanding: tuple[Understanding, CallServices], engines: tuple[AsrEngine, TtsEngine]
) -> None:
    stage, _ = understanding
    heard = await _heard_yes(engines[0])
    unheard = Heard(dataclasses.replace(heard.final, phrase=None, phrases=()), heard.ready_at)
    understood = await stage.understand(unheard, WHERE)
    assert (understood.text, understood.nlu) == ("", None)
    assert understood.reading is not None


@pytest.mark.parametrize(
    ("phrases", "meant"), [(("네", "좋아요"), "yes"), (("네", "아니요"), ""), ((), "")]
)
async def test_a_run_of_phrases_is_understood_only_when_they_mean_the_same(
    understanding: tuple[Understanding, CallServices],
    engines: tuple[AsrEngine, TtsEngine],
    phrases: tuple[str, ...],
    meant: str,
) -> None:
    """A caller heard out through a pause ("네 ... 좋아요") said two phrases: one meaning is
    the answer, two meanings are none."""
    stage, _ = understanding
    heard = await _heard_yes(engines[0])
    said = dataclasses.replace(heard.final, phrase=None, phrases=phrases)
    understood = await stage.understand(Heard(said, heard.ready_at), WHERE)
    assert understood.text == meant
    assert (understood.nlu is not None) == bool(meant)


async def test_the_callers_sensitive_words_are_found(
    understanding: tuple[Understanding, CallServices], engines: tuple[AsrEngine, TtsEngine]
) -> None:
    stage, _ = understanding
    heard = await _heard_yes(engines[0])
    said = dataclasses.replace(heard.final, grammar_mode=False, text="no you idiot")
    understood = await stage.understand(Heard(said, heard.ready_at), WHERE)
    assert [(h.category, h.term) for h in understood.word_hits] == [("insults", "idiot")]
    assert understood.nlu is not None and understood.text == "no you idiot"


async def test_a_failed_emotion_reading_leaves_the_rest_understood(
    understanding: tuple[Understanding, CallServices], engines: tuple[AsrEngine, TtsEngine]
) -> None:
    stage, _ = understanding
    heard = await _heard_yes(engines[0])
    labels = {"signal": "emotion"}
    before = REGISTRY.get_sample_value("outdial_optional_signal_failures_total", labels) or 0.0
    with faults.armed(faults.EMOTION, campaign=WHERE[1]) as fault:
        understood = await stage.understand(heard, WHERE)
    assert fault.hits == 1 and understood.reading is None
    assert understood.nlu is not None and understood.nlu.intent == "affirm"
    after = REGISTRY.get_sample_value("outdial_optional_signal_failures_total", labels)
    assert after == before + 1
