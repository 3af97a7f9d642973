"""The telephone evaluation set: impatient and confounder calls made differently from tuning.

The detector's weights were chosen on tests/fixtures/emotion (espeak-ng voices, agitation made
by resampling and a phase vocoder, `pbxsim.voicefx.agitate`). This set is made otherwise:
- voices from other generators (Piper, flite) and espeak-ng voices the fixtures do not use;
- tempo from each engine's own duration control, pitch level and range with Praat's PSOLA and
  vocal effort as a flatter spectral tilt (`pbxsim.voicefx.raise_voice`);
- every utterance through a telephone line (`pbxsim.phoneline`): band, µ-law or A-law, line
  noise and concealed packet loss, the same line for the whole call;
- confounders that are not impatient: only louder, only faster, a line that turns noisy, and
  another person taking the phone.
A call is three calm utterances (the baseline) and three test utterances. Calm utterances vary
a little too (pitch, range, level and tempo jitter), as one person's do.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soxr

from pbxsim.phoneline import LineSettings, through_line
from pbxsim.voicefx import raise_voice

RATE = 8000
BASELINE_TURNS = 3
TEST_TURNS = 3

SENTENCES = (
    "Hello, who is this?",
    "Yes, speaking. What is it about?",
    "I already paid that bill last month.",
    "Can you call me back later today?",
    "I never signed up for anything like that.",
    "How long is this going to take?",
    "My account number is on the letter somewhere.",
    "No, that is not my address any more.",
    "Which company did you say you were from?",
    "I only have a couple of minutes right now.",
    "Just tell me what you need from me.",
    "We talked about this on Monday already.",
)


@dataclass(frozen=True, slots=True)
class Impatience:
    """How impatient a test turn sounds: pitch up, wider pitch range, more effort, faster."""

    cents: float
    range_factor: float
    effort_db: float
    tempo: float


STRENGTHS: dict[str, Impatience] = {
    "barely": Impatience(cents=75, range_factor=1.1, effort_db=1.0, tempo=1.04),
    "mild": Impatience(cents=150, range_factor=1.2, effort_db=2.0, tempo=1.08),
    "moderate": Impatience(cents=250, range_factor=1.3, effort_db=3.0, tempo=1.12),
    "clear": Impatience(cents=400, range_factor=1.5, effort_db=5.0, tempo=1.2),
}
CONFOUNDERS = ("loud", "fast", "noisy", "speaker")


@dataclass(frozen=True, slots=True)
class Voice:
    generator: str  # "piper", "flite" or "espeak"
    name: str

    @property
    def id(self) -> str:
        return f"{self.generator}:{self.name}"


@dataclass(frozen=True, slots=True)
class PhoneCall:
    """One simulated call: `kind` is "calm", "impatient" or a confounder name."""

    voice: Voice
    kind: str
    strength: str | None
    baseline: tuple[np.ndarray, ...]
    turns: tuple[np.ndarray, ...]

    @property
    def impatient(self) -> bool:
        return self.kind == "impatient"


# Split by generator and speaker: espeak-ng voices (the fixtures' generator, other voices) may
# be used to choose settings; Piper and flite voices are only ever scored.
TUNE_VOICES = (
    Voice("espeak", "en-us+m7"),
    Voice("espeak", "en-gb-x-rp+f5"),
    Voice("espeak", "en-gb-x-gbclan+m6"),
    Voice("espeak", "en-us-nyc+f1"),
)
HELD_OUT_VOICES = (
    Voice("piper", "joe"),
    Voice("flite", "kal"),
    Voice("flite", "awb"),
    Voice("flite", "rms"),
    Voice("flite", "slt"),
)


def available(voice: Voice) -> bool:
    """Piper ships with the project; flite and espeak-ng are Debian packages the bench needs."""
    command = {"piper": None, "flite": "flite", "espeak": "espeak-ng"}[voice.generator]
    return command is None or shutil.which(command) is not None


# How a voice says a text at a tempo (`speak`, or a bench's variant of it), int16 at 16 kHz.
Speaker = Callable[[Voice, str, float], np.ndarray]


def speak(voice: Voice, text: str, tempo: float = 1.0) -> np.ndarray:
    """`text` in `voice` at the engine's own `tempo` (>1 faster), as int16 at 16 kHz."""
    if voice.generator == "piper":
        return _piper(text, tempo)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        if voice.generator == "flite":
            command = ["flite", "-voice", voice.name, "-t", text, "-o", str(path)]
            command += ["--setf", f"duration_stretch={1.0 / tempo:.3f}"]
        else:
            words_per_minute = round(165 * tempo)
            command = ["espeak-ng", "-v", voice.name, "-s", str(words_per_minute)]
            command += ["-w", str(path), text]
        subprocess.run(command, check=True, capture_output=True)
        return _read_wav_16k(path)


def _piper(text: str, tempo: float) -> np.ndarray:
    from piper import SynthesisConfig

    voice = _piper_voice()
    chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(length_scale=1.0 / tempo)))
    audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
    resampled = soxr.resample(audio, chunks[0].sample_rate, 16000)
    return np.round(np.clip(resampled, -1, 1) * 32767).astype(np.int16)


@cache
def _piper_voice():  # noqa: ANN202 - piper's PiperVoice, imported lazily
    from piper import PiperVoice

    from voice.tts import default_voice_paths

    model, config = default_voice_paths()
    return PiperVoice.load(model, config_path=config)


