"""Per-call agitation score: prosody against the caller's own calm baseline, plus lexical cues.

People differ far more from each other than one person does from calm to upset, so every
acoustic feature is compared with the first few utterances of the same call (z-scores with a
floor on the spread). The z-scores are summed per kind of evidence (pitch, loudness, tempo,
voice quality, turn-taking), each kind capped so that none alone can make a call agitated;
with the lexical cues from nlu they form a logistic of a weighted sum (weights in
`AgitationWeights`), and a two-threshold hysteresis turns the score into a state that does not
flap from turn to turn. While the line is noisier than during the baseline, tempo and voice
quality are ignored: noise fakes both.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from emotion.features import ProsodyFeatures
from emotion.settings import EmotionSettings

AgitationState = Literal["calm", "agitated"]
_INSTANT_ANSWER_S = 0.05

# The acoustic features that get a z-score, as named in `StdFloors` and `AgitationWeights`.
ACOUSTIC_FEATURES = (
    "f0_median",
    "f0_spread",
    "energy_median",
    "energy_spread",
    "speaking_rate",
    "pause_ratio",
    "f0_range",
    "f0_slope",
    "articulation_rate",
    "mean_pause",
    "hnr",
    "spectral_tilt",
)
# Kinds of evidence. Each kind's share of the score is capped (`EmotionSettings.group_cap`,
# `loudness_cap`) below what crossing `high` takes, so one kind alone never makes a call
# agitated: a caller who only moved the phone closer (loudness) or only talks fast (tempo) is
# not transferred.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "pitch": ("f0_median", "f0_spread", "f0_range", "f0_slope"),
    "loudness": ("energy_median", "energy_spread"),
    "tempo": ("speaking_rate", "articulation_rate", "pause_ratio", "mean_pause"),
    "voice": ("hnr", "spectral_tilt"),
}
# Kinds of evidence that line noise and lost packets fake (noise fills pauses and adds energy
# peaks, and lowers the harmonics-to-noise ratio): ignored while the line is noisier than it
# was during the baseline.
NOISE_SENSITIVE_GROUPS = ("tempo", "voice")


@dataclass(frozen=True, slots=True)
class LexicalCues:
    """What nlu heard in the turn: complaint intent, a stop request, a repeat request
    ("what?", "say again"), profanity."""

    complaint: bool = False
    stop: bool = False
    repeat: bool = False
    profanity: bool = False


@dataclass(frozen=True, slots=True)
class TurnTaking:
    """How the customer took the turn: seconds from the end of the bot's prompt to the start of
    the answer (None when unknown or when they cut in), and whether they cut the bot off."""

    answer_latency_s: float | None = None
    barged_in: bool = False

    def __post_init__(self) -> None:
        latency = self.answer_latency_s
        if latency is not None and not (math.isfinite(latency) and latency >= 0.0):
            raise ValueError(f"answer_latency_s must be a finite number >= 0, got {latency!r}")


@dataclass(frozen=True, slots=True)
class AgitationReading:
    """One turn's result, to be logged with the turn."""

    score: float
    state: AgitationState
    z: dict[str, float]
    features: ProsodyFeatures
    cues: LexicalCues
    baseline_utterances: int


@dataclass(slots=True)
class _Baseline:
    values: dict[str, list[float]] = field(
        default_factory=lambda: {name: [] for name in ACOUSTIC_FEATURES}
    )
    rate_source: str | None = None
    noise_floors: list[float] = field(default_factory=list)
    log_latencies: list[float] = field(default_factory=list)
    utterances: int = 0


