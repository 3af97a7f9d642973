"""Per-call agitation score: prosody against the caller's own calm baseline, plus lexical cues.

People differ far more from each other than one person does from calm to upset, so every
acoustic feature is compared with the first few utterances of the same call (z-scores with a
floor on the spread). The z-scores are summed per kind of evidence (pitch, loudness, tempo,
voice quality, turn-taking), each kind capped so that none alone can make a call agitated;
with the lexical cues from nlu they form a logistic of a weighted sum (weights in
`AgitationWeights`), and a two-threshold hysteresis turns the score into a state that does not
flap from turn to turn. While the line is noisier than during the baseline, tempo and voice
quality are ignored: noise fakes both.

Two things that are not impatience move the pitch a long way: the pitch tracker locking on a
harmonic (a low voice whose fundamental the line removed) and another person taking the phone.
A pitch median whole octaves from the baseline's is folded back (one octave only when the
voice's spectral envelope is close to the baseline's: a man and a woman are often an octave
apart too). A pitch median still far above the baseline's (`speaker_rise_st`) or clearly below
it (`speaker_drop_st`) is another speaker: the baseline starts again from that utterance. (The
envelope of one 3 s utterance depends on what was said about as much as on who said it, so it
only tells an octave error from another voice.) Impatience that persists over turns counts
through the mean z-scores of the last `sustain_turns` turns after the baseline (`_sustained`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
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
# Typical utterance-to-utterance spread (dB) of each mel-cepstral coefficient of one speaker,
# pooled over the calm baselines of the tune split of bench/emotion_phone.py: it puts the
# coefficients on one scale for the speaker-change distance.
ENVELOPE_SPREAD_DB = np.array([4.2, 6.5, 5.1, 3.4, 3.3, 3.0, 2.5, 2.2, 2.0, 1.5, 1.6, 1.4])
_OCTAVE_ST = 12.0


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
    """One turn's result, to be logged with the turn: `features` as scored (pitch median moved
    back by the octaves of a tracker error), `speaker_changed` when this turn started a new
    baseline because another voice took the phone."""

    score: float
    state: AgitationState
    z: dict[str, float]
    features: ProsodyFeatures
    cues: LexicalCues
    baseline_utterances: int
    speaker_changed: bool = False


@dataclass(slots=True)
class _Baseline:
    values: dict[str, list[float]] = field(
        default_factory=lambda: {name: [] for name in ACOUSTIC_FEATURES}
    )
    rate_source: str | None = None
    noise_floors: list[float] = field(default_factory=list)
    log_latencies: list[float] = field(default_factory=list)
    envelopes: list[tuple[float, ...]] = field(default_factory=list)
    utterances: int = 0


class AgitationTracker:
    """Tracks one call. Feed every customer utterance, in order, to `update`."""

    def __init__(self, settings: EmotionSettings | None = None) -> None:
        self._settings = settings or EmotionSettings()
        self._baseline = _Baseline()
        self._state: AgitationState = "calm"
        self._recent_repeats: deque[bool] = deque(maxlen=self._settings.repeat_window_turns)
        self._recent_barge_ins: deque[bool] = deque(maxlen=self._settings.repeat_window_turns)
        self._recent_z: deque[dict[str, float]] = deque(maxlen=self._settings.sustain_turns)

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
        features = self._fold_octave_error(features)
        speaker_changed = self._speaker_changed(features)
        if speaker_changed:
            self._baseline = _Baseline()
            self._recent_z.clear()
        z = self._z_scores(features) | self._latency_z(turn)
        if z and self._baseline.utterances >= self._settings.baseline_utterances:
            self._recent_z.append(z)
        # Persistence helps a calm call become agitated; calming down is judged turn by turn.
        evidence = self._sustained(z) if self._state == "calm" else z
        score = self._score(evidence, cues, self._line_got_noisy(features))
        self._advance_state(score)
        if (
            self._state == "calm"
            and features.has_voice
            and self._baseline.utterances < self._settings.baseline_utterances
        ):
            self._add_to_baseline(features)
            if turn.answer_latency_s is not None:
                self._baseline.log_latencies.append(_log_latency(turn.answer_latency_s))
        return self._reading(score, z, features, cues, speaker_changed)

    def _reading(
        self,
        score: float,
        z: dict[str, float],
        features: ProsodyFeatures,
        cues: LexicalCues,
        speaker_changed: bool = False,
    ) -> AgitationReading:
        return AgitationReading(
            score, self._state, z, features, cues, self._baseline.utterances, speaker_changed
        )

    def _pitch_offset(self, features: ProsodyFeatures) -> float | None:
        """The utterance's pitch median less the baseline's mean, in semitones."""
        history = self._baseline.values["f0_median"]
        if features.f0_median_st is None or not history:
            return None
        return features.f0_median_st - float(np.mean(history))

    def _envelope_distance(self, features: ProsodyFeatures) -> float | None:
        """How far the voice's spectral envelope is from the baseline's, in typical spreads."""
        history = self._baseline.envelopes
        if features.spectral_envelope is None or not history:
            return None
        offset = np.asarray(features.spectral_envelope) - np.mean(history, axis=0)
        return float(np.linalg.norm(offset / ENVELOPE_SPREAD_DB))

    def _fold_octave_error(self, features: ProsodyFeatures) -> ProsodyFeatures:
        """The features with the pitch median moved by whole octaves to the baseline's, when it
        sits that many octaves off: the tracker locked on a harmonic for most of the utterance.

        Two octaves or more off (18 semitones or more) is always the tracker, and the rest
        after folding is scored (the baseline itself may be the one read high). One octave off
        is only when it is within `octave_tolerance_st` of 12 and the spectral envelope is the
        baseline's: a man and a woman are often an octave apart too. Range, spread and slope
        are differences, unchanged by a whole-utterance octave.
        """
        offset = self._pitch_offset(features)
        if offset is None or features.f0_median_st is None:
            return features
        octaves = round(offset / _OCTAVE_ST)
        if octaves == 0:
            return features
        if abs(octaves) == 1:
            distance = self._envelope_distance(features)
            if (
                abs(offset - octaves * _OCTAVE_ST) > self._settings.octave_tolerance_st
                or distance is None
                or distance > self._settings.octave_envelope_distance
            ):
                return features
        return replace(features, f0_median_st=features.f0_median_st - octaves * _OCTAVE_ST)

    def _speaker_changed(self, features: ProsodyFeatures) -> bool:
        """Another voice: a pitch jump impatience does not make (far up, or down at all) and
        that was not an octave error of the tracker (those are folded back first)."""
        offset = self._pitch_offset(features)
        settings = self._settings
        return offset is not None and not (
            -settings.speaker_drop_st < offset < settings.speaker_rise_st
        )

    def _sustained(self, z: dict[str, float]) -> dict[str, float]:
        """This turn's z-scores, or the recent turns' mean when it is stronger evidence.

        The mean of n turns wobbles less than one turn, but all of them are measured against the
        same m-utterance baseline, whose own error does not average out: against one turn's the
        mean's spread shrinks by sqrt((1/n + 1/m) / (1 + 1/m)), and it is scaled up by that
        much. A small rise that holds over several turns then counts like a larger one-off rise.
        """
        turns = len(self._recent_z)
        if turns < 2 or not z:
            return z
        baseline = max(1, self._baseline.utterances)
        gain = math.sqrt((1.0 + 1.0 / baseline) / (1.0 / turns + 1.0 / baseline))
        clip = self._settings.z_clip
        sustained = {
            name: float(
                np.clip(
                    gain * np.mean([recent.get(name, 0.0) for recent in self._recent_z]),
                    -clip,
                    clip,
                )
            )
            for name in z
        }
        return sustained if self._logit(sustained) > self._logit(z) else z

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
        total = weights.bias + self._logit(z, noisy_line)
        total += weights.complaint * cues.complaint + weights.stop * cues.stop
        total += weights.profanity * cues.profanity
        # One "what?" is ordinary; each further one in the recent turns adds up.
        total += weights.repeat * max(0, sum(self._recent_repeats) - 1)
        return 1.0 / (1.0 + math.exp(-total))

    def _logit(self, z: dict[str, float], noisy_line: bool = False) -> float:
        """The acoustic and turn-taking share of the score's logit, each kind capped."""
        weights = self._settings.weights
        total = 0.0
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
        return total + min(cap, max(-cap, turn_taking))

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
        if features.spectral_envelope is not None:
            baseline.envelopes.append(features.spectral_envelope)
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
