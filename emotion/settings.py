"""Settings of the agitation detector (composed into the daemon's YAML by outdial/config.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StdFloors(BaseModel):
    """Smallest standard deviation assumed for each baseline feature.

    A baseline of two or three utterances can be nearly constant by chance; without a floor a
    tiny, ordinary change would give a huge z-score. The floors are roughly the utterance-to-
    utterance variation of one calm speaker.
    """

    model_config = ConfigDict(extra="forbid")

    f0_median: float = Field(1.5, gt=0, description="semitones")
    f0_spread: float = Field(1.5, gt=0, description="semitones")
    energy_median: float = Field(2.5, gt=0, description="dB")
    energy_spread: float = Field(2.5, gt=0, description="dB")
    speaking_rate: float = Field(0.15, gt=0, description="natural log of the rate")
    pause_ratio: float = Field(0.08, gt=0, description="fraction of the utterance")


class AgitationWeights(BaseModel):
    """Weights of the logistic agitation score: score = 1 / (1 + exp(-(bias + sum))).

    Acoustic weights multiply z-scores against the caller's own baseline (positive = a rise
    sounds more agitated). Lexical weights are added when the cue is present in the turn;
    `repeat` is added per repeat request beyond the first within the recent turns. A calm turn
    (all z near 0) scores about 0.05; one strong lexical cue alone stays below the default
    `high` threshold; a clear rise in pitch and loudness crosses it.

    The acoustic defaults were chosen on the "tune" half of the fixture speakers
    (tests/fixtures/emotion); pitch and loudness carry most of the signal, the energy-peak
    speaking rate less. Spreads and pause ratio are logged as z-scores but weigh 0: on the
    tuning half they did not separate calm from agitated turns.
    """

    model_config = ConfigDict(extra="forbid")

    bias: float = -3.0
    f0_median: float = 1.2
    f0_spread: float = 0.0
    energy_median: float = 0.8
    energy_spread: float = 0.0
    speaking_rate: float = 0.5
    pause_ratio: float = 0.0
    complaint: float = 1.5
    stop: float = 1.5
    repeat: float = 1.0
    profanity: float = 2.5


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
    std_floors: StdFloors = StdFloors()
    weights: AgitationWeights = AgitationWeights()

    @model_validator(mode="after")
    def _low_below_high(self) -> EmotionSettings:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high}) for hysteresis")
        return self