def _read_wav_16k(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as source:
        rate = source.getframerate()
        pcm = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
    audio = pcm.astype(np.float64) / 32768.0
    if rate != 16000:
        audio = soxr.resample(audio, rate, 16000)
    return np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)


def _trim(pcm: np.ndarray, rate: int = 16000) -> np.ndarray:
    """Leave 150 ms of silence each side, as the endpointer would."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    if loud.size == 0:
        return pcm
    pad = int(0.15 * rate)
    return pcm[max(0, loud[0] - pad) : loud[-1] + pad]


class CallBuilder:
    """Makes the calls of one voice; `rng` fixes every random choice."""

    def __init__(
        self,
        voice: Voice,
        others: tuple[Voice, ...],
        rng: np.random.Generator,
        speaker: Speaker = speak,
    ) -> None:
        self.voice = voice
        self.others = others
        self.rng = rng
        self.speaker = speaker

    def call(self, kind: str, strength: str | None = None) -> PhoneCall:
        rng = self.rng
        texts = [SENTENCES[i] for i in rng.permutation(len(SENTENCES))]
        line = LineSettings(
            codec=str(rng.choice(["ulaw", "alaw"])),  # type: ignore[arg-type]
            noise_dbfs=float(rng.uniform(-64, -52)),
            loss=float(rng.uniform(0.0, 0.02)),
        )
        baseline = tuple(
            self._utterance(self.voice, text, line, self._calm()) for text in texts[:BASELINE_TURNS]
        )
        render = self._renderer(kind, strength, line)
        turns = tuple(render(text) for text in texts[BASELINE_TURNS : BASELINE_TURNS + TEST_TURNS])
        return PhoneCall(self.voice, kind, strength, baseline, turns)

    def _renderer(
        self, kind: str, strength: str | None, line: LineSettings
    ) -> Callable[[str], np.ndarray]:
        voice = self.voice
        if kind == "calm":
            return lambda text: self._utterance(voice, text, line, self._calm())
        if kind == "impatient":
            level = STRENGTHS[strength or ""]
            return lambda text: self._utterance(voice, text, line, self._calm(level))
        if kind == "loud":
            gain = float(self.rng.uniform(4.0, 8.0))
            return lambda text: self._utterance(voice, text, line, self._calm(), gain_db=gain)
        if kind == "fast":
            tempo = float(self.rng.uniform(1.15, 1.3))
            return lambda text: self._utterance(voice, text, line, self._calm(), tempo=tempo)
        if kind == "noisy":
            noisy = LineSettings(
                codec=line.codec,
                noise_dbfs=float(self.rng.uniform(-44, -36)),
                loss=float(self.rng.uniform(0.04, 0.1)),
            )
            return lambda text: self._utterance(voice, text, noisy, self._calm())
        if kind == "speaker":
            other = self.others[int(self.rng.integers(len(self.others)))]
            return lambda text: self._utterance(other, text, line, self._calm())
        raise ValueError(f"unknown call kind {kind!r}")

    def _calm(self, level: Impatience | None = None) -> Impatience:
        """One person's ordinary variation, plus `level` of impatience if given."""
        rng = self.rng
        base = level or Impatience(0.0, 1.0, 0.0, 1.0)
        return Impatience(
            cents=base.cents + float(rng.uniform(-40, 40)),
            range_factor=base.range_factor * float(rng.uniform(0.92, 1.08)),
            effort_db=base.effort_db + float(rng.uniform(-1.0, 1.0)),
            tempo=base.tempo * float(rng.uniform(0.96, 1.04)),
        )

    def _utterance(
        self,
        voice: Voice,
        text: str,
        line: LineSettings,
        how: Impatience,
        *,
        gain_db: float = 0.0,
        tempo: float = 1.0,
    ) -> np.ndarray:
        raw = _trim(self.speaker(voice, text, how.tempo * tempo))
        return render(raw, 16000, how, line, self.rng, gain_db=gain_db)


def render(
    raw: np.ndarray,
    rate: int,
    how: Impatience,
    line: LineSettings,
    rng: np.random.Generator,
    *,
    gain_db: float = 0.0,
    psola_tempo: float = 1.0,
) -> np.ndarray:
    """One utterance as the far end hears it: pitch, range and effort per `how`, plain gain
    (the phone held closer), `psola_tempo` for audio whose engine set no tempo, then the line."""
    # 6 dB of headroom for the effort.
    louder = raw.astype(np.float64) * 10.0 ** ((gain_db - 6.0) / 20.0)
    shaped = raise_voice(
        np.round(louder).astype(np.int16),
        rate,
        cents=how.cents,
        range_factor=how.range_factor,
        effort_db=how.effort_db,
        tempo=psola_tempo,
    )
    return through_line(shaped, rate, line, rng)


def build_calls(
    voices: tuple[Voice, ...],
    seed: int,
    per_strength: int = 2,
    calm: int = 4,
    per_confounder: int = 2,
    speaker: Speaker = speak,
) -> list[PhoneCall]:
    """Every voice's calls: impatient at each strength, calm, and each confounder."""
    calls: list[PhoneCall] = []
    for voice in voices:
        others = tuple(v for v in voices if v != voice) or (voice,)
        rng = np.random.default_rng([seed, zlib.crc32(voice.id.encode())])
        builder = CallBuilder(voice, others, rng, speaker)
        for strength in STRENGTHS:
            calls += [builder.call("impatient", strength) for _ in range(per_strength)]
        calls += [builder.call("calm") for _ in range(calm)]
        for kind in CONFOUNDERS:
            calls += [builder.call(kind) for _ in range(per_confounder)]
    return calls
