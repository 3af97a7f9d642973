"""Simulated customers: who answers, what they say and when, loaded from a scenario YAML."""

from __future__ import annotations

import random
import wave
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pbxsim.impatient import Impatience

Outcome = Literal["answer", "busy", "no_answer", "congestion", "machine"]
AmdStatus = Literal["HUMAN", "MACHINE", "NOTSURE", "HANGUP"]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, line and field."""


class Agitation(BaseModel):
    """Raise pitch, energy and tempo (see pbxsim.voicefx.agitate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # hashable: a key of the audio bank
    pitch_semitones: float = Field(2.0, ge=-12, le=12)
    gain_db: float = Field(6.0, ge=-30, le=30)
    tempo: float = Field(1.15, ge=0.5, le=2.0)


# Audio kinds Asterisk's AudioSocket defines (include/asterisk/res_audiosocket.h) and their rates.
AUDIO_KIND_RATES = {
    "slin": 8000,
    "slin12": 12000,
    "slin16": 16000,
    "slin24": 24000,
    "slin32": 32000,
    "slin44": 44100,
    "slin48": 48000,
    "slin96": 96000,
    "slin192": 192000,
}
AudioKind = Literal[
    "slin", "slin12", "slin16", "slin24", "slin32", "slin44", "slin48", "slin96", "slin192"
]


class Media(BaseModel):
    """How the customer's audio reaches the bot (see docs/pbxsim.md, "Media").

    `framing: asterisk` sends 20 ms frames, the last frame of every utterance partial, exactly
    as a real Asterisk frames a file playback; `random` sends messages of any even length
    (a transcoding or jittery source) that still keep real time. `kind` picks the audio
    kind (`slin` is 0x10; the wideband ones are what `chan_audiosocket` sends on a wideband
    codec). `line: local` sends nothing while the customer is silent (a Local channel, as
    captured); `trunk` sends low-level line noise all the time, as a SIP trunk does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    framing: Literal["asterisk", "random"] = "asterisk"
    kind: AudioKind = "slin"
    line: Literal["local", "trunk"] = "local"
    noise_dbfs: float = Field(-60.0, le=-20.0, description="trunk line noise level")
    echo_db: float | None = Field(
        None, le=-6.0, description="the bot's own audio echoed back at this level (trunk only)"
    )

    @model_validator(mode="after")
    def _echo_on_a_trunk(self) -> Media:
        # An echo is heard all the time, so the line must send all the time (a trunk), and at
        # the bot's own rate (AudioSocket's slin).
        if self.echo_db is not None and (self.line != "trunk" or self.kind != "slin"):
            raise ValueError("echo_db needs line: trunk and kind: slin")
        return self

    @property
    def rate(self) -> int:
        return AUDIO_KIND_RATES[self.kind]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agitation: Agitation | None = None


class _Speaking(_Step):
    # DTMF pressed while this utterance is playing, `dtmf_at` seconds into it (a customer
    # who talks and presses a key at once: DTMF frames between the audio frames).
    dtmf: str | None = Field(None, pattern=r"^[0-9A-D*#]+$")
    dtmf_at: float = Field(0.0, ge=0)
    # A label for this utterance in CallRecord.said (what the wire measurements group by).
    mark: str | None = Field(None, min_length=1, max_length=40)


class SayStep(_Speaking):
    say: str = Field(description="WAV file (any rate, mono or stereo), relative to the scenario")


class SayTextStep(_Speaking):
    say_text: str = Field(min_length=1)


class WaitForBotStep(_Step):
    wait_for_bot: Literal[True]


class BargeInStep(_Step):
    barge_in_after: float = Field(ge=0)


class DtmfStep(_Step):
    dtmf: str = Field(pattern=r"^[0-9A-D*#]+$")


class SilenceStep(_Step):
    silence: float = Field(ge=0)


class HangupStep(_Step):
    hangup: Literal[True]


Step = SayStep | SayTextStep | WaitForBotStep | BargeInStep | DtmfStep | SilenceStep | HangupStep


class AmdVerdict(BaseModel):
    """What `AMD()` concludes for this customer, and how long it takes to decide."""

    model_config = ConfigDict(extra="forbid")
    status: AmdStatus
    cause: str
    seconds: float = Field(ge=0)


HUMAN_VERDICT = AmdVerdict(status="HUMAN", cause="HUMAN-800-800", seconds=1.5)
MACHINE_VERDICT = AmdVerdict(status="MACHINE", cause="MAXWORDS-3-2", seconds=2.6)


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, ge=0, description="how often this customer answers a call")
    outcome: Outcome | None = Field(None, description="fixed outcome; default: scenario weights")
    steps: list[Annotated[Step, Field(union_mode="left_to_right")]] = Field(default_factory=list)
    amd: AmdVerdict | None = None
    agitation: Agitation | None = None
    answer_delay: float = Field(
        0.5, ge=0, description="Answer() on a Local channel waits up to 500 ms for media"
    )
    media: Media | None = Field(None, description="this customer's line; default: the scenario's")
    # An impatient customer (pbxsim/impatient.py): answers and patience instead of `steps`.
    impatience: Impatience | None = None

    def verdict(self, outcome: Outcome) -> AmdVerdict:
        if self.amd is not None:
            return self.amd
        return MACHINE_VERDICT if outcome == "machine" else HUMAN_VERDICT


class OutcomeWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: float = Field(1.0, ge=0)
    busy: float = Field(0.0, ge=0)
    no_answer: float = Field(0.0, ge=0)
    congestion: float = Field(0.0, ge=0)
    machine: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> OutcomeWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one outcome weight must be positive")
        return self


class NumberPin(BaseModel):
    """Pin a dialled number to a customer (and optionally an outcome) for tests."""

    model_config = ConfigDict(extra="forbid")
    customer: str
    outcome: Outcome | None = None


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    ring_seconds: float = Field(2.0, ge=0)
    ring_spread: float = Field(
        0.0, ge=0, description="extra ring time per call, uniform in [0, ring_spread] seconds"
    )
    outcomes: OutcomeWeights = Field(default_factory=OutcomeWeights)
    customers: dict[str, Customer] = Field(default_factory=lambda: {"default": Customer()})
    machine_customer: str | None = Field(None, description="customer used for machine outcomes")
    media: Media = Field(default_factory=Media, description="how customers' audio is sent")
    numbers: dict[str, NumberPin] = Field(default_factory=dict)
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        if not self.customers:
            raise ValueError("at least one customer is needed")
        names = set(self.customers)
        for number, pin in self.numbers.items():
            if pin.customer not in names:
                raise ValueError(f"numbers.{number}: unknown customer {pin.customer!r}")
        if self.machine_customer is not None and self.machine_customer not in names:
            raise ValueError(f"machine_customer: unknown customer {self.machine_customer!r}")
        return self


class CustomerPicker:
    """Deterministic choice of outcome and customer per call (seeded)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)

    def pick(self, dial: str) -> tuple[str, Customer, Outcome]:
        """`dial` is the Local channel's `number@context`; pins match it or the number alone."""
        sc = self.scenario
        pin = sc.numbers.get(dial) or sc.numbers.get(dial.partition("@")[0])
        weights = sc.outcomes.model_dump()
        outcome: Outcome = self.rng.choices(list(weights), list(weights.values()))[0]
        if pin is not None:
            name = pin.customer
        elif outcome == "machine" and sc.machine_customer is not None:
            name = sc.machine_customer
        else:
            names = list(sc.customers)
            name = self.rng.choices(names, [sc.customers[n].weight for n in names])[0]
        customer = sc.customers[name]
        if pin is not None and pin.outcome is not None:
            outcome = pin.outcome
        elif customer.outcome is not None:
            outcome = customer.outcome
        return name, customer, outcome

    def ring_time(self) -> float:
        """How long this call rings: people pick up at different moments."""
        sc = self.scenario
        return sc.ring_seconds + (self.rng.uniform(0, sc.ring_spread) if sc.ring_spread else 0)


