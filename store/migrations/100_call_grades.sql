-- The lead's grade after each call (the script's `grading:` rules, dialog/grading.py), why, and
-- what the call captured (a promised date, an amount) for the follow-up message.
ALTER TABLE calls ADD COLUMN grade text CHECK (grade IN ('A', 'B', 'C', 'D', 'E', 'F')),
                  ADD COLUMN grade_reason text,
                  ADD COLUMN captured jsonb NOT NULL DEFAULT '{}'::jsonb;

-- The retention job blanks what calls captured after `turn_text_days`, like turn entities.
CREATE INDEX calls_captured_age ON calls (ended_at) WHERE captured <> '{}'::jsonb;

-- Grades per script and variant over [since, until), optionally one campaign (by name): the
-- distribution `outdial report`, the API and Grafana show.
CREATE FUNCTION analytics_grade_stats(since timestamptz, until timestamptz, campaign_name text)
RETURNS TABLE (script_name text, variant text, grade text, calls bigint)
LANGUAGE sql STABLE AS $$
    SELECT c.script_name, c.variant, c.grade, count(*)
    FROM calls c
    LEFT JOIN campaigns cp ON cp.id = c.campaign_id
    WHERE c.grade IS NOT NULL AND c.started_at >= since AND c.started_at < until
      AND (campaign_name IS NULL OR cp.name = campaign_name)
    GROUP BY c.script_name, c.variant, c.grade
$$;

-- Grafana: graded calls per UTC day, script, variant and grade.
CREATE VIEW analytics_grade_daily AS
SELECT date_trunc('day', c.started_at, 'UTC') AS day, c.script_name, c.variant, c.grade,
       count(*) AS calls
FROM calls c
WHERE c.grade IS NOT NULL
GROUP BY 1, c.script_name, c.variant, c.grade;
