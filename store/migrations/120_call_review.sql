-- Call review (issue 19): where a call's recording is, the recordings waiting to be deleted,
-- and the lookups of `outdial calls` and `outdial top`.

-- The file Asterisk's MixMonitor writes for the call (its MIXMONITOR_FILENAME, read by the
-- FastAGI handler), on the PBX host. NULL: not recorded, or the recording was purged
-- (privacy.retention.recordings_days) or erased with its person.
ALTER TABLE calls ADD COLUMN recording_path text;

-- Recording files to delete: queued in the same statement or transaction that takes the path
-- off its call (retention, erasure), deleted by the daemon's retention job (or `outdial privacy
-- purge`) where privacy.recordings_dir is reachable, so a file is never forgotten when the
-- database says it is gone.
CREATE TABLE recording_deletions (
    path        text PRIMARY KEY,
    reason      text NOT NULL CHECK (reason IN ('retention', 'erasure', 'call_deleted')),
    queued_at   timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);

-- The retention job finds the recordings past their time without reading every call.
CREATE INDEX calls_recording_age ON calls (started_at) WHERE recording_path IS NOT NULL;

-- `outdial top`: the calls still talking to the bot.
CREATE INDEX calls_live ON calls (started_at) WHERE ended_at IS NULL;

-- `outdial top`: the reply latency of the last minute.
CREATE INDEX turns_replies ON turns (created_at) WHERE timings ? 'reply_ms';