# ---------------------------------------------------------------------------------------------
# Loading with file/line/field errors


def load_scenario(path: Path) -> Scenario:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}:1: the scenario must be a mapping")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_describe(path, node, exc)) from exc
    return scenario.model_copy(update={"base_dir": path.parent})


def _describe(path: Path, root: yaml.Node | None, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not _is_union_tag(p)]
        line = _line_of(root, loc)
        where = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{path}:{line}: {where}: {err['msg']}")
    return "\n".join(dict.fromkeys(lines))


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part.endswith("Step")


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int:
    """1-based line of the deepest YAML node that `loc` reaches."""
    best = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value if not isinstance(value, yaml.ScalarNode) else key
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
        best = node.start_mark.line + 1
    return best


# ---------------------------------------------------------------------------------------------
# Audio: everything is prepared once, before calls start, so calls do no CPU work.

SIM_RATE = 8000


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples and the rate of a PCM WAV file (8/16/32-bit, any channels)."""
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ScenarioError(f"{path}: not a PCM WAV file: {exc}") from exc
    if width == 1:
        pcm = (np.frombuffer(raw, np.uint8).astype(np.int16) - 128) << 8
    elif width == 2:
        pcm = np.frombuffer(raw, "<i2")
    elif width == 4:
        pcm = (np.frombuffer(raw, "<i4") >> 16).astype(np.int16)
    else:
        raise ScenarioError(f"{path}: unsupported sample width {width}")
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return pcm, rate


def to_sim_rate(pcm: np.ndarray, rate: int) -> np.ndarray:
    import soxr  # noqa: PLC0415 - heavy import only when audio is prepared

    if rate == SIM_RATE:
        return pcm.astype(np.int16)
    return soxr.resample(pcm, rate, SIM_RATE, quality="HQ").astype(np.int16)
