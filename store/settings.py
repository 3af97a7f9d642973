"""Database settings (composed into the daemon config by outdial.config)."""

from pathlib import Path

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


class RetentionSettings(BaseModel):
    """How long each kind of data is kept, in days (None: until deleted by hand).

    Evidence of calls, consent and opt-outs is kept at least 30 days (China's MIIT rules); the
    US asks for a company do-not-call request to be honoured for years: leave `dnc_days` unset
    unless counsel says otherwise.
    """

    model_config = ConfigDict(extra="forbid")

    # What customers said and how they sounded (turn text, keyed digits, entities, emotion):
    # blanked; the turn itself stays for the script statistics until its call goes.
    turn_text_days: int | None = Field(default=90, ge=1)
    # Calls and call attempts (with their turns).
    calls_days: int | None = Field(default=730, ge=30)
    compliance_events_days: int | None = Field(default=730, ge=30)
    # Call recordings (MixMonitor files): the file is deleted and the path taken off the call.
    # China's rules want recordings kept at least 30 days.
    recordings_days: int | None = Field(default=90, ge=30)
    # Who read or changed personal data through the API or the CLI.
    audit_days: int | None = Field(default=365, ge=30)
    # Webhook events the CRM has received.
    outbox_delivered_days: int | None = Field(default=30, ge=1)
    # Events nobody will send: used only while no webhook URL is configured.
    outbox_unsent_days: int | None = Field(default=7, ge=1)
    # Finished leads (done, blocked, failed) not updated for this long: anonymised.
    finished_leads_days: int | None = Field(default=730, ge=30)
    dnc_days: int | None = Field(default=None, ge=30)


class PrivacySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention: RetentionSettings = RetentionSettings()
    # The daemon's purge pass runs this often; each batch touches at most `purge_batch_rows`
    # rows and the pass pauses `purge_pause_s` between batches so calls keep the database.
    purge_interval_s: float = Field(default=3600.0, gt=0)
    purge_batch_rows: int = Field(default=1000, ge=1, le=100_000)
    purge_pause_s: float = Field(default=0.05, ge=0)
    # Where MixMonitor writes (Asterisk's monitor directory, as seen from this host). Only files
    # below it are deleted; while it is not there (outdial on another host than Asterisk) the
    # deletions wait in `recording_deletions`.
    recordings_dir: Path = Path("/var/spool/asterisk/monitor")
