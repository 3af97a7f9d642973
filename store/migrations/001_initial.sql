-- outdial initial schema. Times are timestamptz (UTC); numbers are E.164 text.

CREATE TABLE campaigns (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    script_name     text NOT NULL,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'finished')),
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leads (
    id                  bigserial PRIMARY KEY,
    campaign_id         bigint NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    external_id         text,
    phone_e164          text NOT NULL,
    timezone            text NOT NULL,
    fields              jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority            integer NOT NULL DEFAULT 0,
    consent             boolean NOT NULL DEFAULT false,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'leased', 'done', 'blocked', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    attempts_day        date,
    attempts_today      integer NOT NULL DEFAULT 0,
    last_attempt_at     timestamptz,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner         text,
    lease_expires_at    timestamptz,
    last_disposition    text,
    block_reason        text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, phone_e164)
);
CREATE UNIQUE INDEX leads_external_id ON leads (campaign_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX leads_ready ON leads (campaign_id, priority DESC, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX leads_lease_expiry ON leads (lease_expires_at) WHERE status = 'leased';

-- One row per Originate.
CREATE TABLE call_attempts (
    id              bigserial PRIMARY KEY,
    call_id         text NOT NULL UNIQUE,
    lead_id         bigint NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    campaign_id     bigint NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    trunk           text NOT NULL,
    owner           text NOT NULL,
    action_id       text,
    channel         text,
    uniqueid        text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    ended_at        timestamptz,
    disposition     text,
    ami_reason      integer,
    hangup_cause    integer,
    hangup_cause_txt text,
    amd_status      text,
    amd_cause       text
);
CREATE INDEX call_attempts_open ON call_attempts (owner) WHERE ended_at IS NULL;
CREATE INDEX call_attempts_campaign ON call_attempts (campaign_id, started_at);

-- One row per answered call that reached a bot session.
CREATE TABLE calls (
    call_id             text PRIMARY KEY,
    campaign_id         bigint REFERENCES campaigns(id) ON DELETE CASCADE,
    lead_id             bigint REFERENCES leads(id) ON DELETE CASCADE,
    script_name         text,
    script_version      integer,
    variant             text,
    amd_status          text,
    half_duplex         boolean NOT NULL DEFAULT false,
    started_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz,
    disposition         text,
    outcome             text,
    success             boolean,
    transfer_target     text,
    transfer_reason     text,
    hangup_side         text,
    greeting_latency_ms real,
    summary             text
);
CREATE INDEX calls_script ON calls (script_name, variant, started_at);

-- One row per bot prompt or customer utterance; (call_id, seq) is the idempotency key.
CREATE TABLE turns (
    call_id             text NOT NULL,
    seq                 integer NOT NULL,
    speaker             text NOT NULL CHECK (speaker IN ('bot', 'customer', 'system')),
    node                text,
    text                text NOT NULL DEFAULT '',
    asr_confidence      real,
    intent              text,
    intent_confidence   real,
    entities            jsonb NOT NULL DEFAULT '{}'::jsonb,
    emotion             jsonb NOT NULL DEFAULT '{}'::jsonb,
    agitation           real,
    barge_in            boolean NOT NULL DEFAULT false,
    dtmf                text,
    timings             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE scripts (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE script_versions (
    id              bigserial PRIMARY KEY,
    script_id       bigint NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    version         integer NOT NULL,
    content_hash    text NOT NULL,
    source          text NOT NULL,
    path            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (script_id, version),
    UNIQUE (script_id, content_hash)
);

CREATE TABLE script_variants (
    id              bigserial PRIMARY KEY,
    script_id       bigint NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    name            text NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    retired_at      timestamptz,
    evidence        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (script_id, name)
);

-- campaign_id NULL means the global (company-wide) list.
CREATE TABLE dnc (
    id          bigserial PRIMARY KEY,
    phone_e164  text NOT NULL,
    campaign_id bigint REFERENCES campaigns(id) ON DELETE CASCADE,
    source      text NOT NULL DEFAULT 'manual',
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dnc_unique ON dnc (phone_e164, COALESCE(campaign_id, 0));

CREATE TABLE compliance_events (
    id          bigserial PRIMARY KEY,
    call_id     text,
    lead_id     bigint,
    campaign_id bigint,
    direction   text NOT NULL CHECK (direction IN ('bot', 'customer', 'dialer')),
    category    text NOT NULL,
    action      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compliance_events_time ON compliance_events (created_at);

-- Outcome events for CRM webhooks, written in the disposition's transaction.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    lead_id         bigint,
    call_id         text,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
