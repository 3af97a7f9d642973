-- The lead fields each script version cannot run without (required variables with no default),
-- so the import, the API and the dialer refuse leads that lack one without loading scripts.
-- `registered_at` moves each time a daemon loads that content: the newest is the one served.
ALTER TABLE script_versions
    ADD COLUMN required_fields text[] NOT NULL DEFAULT '{}',
    ADD COLUMN registered_at timestamptz NOT NULL DEFAULT now();

-- Each campaign's current script requirements (none while no daemon has loaded its script).
CREATE VIEW campaign_required_fields AS
SELECT c.id AS campaign_id, c.name AS campaign, c.script_name,
       coalesce(v.required_fields, '{}') AS required_fields, v.version AS script_version
FROM campaigns c
LEFT JOIN LATERAL (
    SELECT sv.required_fields, sv.version
    FROM scripts s JOIN script_versions sv ON sv.script_id = s.id
    WHERE s.name = c.script_name
    ORDER BY sv.registered_at DESC, sv.version DESC
    LIMIT 1
) v ON true;

-- A lead's required fields that are absent, null or blank (a lead of campaign `campaign_id`).
CREATE FUNCTION lead_missing_fields(fields jsonb, required text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(f ORDER BY i), '{}')
    FROM unnest(required) WITH ORDINALITY AS r(f, i)
    WHERE coalesce(btrim(fields ->> f), '') = ''
$$;
