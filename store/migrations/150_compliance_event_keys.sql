-- A natural key for a call's compliance events (issue 17): `<call_id>:<n>`, the call's n-th
-- event as the call path numbers them. With it a write retried after a cut session, or
-- replayed from the call spool once the database is back, stores nothing twice (ON CONFLICT
-- DO NOTHING). The dialer's own rows (record_dialer_blocks) and the rows written before this
-- migration have none; NULLs never conflict.
ALTER TABLE compliance_events ADD COLUMN event_key text;
CREATE UNIQUE INDEX compliance_events_key ON compliance_events (event_key);
