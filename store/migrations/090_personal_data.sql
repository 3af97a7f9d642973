-- Personal data (docs/privacy.md): a keyed hash that names a person without their number,
-- hash-only do-not-call entries for erased people, erased leads, the audit's subject, indexes
-- for the retention job, and token revocation announced to every daemon at once.

-- subject_hash(number): SHA-256 of a per-database random key and the E.164 number. An erased
-- person's opt-out is kept as this hash alone, and audit rows about a person carry it instead
-- of the number. The key is drawn here, once per database (two random UUIDs, 244 random bits),
-- and lives only in the function's body: never in the repository or a config file.
DO $$
DECLARE
    salt text := encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
BEGIN
    EXECUTE format(
        'CREATE FUNCTION subject_hash(phone text) RETURNS bytea
         LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
         AS %L',
        format('SELECT sha256(decode(%L, ''hex'') || convert_to(phone, ''UTF8''))', salt));
END
$$;

-- Every DNC entry carries the hash, kept by a trigger so every writer stays as it is; the
-- dialer matches on it, so an entry whose number was erased still blocks the number.
ALTER TABLE dnc ADD COLUMN phone_hash bytea;
UPDATE dnc SET phone_hash = subject_hash(phone_e164);
ALTER TABLE dnc ALTER COLUMN phone_hash SET NOT NULL,
                ALTER COLUMN phone_e164 DROP NOT NULL;
DROP INDEX dnc_unique;
CREATE UNIQUE INDEX dnc_unique ON dnc (phone_hash, COALESCE(campaign_id, 0));

CREATE FUNCTION dnc_fill_hash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.phone_e164 IS NOT NULL THEN
        NEW.phone_hash := subject_hash(NEW.phone_e164);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER dnc_fill_hash BEFORE INSERT OR UPDATE OF phone_e164 ON dnc
    FOR EACH ROW EXECUTE FUNCTION dnc_fill_hash();

-- An erased lead stays as a row without anything of the person (its calls keep counting in
-- the script statistics); erased_at says when.
ALTER TABLE leads ADD COLUMN erased_at timestamptz,
                  ALTER COLUMN phone_e164 DROP NOT NULL,
                  ADD CONSTRAINT leads_number_unless_erased
                      CHECK (phone_e164 IS NOT NULL OR erased_at IS NOT NULL);

-- The person an audit row is about (subject_hash of the number), so an erasure finds the rows
-- to scrub and a regulator's question about one number can still be answered afterwards.
ALTER TABLE api_audit ADD COLUMN subject bytea;
CREATE INDEX api_audit_subject ON api_audit (subject) WHERE subject IS NOT NULL;

-- The retention job's lookups: each finds only rows still to be purged.
CREATE INDEX turns_content_age ON turns (created_at)
    WHERE text <> '' OR dtmf IS NOT NULL OR entities <> '{}'::jsonb
          OR emotion <> '{}'::jsonb OR agitation IS NOT NULL;
CREATE INDEX call_attempts_started ON call_attempts (started_at);
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX outbox_unsent_age ON outbox (created_at) WHERE delivered_at IS NULL;
CREATE INDEX leads_finished_age ON leads (updated_at)
    WHERE status IN ('done', 'blocked', 'failed') AND erased_at IS NULL;

-- A revoked (or deleted) token is announced on channel outdial_token_revoked with its id, to
-- every daemon listening, whoever revoked it (the CLI, the API, or SQL by hand).
CREATE FUNCTION api_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outdial_token_revoked', OLD.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER api_token_revoked AFTER UPDATE OF revoked_at ON api_tokens
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION api_token_revoked();
CREATE TRIGGER api_token_deleted AFTER DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_token_revoked();
