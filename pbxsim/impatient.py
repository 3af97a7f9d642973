"""Impatient customers: they answer every question, grow audibly more agitated with each long
prompt they sit through, and hang up once their patience is spent.

What the customer knows comes only from the wire, as a person on the phone knows it:
- how long each bot turn lasts (the bot's audio, a turn ending at a `bot_silence_gap` pause);
  a turn longer than `tolerance_s` costs the excess from the `budget_s` of patience, and raises
  the voice one level (the `levels`: pitch up, louder, faster, made by pbxsim.voicefx on their
  own recordings: the daemon has only the audio to go by);
- known phrases, recognised by their sound as a person recognises a familiar phrase, with no
  speech recognition: `apology` and `offer` are recordings of the bot's apology and offer of
  a person as the bot speaks them (its voice, its pace), compared with what the bot sends
  (normalised cross-correlation of their first 0.4 s, >= 0.8). A bot turn that opens with the
  apology gives `apology_relief_s` of patience back; after hearing the offer, a customer who
  has spent `takes_offer_at` of their budget presses `offer_dtmf` instead of answering. The
  customer understands no other words: a shorter prompt helps only by being short.
A transfer ends the bot's part of the call: the customer is with a person and does not hang up.
Once the budget is spent the customer hangs up at once, in the middle of a prompt if need be.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.signal import fftconvolve

from pbxsim.records import Said

if TYPE_CHECKING:
    from pbxsim.call import Call

SIM_RATE = 8000  # pbxsim.scenario.SIM_RATE (that module imports this one)


class VoiceLevel(BaseModel):
    """One step of agitation in the customer's voice (see pbxsim.voicefx.agitate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pitch_semitones: float = Field(ge=-12, le=12)
    gain_db: float = Field(ge=-30, le=30)
    tempo: float = Field(ge=0.5, le=2.0)


# How the voice sounds after 1, 2, 3... long prompts (the last level holds after that).
DEFAULT_LEVELS = (
    VoiceLevel(pitch_semitones=2.5, gain_db=5.0, tempo=1.12),
    VoiceLevel(pitch_semitones=4.0, gain_db=8.0, tempo=1.2),
    VoiceLevel(pitch_semitones=5.5, gain_db=10.0, tempo=1.3),
)
SOUND_MATCH = 0.8  # normalised cross-correlation that counts as hearing a known phrase
_HEAD_S = 0.4
_APOLOGY_WITHIN_S = 2.0
_WATCH_S = 0.05  # how often the customer checks their patience while the bot talks


class Impatience(BaseModel):
    """A customer kind: `answers` (WAV files, relative to the scenario) said in turn, one
    after each bot turn, with the patience rules of this module."""

    model_config = ConfigDict(extra="forbid")
    answers: list[str] = Field(min_length=1)
    tolerance_s: float = Field(5.0, gt=0, description="a bot turn this long costs nothing")
    budget_s: float = Field(12.0, gt=0, description="seconds of long-windedness endured")
    grace_turns: int = Field(1, ge=0, description="first bot turns forgiven (the opening)")
    think_s: float = Field(0.4, ge=0, description="pause before each answer")
    levels: list[VoiceLevel] = Field(default_factory=lambda: list(DEFAULT_LEVELS), min_length=1)
    apology: str | None = Field(None, description="WAV of the bot's apology as it sounds")
    apology_relief_s: float = Field(6.0, ge=0)
    offer: str | None = Field(None, description="WAV of the bot's offer of a person")
    offer_dtmf: str | None = Field(None, pattern=r"^[0-9*#]$", description="key it asks for")
    takes_offer_at: float = Field(
        0.5, ge=0, le=1, description="share of the budget spent from which they take it"
    )

    @model_validator(mode="after")
    def _offer_has_its_key(self) -> Impatience:
        if (self.offer is None) != (self.offer_dtmf is None):
            raise ValueError("offer and offer_dtmf go together")
        return self


@dataclass
class Patience:
    """What the customer has endured so far."""

    spent_s: float = 0.0
    level: int = 0  # long prompts heard: the voice's agitation level
    turns: list[float] = field(default_factory=list)  # each bot turn's length, as heard
    apologies: int = 0
    offered: bool = False  # the offer of a person was heard
    took_offer: bool = False
    gave_up: bool = False


# Each impatient call's patience by its customer channel (CallRecord.channel), for benches and
# tests to read after the call; one small entry per impatient call this process placed.
PATIENCE: dict[str, Patience] = {}


