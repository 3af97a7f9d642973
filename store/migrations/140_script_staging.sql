-- Staging and promotion of script versions (issue 18).
--
-- A version is stored when a daemon loads a script file (as before) or when an admin stages
-- one (`outdial script stage`, the API), with the script's test cases beside it. What is live
-- is the version of the newest row in script_promotions: a daemon loading new file content
-- (`load`), an admin's `promote` (forced when its tests did not pass: audited here) or
-- `rollback`. Calls keep the version they started with.
ALTER TABLE script_versions
    ADD COLUMN staged_by text,
    ADD COLUMN staged_at timestamptz,
    ADD COLUMN cases jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE script_promotions (
    id          bigserial PRIMARY KEY,
    script_id   bigint NOT NULL,
    version     integer NOT NULL,
    action      text NOT NULL CHECK (action IN ('load', 'promote', 'rollback')),
    by_whom     text NOT NULL,
    forced      boolean NOT NULL DEFAULT false,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (script_id, version)
        REFERENCES script_versions (script_id, version) ON DELETE CASCADE
);
CREATE INDEX script_promotions_latest ON script_promotions (script_id, at DESC, id DESC);

-- Every version loaded so far was live in its time; the newest load is live now.
INSERT INTO script_promotions (script_id, version, action, by_whom, at)
SELECT script_id, version, 'load', 'scripts_dir', registered_at FROM script_versions;

-- The live version of each script.
CREATE VIEW live_script_versions AS
SELECT DISTINCT ON (p.script_id) s.name, p.script_id, p.version
FROM script_promotions p JOIN scripts s ON s.id = p.script_id
ORDER BY p.script_id, p.at DESC, p.id DESC;

-- Each campaign's requirements are those of its script's live version.
CREATE OR REPLACE VIEW campaign_required_fields AS
SELECT c.id AS campaign_id, c.name AS campaign, c.script_name,
       coalesce(v.required_fields, '{}') AS required_fields, v.version AS script_version
FROM campaigns c
LEFT JOIN LATERAL (
    SELECT sv.required_fields, sv.version
    FROM live_script_versions l
    JOIN script_versions sv ON sv.script_id = l.script_id AND sv.version = l.version
    WHERE l.name = c.script_name
) v ON true;
