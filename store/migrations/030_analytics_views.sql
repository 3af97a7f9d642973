-- Script effectiveness, shared by `outdial report`, the retirement job and Grafana.
--
-- A call is "completed" when its bot conversation ran to an end: disposition completed or
-- transferred (abandoned, machine and failed calls never gave the script a chance). Success
-- rate, transfer rate and opt-out rate are shares of completed calls; average duration and
-- efficiency (1 / (avg_duration_s + 0.1)) are over completed calls; compliance hits count every
-- compliance event of the window's calls.

CREATE INDEX compliance_events_call ON compliance_events (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX calls_started ON calls (started_at);

CREATE FUNCTION analytics_completed(ended_at timestamptz, disposition text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT ended_at IS NOT NULL AND disposition IN ('completed', 'transferred')
$$;

CREATE VIEW analytics_call_facts AS
SELECT c.call_id,
       c.campaign_id,
       cp.name AS campaign,
       c.script_name,
       c.variant,
       c.started_at,
       c.ended_at,
       c.disposition,
       c.outcome,
       coalesce(analytics_completed(c.ended_at, c.disposition), false) AS completed,
       coalesce(c.success, false) AS success,
       c.disposition = 'transferred' AS transferred,
       EXTRACT(EPOCH FROM (c.ended_at - c.started_at))::double precision AS duration_s,
       (c.outcome = 'opt_out'
        OR EXISTS (SELECT 1 FROM turns t WHERE t.call_id = c.call_id AND t.intent = 'opt_out')
        OR EXISTS (SELECT 1 FROM compliance_events e
                   WHERE e.call_id = c.call_id AND e.category = 'opt_out')) AS opted_out,
       (SELECT count(*) FROM compliance_events e WHERE e.call_id = c.call_id) AS compliance_hits
FROM calls c
LEFT JOIN campaigns cp ON cp.id = c.campaign_id;

-- Per script and variant over [since, until), optionally one campaign (by name).
CREATE FUNCTION analytics_variant_stats(since timestamptz, until timestamptz, campaign_name text)
RETURNS TABLE (
    script_name     text,
    variant         text,
    calls           bigint,
    completed       bigint,
    successes       bigint,
    success_rate    double precision,
    avg_duration_s  double precision,
    efficiency      double precision,
    transfers       bigint,
    transfer_rate   double precision,
    opt_outs        bigint,
    opt_out_rate    double precision,
    compliance_hits bigint
)
LANGUAGE sql STABLE AS $$
    SELECT f.script_name,
           f.variant,
           count(*),
           count(*) FILTER (WHERE f.completed),
           count(*) FILTER (WHERE f.completed AND f.success),
           count(*) FILTER (WHERE f.completed AND f.success)::double precision
               / NULLIF(count(*) FILTER (WHERE f.completed), 0),
           avg(f.duration_s) FILTER (WHERE f.completed),
           1.0 / (avg(f.duration_s) FILTER (WHERE f.completed) + 0.1),
           count(*) FILTER (WHERE f.completed AND f.transferred),
           count(*) FILTER (WHERE f.completed AND f.transferred)::double precision
               / NULLIF(count(*) FILTER (WHERE f.completed), 0),
           count(*) FILTER (WHERE f.completed AND f.opted_out),
           count(*) FILTER (WHERE f.completed AND f.opted_out)::double precision
               / NULLIF(count(*) FILTER (WHERE f.completed), 0),
           coalesce(sum(f.compliance_hits), 0)::bigint
    FROM analytics_call_facts f
    WHERE f.started_at >= since AND f.started_at < until
      AND (campaign_name IS NULL OR f.campaign = campaign_name)
    GROUP BY f.script_name, f.variant
$$;

-- Grafana (PostgreSQL data source): the last hour per script and variant.
CREATE VIEW analytics_script_last_hour AS
SELECT * FROM analytics_variant_stats(now() - interval '1 hour', now(), NULL);

-- Grafana: daily trends per script and variant (day is the UTC day).
CREATE VIEW analytics_script_daily AS
SELECT date_trunc('day', f.started_at, 'UTC') AS day,
       f.script_name,
       f.variant,
       count(*) AS calls,
       count(*) FILTER (WHERE f.completed) AS completed,
       count(*) FILTER (WHERE f.completed AND f.success) AS successes,
       count(*) FILTER (WHERE f.completed AND f.success)::double precision
           / NULLIF(count(*) FILTER (WHERE f.completed), 0) AS success_rate,
       avg(f.duration_s) FILTER (WHERE f.completed) AS avg_duration_s,
       1.0 / (avg(f.duration_s) FILTER (WHERE f.completed) + 0.1) AS efficiency,
       count(*) FILTER (WHERE f.completed AND f.transferred)::double precision
           / NULLIF(count(*) FILTER (WHERE f.completed), 0) AS transfer_rate,
       count(*) FILTER (WHERE f.completed AND f.opted_out)::double precision
           / NULLIF(count(*) FILTER (WHERE f.completed), 0) AS opt_out_rate,
       coalesce(sum(f.compliance_hits), 0)::bigint AS compliance_hits
FROM analytics_call_facts f
GROUP BY 1, f.script_name, f.variant;

-- A/B: completed calls and successes of every registered variant of one script since `since`.
-- A variant an admin restored counts only the calls after its restoration (evidence.restored_at),
-- so the calls that got it retired do not retire it again.
CREATE FUNCTION analytics_variant_outcomes(script text, since timestamptz)
RETURNS TABLE (variant text, status text, completed bigint, successes bigint)
LANGUAGE sql STABLE AS $$
    SELECT v.name,
           v.status,
           count(c.call_id) FILTER (WHERE analytics_completed(c.ended_at, c.disposition)),
           count(c.call_id) FILTER (WHERE analytics_completed(c.ended_at, c.disposition)
                                      AND c.success IS TRUE)
    FROM scripts s
    JOIN script_variants v ON v.script_id = s.id
    LEFT JOIN calls c ON c.script_name = s.name AND c.variant = v.name
         AND c.started_at >= greatest(since, (v.evidence ->> 'restored_at')::timestamptz)
    WHERE s.name = script
    GROUP BY v.id, v.name, v.status
    ORDER BY v.id
$$;
