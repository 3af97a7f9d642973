"""Understanding: what an utterance meant. Its text in the script's language, the intent and
entities (spaCy), the caller's agitation (librosa prosody against the call's baseline) and the
sensitive words they used; the CPU work runs in the executor, intent and prosody side by side.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from agi import faults, metrics
from agi.call.events import Heard, Understood
from agi.runtime import CallServices, ScriptRuntime
from emotion.agitation import AgitationReading, AgitationTracker, LexicalCues
from emotion.features import ProsodyFeatures, WordTiming, extract_features
from voice.asr import AsrFinal

log = logging.getLogger(__name__)

COMPLAINT_INTENTS = frozenset({"complaint"})
STOP_INTENTS = frozenset({"opt_out"})
REPEAT_INTENTS = frozenset({"repeat"})
# Shorter utterances (in bytes of 8 kHz slin: 200 ms) are too short to measure prosody on.
MIN_PROSODY_BYTES = 3200


class Understanding:
    def __init__(self, services: CallServices, runtime: ScriptRuntime, call_id: str) -> None:
        self._services = services
        self._runtime = runtime
        self._call_id = call_id
        self._tracker = AgitationTracker(services.settings.emotion)

    def text_of(self, final: AsrFinal) -> str:
        """The utterance in the script's language: grammar answers go through phrase_map. A run
        of grammar phrases that all mean the same ("네 ... 좋아요", a caller heard out through a
        pause) is that meaning; a run of mixed meanings is nothing."""
        heard = final.phrase if final.grammar_mode else final.text
        if heard:
            return self._mapped(heard)
        meanings = {self._mapped(phrase) for phrase in final.phrases}
        return meanings.pop() if len(meanings) == 1 else ""

    def _mapped(self, heard: str) -> str:
        phrase_map = self._services.settings.session.phrase_map
        return phrase_map.get(self._runtime.script.language, {}).get(heard, heard)

    async def intent_confidence(self, words: str) -> float | None:
        """Free mode's end of turn (voice/asr.py): how sure the NLU is of the intent the words
        heard so far carry, None when they carry none."""
        nlu = await self._services.classify(self._runtime, self._mapped(words))
        return nlu.confidence if nlu.intent is not None else None

    async def understand(self, heard: Heard, where: tuple[str | None, str | None]) -> Understood:
        """`where` (node, campaign) names the utterance for the fault points."""
        text = self.text_of(heard.final)
        features = self._voice_features(heard.final, where)
        if not text:
            # Nothing could be made of it: still a turn, which still counts for agitation
            # (shouting is often exactly what a closed-question grammar fails to recognise).
            return Understood(heard, "", None, await self._agitation(features, None))
        nlu = await self._services.classify(self._runtime, text)
        reading = await self._agitation(features, nlu.intent)
        hits = self._services.word_filter.check(text, "customer").hits
        return Understood(heard, text, nlu, reading, tuple(hits))

    def _voice_features(
        self, final: AsrFinal, where: tuple[str | None, str | None]
    ) -> asyncio.Future[ProsodyFeatures] | None:
        """Pitch, energy and rate of the utterance, started in the CPU executor (None when
        emotion is off or the utterance is too short to measure). The audio is the ASR's own,
        so the word times are offsets into it."""
        if not self._services.settings.emotion.enabled or len(final.audio) < MIN_PROSODY_BYTES:
            return None
        pcm = np.frombuffer(final.audio, dtype=np.int16)
        words = [WordTiming(w.start_s, w.end_s) for w in final.words if w.end_s > w.start_s]
        return asyncio.ensure_future(self._services.run_cpu(_prosody, pcm, words or None, where))

    async def _agitation(
        self, pending: asyncio.Future[ProsodyFeatures] | None, intent: str | None
    ) -> AgitationReading | None:
        """The agitation reading, or None: an optional signal never ends a call, so a
        failure here is logged and counted and the call goes on without it."""
        if pending is None:
            return None
        try:
            features = await pending
            cues = LexicalCues(
                complaint=intent in COMPLAINT_INTENTS,
                stop=intent in STOP_INTENTS,
                repeat=intent in REPEAT_INTENTS,
            )
            return self._tracker.update(features, cues)
        except Exception as exc:
            metrics.SIGNAL_FAILURES.labels("emotion").inc()
            log.warning("call %s: no emotion reading (%s: %s)", self._call_id,
                        type(exc).__name__, exc)  # fmt: skip
            return None


def _prosody(
    pcm: np.ndarray, words: list[WordTiming] | None, where: tuple[str | None, str | None]
) -> ProsodyFeatures:
    """The utterance's prosody (CPU executor); a test may make it fail here (agi/faults.py)."""
    node, campaign = where
    faults.hit(faults.EMOTION, node=node, campaign=campaign)
    return extract_features(pcm, 8000, words)
