"""Settings of the agitation detector (composed into the daemon's YAML by outdial/config.py)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StdFloors(BaseModel):
    """Smallest standard deviation assumed for each baseline feature.

    A baseline of two or three utterances can be nearly constant by chance; without a floor a
    tiny, ordinary change would give a huge z-score. The floors are roughly the utterance-to-
    utterance variation of one calm speaker. The speaking-rate floor is 0.25 (about 28 %) since
    the recent turns' mean counts (`sustain_turns`): energy-peak rates of one calm speaker's
    different sentences vary that much, and at 0.15 a louder or faster call plus a quicker
    sentence and a slightly higher melody could add up to a transfer (chosen on the tune split
    of bench/emotion_phone.py with the behaviour tests of tests/emotion as constraints).
    """

    model_config = ConfigDict(extra="forbid")

    f0_median: float = Field(1.5, gt=0, description="semitones")
    f0_spread: float = Field(1.5, gt=0, description="semitones")
    energy_median: float = Field(2.5, gt=0, description="dB")
    energy_spread: float = Field(2.5, gt=0, description="dB")
    speaking_rate: float = Field(0.25, gt=0, description="natural log of the rate")
    pause_ratio: float = Field(0.08, gt=0, description="fraction of the utterance")
    f0_range: float = Field(1.5, gt=0, description="semitones")
    f0_slope: float = Field(3.0, gt=0, description="semitones per second")
    articulation_rate: float = Field(0.15, gt=0, description="natural log of the rate")
    mean_pause: float = Field(0.1, gt=0, description="seconds")
    hnr: float = Field(2.0, gt=0, description="dB")
    spectral_tilt: float = Field(2.0, gt=0, description="dB")
    answer_latency: float = Field(0.4, gt=0, description="natural log of the seconds")


class AgitationWeights(BaseModel):
    """Weights of the logistic agitation score: score = 1 / (1 + exp(-(bias + sum))).

    Acoustic weights multiply z-scores against the caller's own baseline (positive = a rise
    sounds more agitated). Lexical weights are added when the cue is present in the turn;
    `repeat` is added per repeat request beyond the first within the recent turns. A calm turn
    (all z near 0) scores about 0.05; one strong lexical cue alone stays below the default
    `high` threshold; a clear rise in pitch and loudness crosses it.

    The acoustic defaults were chosen on the "tune" half of the fixture speakers
    (tests/fixtures/emotion), with calm calls and loud-only / fast-only variants of them, and
    never on the telephone evaluation set (tests/emotion/phone_set.py, bench/emotion_phone.py).
    Pitch and loudness carry most of the signal, the rates less. The fixtures' agitation
    (resampling) widens no pitch range and adds no vocal effort, so `f0_range` and
    `spectral_tilt` (negative: effort flattens the tilt) get small weights in the direction
    the phonetics literature reports. Spreads, pauses and HNR are logged as z-scores but weigh
    0: on the tuning half they did not separate calm from agitated turns. Turn-taking
    (`answer_latency`, negative: quicker answers than the caller's baseline; `barge_in`, per
    cut-off beyond the first in the recent turns) has no labelled data here yet: its weights
    are modest guesses, capped like one kind of acoustic evidence.
    """

    model_config = ConfigDict(extra="forbid")

    bias: float = -4.0
    f0_median: float = 2.0
    f0_spread: float = 0.0
    energy_median: float = 1.0
    energy_spread: float = 0.0
    speaking_rate: float = 0.5
    pause_ratio: float = 0.0
    f0_range: float = 0.4
    f0_slope: float = 0.0
    articulation_rate: float = 0.3
    mean_pause: float = 0.0
    hnr: float = 0.0
    spectral_tilt: float = -0.2
    answer_latency: float = -0.8
    barge_in: float = 1.0
    complaint: float = 2.0
    stop: float = 2.0
    repeat: float = 1.0
    profanity: float = 3.0


class EmotionSettings(BaseModel):
    """Agitation detection for one call: baseline, score weights and hysteresis thresholds."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    baseline_utterances: int = Field(
        3, ge=1, le=20, description="voiced utterances that form the caller's calm baseline"
    )
    high: float = Field(
        0.7, gt=0, lt=1, description="score at or above which the call becomes agitated"
    )
    low: float = Field(0.45, gt=0, lt=1, description="score below which it is calm again")
    z_clip: float = Field(4.0, gt=0, description="|z| cap, so one wild feature cannot dominate")
    repeat_window_turns: int = Field(
        4, ge=1, le=20, description="recent turns in which repeat requests are counted"
    )
    group_cap: float = Field(
        3.5,
        gt=0,
        description="most one kind of evidence (pitch, loudness, tempo, voice) adds to the "
        "score's logit; below logit(high) - bias, so one kind alone never transfers",
    )
    loudness_cap: float = Field(
        1.0,
        gt=0,
        description="a lower cap for loudness, the least reliable kind (phone distance, "
        "automatic gain): with it a louder voice needs clear support from another kind; 1.0 "
        "since the recent turns' mean counts (`sustain_turns`): a louder call with a chance rise "
        "of the sentence melody transferred at 2.0 on the tune split",
    )
    noisy_line_db: float = Field(
        6.0,
        gt=0,
        description="rise of the line's noise floor over the baseline's beyond which tempo and "
        "voice-quality evidence is ignored (noise fakes both)",
    )
    sustain_turns: int = Field(
        2,
        ge=1,
        le=10,
        description="recent turns after the baseline whose mean z-scores (scaled up for the "
        "smaller wobble of a mean) are scored when that is stronger than the turn alone: "
        "impatience that holds counts more than one turn's wobble; 1 scores each turn alone",
    )
    speaker_rise_st: float = Field(
        10.0,
        gt=0,
        description="a pitch median this many semitones or more above the baseline's is not "
        "impatience (which raises it by a few): an octave error of the tracker (folded back) or "
        "another person on the phone (a new baseline)",
    )
    speaker_drop_st: float = Field(
        5.0,
        gt=0,
        description="a pitch median this many semitones or more below the baseline's: "
        "impatience never lowers the voice that far, so an octave error or another person",
    )
    octave_tolerance_st: float = Field(
        2.0, gt=0, lt=6, description="how near 12 semitones a jump must be to be an octave error"
    )
    octave_envelope_distance: float = Field(
        3.5,
        gt=0,
        description="an octave jump counts as the tracker's error (folded back) only when the "
        "spectral envelope is at most this far from the baseline's (in typical spreads); a man "
        "and a woman are often about an octave apart, so otherwise it is another speaker",
    )
    std_floors: StdFloors = StdFloors()
    weights: AgitationWeights = AgitationWeights()

    @model_validator(mode="after")
    def _low_below_high(self) -> EmotionSettings:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high}) for hysteresis")
        needed = math.log(self.high / (1.0 - self.high)) - self.weights.bias
        if max(self.group_cap, self.loudness_cap) >= needed:
            raise ValueError(
                f"group_cap ({self.group_cap}) and loudness_cap ({self.loudness_cap}) must be "
                f"below {needed:.2f} (logit(high) - bias), "
                "or one kind of evidence alone (e.g. loudness) could make a call agitated"
            )
        return self