class AgitationTracker:
    """Tracks one call. Feed every customer utterance, in order, to `update`."""

    def __init__(self, settings: EmotionSettings | None = None) -> None:
        self._settings = settings or EmotionSettings()
        self._baseline = _Baseline()
        self._state: AgitationState = "calm"
        self._recent_repeats: deque[bool] = deque(maxlen=self._settings.repeat_window_turns)
        self._recent_barge_ins: deque[bool] = deque(maxlen=self._settings.repeat_window_turns)

    @property
    def state(self) -> AgitationState:
        return self._state

    def update(
        self,
        features: ProsodyFeatures,
        cues: LexicalCues | None = None,
        turn: TurnTaking | None = None,
    ) -> AgitationReading:
        """Score one utterance, move the hysteresis state and return the reading.

        Utterances join the baseline until it holds `baseline_utterances` voiced ones, but only
        while the call reads calm, so a caller who is upset from the start cannot teach the
        tracker that upset is normal. Until the first baseline utterance exists the acoustic
        z-scores are 0 and only lexical cues count. `turn` adds turn-taking evidence: answers
        quicker than the caller's own baseline, and cutting the bot off more than once lately.
        """
        cues = cues or LexicalCues()
        turn = turn or TurnTaking()
        self._recent_repeats.append(cues.repeat)
        self._recent_barge_ins.append(turn.barged_in)
        if not self._settings.enabled:
            return self._reading(0.0, {}, features, cues)
        z = self._z_scores(features) | self._latency_z(turn)
        score = self._score(z, cues, self._line_got_noisy(features))
        self._advance_state(score)
        if (
            self._state == "calm"
            and features.has_voice
            and self._baseline.utterances < self._settings.baseline_utterances
        ):
            self._add_to_baseline(features)
            if turn.answer_latency_s is not None:
                self._baseline.log_latencies.append(_log_latency(turn.answer_latency_s))
        return self._reading(score, z, features, cues)

    def _reading(
        self, score: float, z: dict[str, float], features: ProsodyFeatures, cues: LexicalCues
    ) -> AgitationReading:
        return AgitationReading(score, self._state, z, features, cues, self._baseline.utterances)

    def _z_scores(self, features: ProsodyFeatures) -> dict[str, float]:
        current = _feature_values(features)
        if features.rate_source != self._baseline.rate_source:
            # Words/s and energy peaks/s are different scales: only compare like with like.
            current.pop("speaking_rate", None)
        floors = self._settings.std_floors.model_dump()
        clip = self._settings.z_clip
        z: dict[str, float] = {}
        for name, value in current.items():
            history = self._baseline.values[name]
            if not history:
                continue
            spread = max(float(np.std(history, ddof=1)) if len(history) > 1 else 0.0, floors[name])
            z[name] = float(np.clip((value - float(np.mean(history))) / spread, -clip, clip))
        return z

    def _latency_z(self, turn: TurnTaking) -> dict[str, float]:
        history = self._baseline.log_latencies
        if turn.answer_latency_s is None or not history:
            return {}
        spread = max(
            float(np.std(history, ddof=1)) if len(history) > 1 else 0.0,
            self._settings.std_floors.answer_latency,
        )
        value = (_log_latency(turn.answer_latency_s) - float(np.mean(history))) / spread
        clip = self._settings.z_clip
        return {"answer_latency": float(np.clip(value, -clip, clip))}

    def _line_got_noisy(self, features: ProsodyFeatures) -> bool:
        floors = self._baseline.noise_floors
        if features.noise_floor_dbfs is None or not floors:
            return False
        return features.noise_floor_dbfs - float(np.mean(floors)) > self._settings.noisy_line_db

    def _score(self, z: dict[str, float], cues: LexicalCues, noisy_line: bool = False) -> float:
        weights = self._settings.weights
        total = weights.bias
        for group, names in FEATURE_GROUPS.items():
            if noisy_line and group in NOISE_SENSITIVE_GROUPS:
                continue
            cap = self._settings.loudness_cap if group == "loudness" else self._settings.group_cap
            share = sum(getattr(weights, name) * z[name] for name in names if name in z)
            total += min(cap, max(-cap, share))
        # Cutting the bot off once is ordinary; each further time in the recent turns adds up.
        turn_taking = weights.answer_latency * z.get("answer_latency", 0.0)
        turn_taking += weights.barge_in * max(0, sum(self._recent_barge_ins) - 1)
        cap = self._settings.group_cap
        total += min(cap, max(-cap, turn_taking))
        total += weights.complaint * cues.complaint + weights.stop * cues.stop
        total += weights.profanity * cues.profanity
        # One "what?" is ordinary; each further one in the recent turns adds up.
        total += weights.repeat * max(0, sum(self._recent_repeats) - 1)
        return 1.0 / (1.0 + math.exp(-total))

    def _advance_state(self, score: float) -> None:
        if self._state == "calm" and score >= self._settings.high:
            self._state = "agitated"
        elif self._state == "agitated" and score < self._settings.low:
            self._state = "calm"

    def _add_to_baseline(self, features: ProsodyFeatures) -> None:
        baseline = self._baseline
        if baseline.rate_source is None:
            baseline.rate_source = features.rate_source
        values = _feature_values(features)
        if features.rate_source != baseline.rate_source:
            values.pop("speaking_rate", None)
        for name, value in values.items():
            baseline.values[name].append(value)
        if features.noise_floor_dbfs is not None:
            baseline.noise_floors.append(features.noise_floor_dbfs)
        baseline.utterances += 1


def _log_latency(seconds: float) -> float:
    """Latency in log seconds (changes are relative), with 50 ms for an instant answer."""
    return math.log(max(seconds, _INSTANT_ANSWER_S))


def _feature_values(features: ProsodyFeatures) -> dict[str, float]:
    """The features on the scale they are compared on; rate in log so changes are relative."""
    raw = {
        "f0_median": features.f0_median_st,
        "f0_spread": features.f0_spread_st,
        "energy_median": features.energy_median_dbfs,
        "energy_spread": features.energy_spread_db,
        "speaking_rate": (math.log(features.speaking_rate) if features.speaking_rate else None),
        "pause_ratio": features.pause_ratio if features.has_voice else None,
        "f0_range": features.f0_range_st,
        "f0_slope": features.f0_slope_st_per_s,
        "articulation_rate": (
            math.log(features.articulation_rate) if features.articulation_rate else None
        ),
        "mean_pause": features.mean_pause_s if features.has_voice else None,
        "hnr": features.hnr_db,
        "spectral_tilt": features.spectral_tilt_db,
    }
    return {name: value for name, value in raw.items() if value is not None}
