-- Per-target delivery of outbox events: an event is delivered (outbox.delivered_at) once every
-- configured webhook URL accepted it, and a URL that accepted it is never sent it again.
CREATE TABLE outbox_deliveries (
    outbox_id       bigint NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    target          text NOT NULL,
    delivered_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox_id, target)
);

-- The sender keeps a lead's events in order: it looks up the lead's earliest undelivered one.
CREATE INDEX outbox_lead_pending ON outbox (lead_id, id) WHERE delivered_at IS NULL;
