"""Database settings (composed into the daemon config by outdial.config)."""

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None means: start the embedded PostgreSQL in the state directory.
    url: SecretStr | None = None
    pool_min: int = Field(default=2, ge=1, le=1_000)
    pool_max: int = Field(default=10, ge=1, le=1_000)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # Turn-log spool: where rows wait, fsync'd, while PostgreSQL is unreachable.
    spool_dir: str | None = None
