-- HTTP API for CRM integration: bearer tokens and the audit log of every write.
--
-- A token is 32 random bytes shown once at creation; only its SHA-256 is kept (it is random,
-- so a slow password hash buys nothing). A revoked token stays for the audit trail; its name
-- may then be given to a new token.
CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Who (token name), what (action, target, detail), when. Numbers appear masked (***1234).
CREATE TABLE api_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_id    bigint REFERENCES api_tokens(id),
    token_name  text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX api_audit_at ON api_audit (at);
CREATE INDEX api_audit_target ON api_audit (target, at);
