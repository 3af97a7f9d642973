-- Churn risk (analytics/churn.py): labels the CRM posts back or an operator imports, the
-- trained models (versioned; coefficients as JSON, never pickles), and each lead's score.

-- Whether the lead's customer left, and when that was seen: the time orders the hold-out.
CREATE TABLE churn_labels (
    lead_id     bigint PRIMARY KEY REFERENCES leads(id) ON DELETE CASCADE,
    churned     boolean NOT NULL,
    observed_at timestamptz NOT NULL,
    source      text NOT NULL CHECK (source IN ('api', 'import')),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX churn_labels_observed ON churn_labels (observed_at);

CREATE TABLE churn_models (
    version     bigserial PRIMARY KEY,
    trained_at  timestamptz NOT NULL DEFAULT now(),
    features    text[] NOT NULL,
    params      jsonb NOT NULL,
    metrics     jsonb NOT NULL,
    training    jsonb NOT NULL
);

CREATE TABLE churn_scores (
    lead_id       bigint PRIMARY KEY REFERENCES leads(id) ON DELETE CASCADE,
    model_version bigint NOT NULL REFERENCES churn_models(version) ON DELETE CASCADE,
    score         real NOT NULL CHECK (score >= 0 AND score <= 1),
    top_features  jsonb NOT NULL,
    scored_at     timestamptz NOT NULL DEFAULT now()
);

-- The churn-risk distribution of scored leads in ten bands (0: under 10 %), optionally one
-- campaign: `outdial report`, the API and Grafana.
CREATE FUNCTION analytics_churn_distribution(campaign_name text)
RETURNS TABLE (band integer, leads bigint)
LANGUAGE sql STABLE AS $$
    SELECT least(floor(s.score * 10)::integer, 9), count(*)
    FROM churn_scores s JOIN leads l ON l.id = s.lead_id
    JOIN campaigns cp ON cp.id = l.campaign_id
    WHERE l.erased_at IS NULL AND (campaign_name IS NULL OR cp.name = campaign_name)
    GROUP BY 1
$$;

CREATE VIEW analytics_churn_risk AS SELECT * FROM analytics_churn_distribution(NULL);
