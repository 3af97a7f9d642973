"""Settings of the FastAGI and AudioSocket listeners."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class AgiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=4573, ge=0, le=65535)
    # A FastAGI client that sends nothing for this long is dropped (it would hold a slot).
    header_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # A command's reply must arrive this soon (EXEC AudioSocket, which lasts the call, aside);
    # a client that stops answering is dropped instead of holding its connection forever.
    command_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # Open FastAGI connections at most; more are closed at once. None: 2 x session.max_calls
    # + 16 (every live call, as many being refused while the house is full, and slack).
    max_connections: int | None = Field(default=None, ge=1, le=100_000)

    def connection_cap(self, max_calls: int) -> int:
        return self.max_connections or 2 * max_calls + 16


class AudioSocketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=0, le=65535)
    # The address Asterisk dials for `EXEC AudioSocket uuid,host:port`; defaults to host:port.
    advertise: str | None = None
    # A registered UUID that Asterisk does not connect within this time is forgotten.
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)


class SessionSettings(BaseModel):
    """How a live call behaves."""

    model_config = ConfigDict(extra="forbid")

    # Free call-session slots: the dialer never originates more calls than this.
    max_calls: int = Field(default=40, ge=1, le=1_000)
    # Per script language: phrases its pack's ASR can hear -> the text they stand for in that
    # language, e.g. `en: {네: "yes"}`. Needed only where a pack's ASR language differs from
    # its scripts' (the packaged Korean model serving English scripts in the demo and tests);
    # production language packs leave it empty.
    phrase_map: dict[Annotated[str, Field(pattern=r"^[a-z]{2,3}$")], dict[str, str]] = Field(
        default_factory=dict
    )
    # AMD verdict -> what the call does: "talk" (run the script) or "hangup".
    amd_actions: dict[str, str] = Field(
        default_factory=lambda: {"HUMAN": "talk", "NOTSURE": "talk", "MACHINE": "hangup"}
    )
    # The AudioSocket connection must arrive this soon after `EXEC AudioSocket`.
    media_timeout_s: float = Field(default=5.0, gt=0, le=600)
    # Synthesise the replies to a question's expected answers while the customer listens
    # (background CPU for replies that start at once; off saves the CPU of unused ones).
    synthesize_ahead: bool = True
    # Longest a single call may last before the bot ends it.
    max_call_s: float = Field(default=600.0, gt=0, le=86_400)
    # Dialplan target for transfers whose script target is a bare name: context,exten,priority.
    transfer_context: str = "outdial-transfer"
