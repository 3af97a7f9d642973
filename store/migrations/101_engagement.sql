-- Channels beyond the call: engagement the CRM or app reports (an SMS delivered or replied to,
-- a push opened, a call answered), consent and do-not-contact lists per channel, and the
-- follow-up chosen after each call (analytics/channels.py, outdial/followup.py).

-- One row per event the CRM reported; its own id (event_id) makes a repeat count once.
-- `responded` marks the kinds that are a response (replied, clicked, opened, answered).
CREATE TABLE engagement_events (
    id          bigserial PRIMARY KEY,
    lead_id     bigint NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    event_id    text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('call', 'sms', 'push')),
    kind        text NOT NULL CHECK (kind IN ('sent', 'delivered', 'failed', 'replied',
                                              'clicked', 'opened', 'answered', 'missed')),
    contact_id  text,
    responded   boolean NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lead_id, event_id)
);
CREATE INDEX engagement_events_lead ON engagement_events (lead_id, occurred_at);
CREATE INDEX engagement_events_age ON engagement_events (occurred_at);

-- Consent to messages per channel (a call's consent stays leads.consent). No row: not given.
CREATE TABLE channel_consents (
    lead_id     bigint NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('sms', 'push')),
    granted     boolean NOT NULL,
    source      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lead_id, channel)
);

-- Do-not-contact per channel: every entry so far is about calls. The dialer matches call
-- entries only; an SMS STOP does not stop calls, nor a "stop calling" the messages.
ALTER TABLE dnc ADD COLUMN channel text NOT NULL DEFAULT 'call'
    CHECK (channel IN ('call', 'sms', 'push'));
DROP INDEX dnc_unique;
CREATE UNIQUE INDEX dnc_unique ON dnc (phone_hash, COALESCE(campaign_id, 0), channel);

-- A person is their number: their history in every campaign informs each lead's channels.
CREATE INDEX leads_phone ON leads (phone_e164) WHERE phone_e164 IS NOT NULL;

-- The follow-up chosen after a call (call_id) or asked for through the API (call_id NULL).
-- channel NULL: no channel was allowed (reason says why).
CREATE TABLE follow_ups (
    id          bigserial PRIMARY KEY,
    lead_id     bigint NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    campaign_id bigint REFERENCES campaigns(id) ON DELETE CASCADE,
    call_id     text UNIQUE,
    channel     text CHECK (channel IN ('call', 'sms', 'push')),
    at          timestamptz,
    template    text,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX follow_ups_lead ON follow_ups (lead_id);
CREATE INDEX follow_ups_created ON follow_ups (created_at);

-- Contacts and responses per channel over [since, until), optionally one campaign: a call
-- attempt that reached a line (answered, busy, no answer, machine) is a contact, answered by a
-- person a response; a message is a contact (its events grouped by contact_id), a reply, click
-- or open a response.
CREATE FUNCTION analytics_engagement_stats(since timestamptz, until timestamptz,
                                           campaign_name text)
RETURNS TABLE (channel text, contacts bigint, responses bigint, response_rate double precision)
LANGUAGE sql STABLE AS $$
    WITH contacts AS (
        SELECT 'call'::text AS channel,
               a.disposition IN ('answered', 'completed', 'transferred', 'abandoned') AS responded
        FROM call_attempts a JOIN campaigns cp ON cp.id = a.campaign_id
        WHERE a.started_at >= since AND a.started_at < until
          AND a.disposition IN ('answered', 'completed', 'transferred', 'abandoned', 'busy',
                                'no-answer', 'machine')
          AND (campaign_name IS NULL OR cp.name = campaign_name)
        UNION ALL
        SELECT e.channel, bool_or(e.responded)
        FROM engagement_events e
        JOIN leads l ON l.id = e.lead_id JOIN campaigns cp ON cp.id = l.campaign_id
        WHERE e.occurred_at >= since AND e.occurred_at < until
          AND (campaign_name IS NULL OR cp.name = campaign_name)
        GROUP BY e.lead_id, e.channel, coalesce(e.contact_id, e.event_id))
    SELECT channel, count(*), count(*) FILTER (WHERE responded),
           count(*) FILTER (WHERE responded)::double precision / NULLIF(count(*), 0)
    FROM contacts GROUP BY channel
$$;

-- Follow-ups chosen per channel over [since, until) (channel NULL: none was allowed).
CREATE FUNCTION analytics_follow_up_stats(since timestamptz, until timestamptz,
                                          campaign_name text)
RETURNS TABLE (channel text, follow_ups bigint)
LANGUAGE sql STABLE AS $$
    SELECT f.channel, count(*)
    FROM follow_ups f LEFT JOIN campaigns cp ON cp.id = f.campaign_id
    WHERE f.created_at >= since AND f.created_at < until
      AND (campaign_name IS NULL OR cp.name = campaign_name)
    GROUP BY f.channel
$$;

-- Grafana: the same per UTC day.
CREATE VIEW analytics_follow_ups_daily AS
SELECT date_trunc('day', f.created_at, 'UTC') AS day, coalesce(f.channel, 'none') AS channel,
       count(*) AS follow_ups
FROM follow_ups f GROUP BY 1, 2;

CREATE VIEW analytics_engagement_daily AS
SELECT d.day, s.channel, s.contacts, s.responses, s.response_rate
FROM (SELECT generate_series(date_trunc('day', now(), 'UTC') - interval '29 days',
                             date_trunc('day', now(), 'UTC'), interval '1 day') AS day) d,
     LATERAL analytics_engagement_stats(d.day, d.day + interval '1 day', NULL) s;
