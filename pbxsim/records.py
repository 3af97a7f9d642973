"""What pbxsim remembers about each call, for tests and rehearsals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pbxsim.audiosocket import BotFrame


@dataclass(frozen=True)
class AgiExchange:
    """One AGI command and the reply line pbxsim sent (None: no reply, as Asterisk does)."""

    command: str
    reply: str | None


@dataclass(frozen=True)
class Transfer:
    """A hand-over the bot asked for: `EXEC Dial|Queue|Goto ...` or an AMI `Redirect`."""

    application: str
    target: str


@dataclass
class Said:
    """One utterance the customer spoke, on the customer's own clock (time.monotonic()):
    when its first and last voiced 20 ms went out (RMS >= 1 % of full scale), whether or not
    the bot's media was connected to hear it. `mark` is the scenario step's label."""

    mark: str | None
    first_voiced: float | None = None
    last_voiced: float | None = None


@dataclass
class CallRecord:
    action_id: str | None
    channel: str
    number: str
    customer: str
    outcome: str
    reason: int | None = None
    call_id: str | None = None
    amd_status: str | None = None
    amd_cause: str | None = None
    # Wall-clock time AMD() took to decide (time.monotonic() seconds).
    amd_seconds: float | None = None
    agi: list[AgiExchange] = field(default_factory=list)
    agi_status: str | None = None
    # time.monotonic() when the dialplan's first AGI() began (after AMD): the bot's setup
    # over FastAGI and AudioSocket counts from here.
    agi_started_at: float | None = None
    audiosocket_results: list[int] = field(default_factory=list)
    # time.monotonic() when each AudioSocket connection was established (greeting latency).
    media_connected_at: list[float] = field(default_factory=list)
    # The customer's audio as sent (at the line's rate), one time and size per message.
    audio_sent: bytearray = field(default_factory=bytearray)
    audio_sent_times: list[float] = field(default_factory=list)
    audio_sent_sizes: list[int] = field(default_factory=list)
    bot_frames: list[BotFrame] = field(default_factory=list)
    said: list[Said] = field(default_factory=list)
    dtmf_sent: list[str] = field(default_factory=list)
    transfer: Transfer | None = None
    prompts_played: list[str] = field(default_factory=list)  # EAGI STREAM FILE names
    eagi_status: int | None = None  # exit status of the EAGI script
    eagi_stderr: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    hangup_side: str | None = None
    recordings: list[Path] = field(default_factory=list)  # MixMonitor files written
    errors: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def bot_audio(self) -> bytes:
        return b"".join(f.payload for f in self.bot_frames)
