"""Settings of the FastAGI and AudioSocket listeners."""

from pydantic import BaseModel, ConfigDict, Field


class AgiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=4573, ge=0, le=65535)
    # A FastAGI client that sends nothing for this long is dropped (it would hold a slot).
    header_timeout_s: float = Field(default=5.0, gt=0)


class AudioSocketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=0, le=65535)
    # The address Asterisk dials for `EXEC AudioSocket uuid,host:port`; defaults to host:port.
    advertise: str | None = None
    # A registered UUID that Asterisk does not connect within this time is forgotten.
    connect_timeout_s: float = Field(default=10.0, gt=0)