class ImpatientCustomer:
    def __init__(self, call: Call, rules: Impatience) -> None:
        self.call = call
        self.rules = rules
        self.patience = Patience()
        base = call.sim.scenario.base_dir
        self._answers = [base / a for a in rules.answers]
        self._apology = _sound_head(base / rules.apology) if rules.apology else None
        self._offer = _sound_head(base / rules.offer) if rules.offer else None
        PATIENCE[call.record.channel] = self.patience

    async def run(self) -> None:
        call = self.call
        await call.sleep(call.customer.answer_delay)
        for turn in range(len(self._answers) + 1):
            if not await self._hear_turn(turn >= self.rules.grace_turns):
                return
            if turn == len(self._answers):
                break
            await call.sleep(self.rules.think_s)
            if call.customer_gone.is_set():
                return
            if self._takes_the_offer():
                self._press_for_a_person()
            else:
                await self._answer(turn)
        # Everything answered: they wait for the bot to finish the call.
        await call.until_bot_unheard(asyncio.Event().wait())

    async def _hear_turn(self, counts: bool) -> bool:
        """Listen to one bot turn; False when the call is over (hung up or handed over)."""
        ears = self.call.customer_leg.ears
        started = await ears.until_bot_starts()
        if not self._on_the_line():
            return False
        while ears.speaking() and self._on_the_line():
            if counts and self._exhausted(time.monotonic() - started):
                self._give_up()
                return False
            await asyncio.sleep(_WATCH_S)
        length = max(0.0, ears.last_speech - started)
        self.patience.turns.append(length)
        if counts:
            self._pay(length, started)
        return self._on_the_line()

    def _on_the_line(self) -> bool:
        """The bot can still be heard: no hang-up, no hand-over to a person."""
        call = self.call
        return (
            call.media is not None
            and not call.customer_gone.is_set()
            and not call.bot_finished.is_set()
        )

    def _exhausted(self, talking_s: float) -> bool:
        over = max(0.0, talking_s - self.rules.tolerance_s)
        return self.patience.spent_s + over > self.rules.budget_s

    def _give_up(self) -> None:
        self.patience.gave_up = True
        self.call.customer_leg._app("Hangup", "")
        self.call.customer_hangs_up()

    def _pay(self, length: float, started: float) -> None:
        patience = self.patience
        over = max(0.0, length - self.rules.tolerance_s)
        patience.spent_s += over
        if over > 0:
            patience.level += 1
        # What the turn said, by its sound: the apology opens a turn, the offer is anywhere.
        since = started - 0.2  # the speech's soft onset comes before its first loud frame
        frames = [f for f in self.call.record.bot_frames if f.t >= since]
        heard = np.frombuffer(b"".join(f.payload for f in frames), "<i2").astype(np.float32)
        opening = heard[: int(_APOLOGY_WITHIN_S * SIM_RATE)]
        if self._apology is not None and _match(opening, self._apology) >= SOUND_MATCH:
            patience.apologies += 1
            patience.spent_s = max(0.0, patience.spent_s - self.rules.apology_relief_s)
        if self._offer is not None and _match(heard, self._offer) >= SOUND_MATCH:
            patience.offered = True

    def _takes_the_offer(self) -> bool:
        patience = self.patience
        share = patience.spent_s / self.rules.budget_s
        return patience.offered and not patience.took_offer and share >= self.rules.takes_offer_at

    def _press_for_a_person(self) -> None:
        assert self.rules.offer_dtmf is not None
        self.patience.took_offer = True
        leg = self.call.customer_leg
        leg._app("SendDTMF", self.rules.offer_dtmf)
        leg.send_dtmf(self.rules.offer_dtmf)

    async def _answer(self, turn: int) -> None:
        call, leg = self.call, self.call.customer_leg
        level = min(self.patience.level, len(self.rules.levels))
        agitation = self.rules.levels[level - 1] if level else None
        path = self._answers[turn]
        clip = await asyncio.to_thread(voiced_clip, path, agitation, leg.mouth.media.rate)
        leg._app("Playback", path.stem)
        said = Said(f"impatient/{level}")
        call.record.said.append(said)
        await leg.mouth.play(clip, said)


@cache
def voiced_clip(path: Path, agitation: VoiceLevel | None, rate: int) -> bytes:
    """The recording at the line's rate, its voice agitated to `agitation` (cached: the same
    answer at the same level is made once per process)."""
    from pbxsim.scenario import read_wav, to_sim_rate  # noqa: PLC0415 - it imports this module
    from pbxsim.voicefx import agitate  # noqa: PLC0415 - librosa only when customers agitate

    pcm, source_rate = read_wav(path)
    pcm = to_sim_rate(pcm, source_rate)
    if agitation is not None:
        pcm = agitate(
            pcm,
            SIM_RATE,
            pitch_semitones=agitation.pitch_semitones,
            gain_db=agitation.gain_db,
            tempo=agitation.tempo,
        )
    out = pcm.astype("<i2").tobytes()
    if rate != SIM_RATE:
        from pbxsim.audio import resample_bytes  # noqa: PLC0415

        out = resample_bytes(out, SIM_RATE, rate)
    return out


def _sound_head(path: Path) -> np.ndarray:
    """The first 0.4 s of a known phrase's recording, from its first voiced sample."""
    from pbxsim.scenario import read_wav, to_sim_rate  # noqa: PLC0415 - it imports this module

    pcm, rate = read_wav(path)
    pcm = to_sim_rate(pcm, rate).astype(np.float32)
    voiced = np.flatnonzero(np.abs(pcm) >= 0.01 * 32768)
    start = voiced[0] if voiced.size else 0
    return pcm[start : start + int(_HEAD_S * SIM_RATE)]


def _match(window: np.ndarray, head: np.ndarray) -> float:
    """The best normalised cross-correlation of `head` at any lag within `window` where the
    window carries speech (at least a tenth of the head's energy: over near-silence the
    FFT's rounding alone would make the ratio large)."""
    if window.size < head.size or not head.any():
        return 0.0
    window, head = window.astype(np.float64), head.astype(np.float64)
    head_energy = float(head @ head)
    dots = fftconvolve(window, head[::-1], mode="valid")
    energy = fftconvolve(window * window, np.ones(head.size), mode="valid")
    voiced = energy >= 0.1 * head_energy
    if not voiced.any():
        return 0.0
    return float(np.max(dots[voiced] / np.sqrt(energy[voiced] * head_energy)))
