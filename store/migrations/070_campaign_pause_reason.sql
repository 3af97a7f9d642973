-- Why a campaign is paused, so `campaign list`, `campaign stats` and the API can say it:
-- `operator` (campaign pause, API pause), `script_unavailable` (the daemon cannot serve the
-- campaign's script; it resumes the campaign itself once the script loads). Later reasons
-- (e.g. a missing language pack) use the same columns. `paused_detail` is the human sentence.
-- `archived` campaigns are finished with and hidden from `campaign list` by default.
ALTER TABLE campaigns ADD COLUMN paused_reason text;
ALTER TABLE campaigns ADD COLUMN paused_detail text;
ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('active', 'paused', 'finished', 'archived'));
