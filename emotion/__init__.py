"""Agitation detection from the caller's voice (prosody against a per-call baseline) and words."""

from emotion.agitation import AgitationReading, AgitationState, AgitationTracker, LexicalCues
from emotion.features import ProsodyFeatures, WordTiming, extract_features
from emotion.settings import AgitationWeights, EmotionSettings, StdFloors
from emotion.warmup import warm

__all__ = [
    "AgitationReading",
    "AgitationState",
    "AgitationTracker",
    "AgitationWeights",
    "EmotionSettings",
    "LexicalCues",
    "ProsodyFeatures",
    "StdFloors",
    "WordTiming",
    "extract_features",
    "warm",
]
