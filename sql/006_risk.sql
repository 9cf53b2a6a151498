-- assay-risk: the model's data (likelihood and impact per control group, the AI risk
-- dimensions of ISO 42001 controls) and the service's state: its projection of the audits,
-- the evidence of each control as aggregates, the scores, the per-standard summaries and the
-- dimension scores. docs/risk-model.md explains every number.

-- Likelihood and impact (1-5, the 5x5 matrix of domain-rules 3.1) per control group: a
-- clause number ("6" for 6.1.2) or an Annex A theme ("A.8" for A.8.15). assay's defaults
-- for focusing an audit, not numbers from a standard (the certification body checks the
-- client's own method, domain-rules 3.1); a certification body may update these rows.
-- Controls of a group with no row use risk.likelihood.default / risk.impact.default.
CREATE TABLE risk_theme_defaults (
	standard text NOT NULL,
	grp text NOT NULL,
	likelihood smallint NOT NULL CHECK (likelihood BETWEEN 1 AND 5),
	impact smallint NOT NULL CHECK (impact BETWEEN 1 AND 5),
	rationale text NOT NULL,
	PRIMARY KEY (standard, grp)
);

INSERT INTO risk_theme_defaults (standard, grp, likelihood, impact, rationale) VALUES
	('ISO27001_2022', '4', 2, 3, 'context and scope: rarely missing, a wrong scope misleads the whole audit'),
	('ISO27001_2022', '5', 2, 4, 'leadership and policy: rarely missing, weak commitment undermines every control'),
	('ISO27001_2022', '6', 3, 4, 'risk assessment and treatment: often incomplete, drives the SoA'),
	('ISO27001_2022', '7', 3, 3, 'support: competence, awareness and documented information'),
	('ISO27001_2022', '8', 3, 4, 'operation: the risk treatment plan carried out'),
	('ISO27001_2022', '9', 3, 3, 'performance evaluation: monitoring, internal audit, management review'),
	('ISO27001_2022', '10', 2, 3, 'improvement: nonconformity and corrective action'),
	('ISO27001_2022', 'A.5', 3, 3, 'organizational controls'),
	('ISO27001_2022', 'A.6', 3, 3, 'people controls'),
	('ISO27001_2022', 'A.7', 2, 3, 'physical controls: stable, fewer changes'),
	('ISO27001_2022', 'A.8', 4, 4, 'technological controls: most exposed, change often'),
	('ISO42001_2023', '4', 3, 3, 'context: AI roles and intended purposes are often unclear'),
	('ISO42001_2023', '5', 2, 4, 'leadership and AI policy'),
	('ISO42001_2023', '6', 3, 4, 'AI risk assessment, treatment and system impact assessment'),
	('ISO42001_2023', '7', 3, 3, 'support'),
	('ISO42001_2023', '8', 3, 4, 'operation: AI risk and impact assessments carried out'),
	('ISO42001_2023', '9', 3, 3, 'performance evaluation'),
	('ISO42001_2023', '10', 2, 3, 'improvement'),
	('ISO42001_2023', 'A.2', 2, 3, 'policies related to AI'),
	('ISO42001_2023', 'A.3', 2, 3, 'internal organization'),
	('ISO42001_2023', 'A.4', 3, 3, 'resources for AI systems'),
	('ISO42001_2023', 'A.5', 3, 4, 'assessing impacts on individuals, groups and society'),
	('ISO42001_2023', 'A.6', 3, 4, 'AI system life cycle'),
	('ISO42001_2023', 'A.7', 4, 4, 'data for AI systems: quality and provenance problems are common'),
	('ISO42001_2023', 'A.8', 3, 3, 'information for interested parties'),
	('ISO42001_2023', 'A.9', 3, 4, 'use of AI systems: human oversight, intended use'),
	('ISO42001_2023', 'A.10', 3, 3, 'third-party and customer relationships');

-- The AI risk dimensions each ISO 42001 control addresses (the Avro enum AiRiskDimension).
-- From domain-rules 3.6 ("domain-rules") or assay's addition where 3.6 names no control
-- ("assay"). Data, not code: a certification body may add or remove rows.
CREATE TABLE risk_dimension_tags (
	standard text NOT NULL,
	control_id text NOT NULL,
	dimension text NOT NULL CHECK (dimension IN ('BIAS_FAIRNESS', 'EXPLAINABILITY_TRANSPARENCY',
		'HUMAN_OVERSIGHT', 'DATA_QUALITY_PROVENANCE', 'ROBUSTNESS', 'PRIVACY', 'SAFETY',
		'ACCOUNTABILITY')),
	source text NOT NULL CHECK (source IN ('domain-rules', 'assay')),
	PRIMARY KEY (standard, control_id, dimension)
);

INSERT INTO risk_dimension_tags (standard, control_id, dimension, source) VALUES
	('ISO42001_2023', 'A.7.4', 'BIAS_FAIRNESS', 'domain-rules'),
	('ISO42001_2023', 'A.5.4', 'BIAS_FAIRNESS', 'domain-rules'),
	('ISO42001_2023', 'A.5.5', 'BIAS_FAIRNESS', 'domain-rules'),
	('ISO42001_2023', 'A.8.2', 'EXPLAINABILITY_TRANSPARENCY', 'domain-rules'),
	('ISO42001_2023', 'A.6.2.7', 'EXPLAINABILITY_TRANSPARENCY', 'assay'),
	('ISO42001_2023', 'A.8.5', 'EXPLAINABILITY_TRANSPARENCY', 'assay'),
	('ISO42001_2023', 'A.9.2', 'HUMAN_OVERSIGHT', 'domain-rules'),
	('ISO42001_2023', 'A.9.3', 'HUMAN_OVERSIGHT', 'domain-rules'),
	('ISO42001_2023', 'A.9.4', 'HUMAN_OVERSIGHT', 'domain-rules'),
	('ISO42001_2023', 'A.7.2', 'DATA_QUALITY_PROVENANCE', 'domain-rules'),
	('ISO42001_2023', 'A.7.3', 'DATA_QUALITY_PROVENANCE', 'domain-rules'),
	('ISO42001_2023', 'A.7.4', 'DATA_QUALITY_PROVENANCE', 'domain-rules'),
	('ISO42001_2023', 'A.7.5', 'DATA_QUALITY_PROVENANCE', 'domain-rules'),
	('ISO42001_2023', 'A.7.6', 'DATA_QUALITY_PROVENANCE', 'domain-rules'),
	('ISO42001_2023', 'A.6.2.4', 'ROBUSTNESS', 'domain-rules'),
	('ISO42001_2023', 'A.6.2.6', 'ROBUSTNESS', 'domain-rules'),
	('ISO42001_2023', 'A.5.4', 'PRIVACY', 'assay'),
	('ISO42001_2023', 'A.7.3', 'PRIVACY', 'assay'),
	('ISO42001_2023', 'A.5.5', 'SAFETY', 'assay'),
	('ISO42001_2023', 'A.6.2.4', 'SAFETY', 'assay'),
	('ISO42001_2023', 'A.8.4', 'SAFETY', 'assay'),
	('ISO42001_2023', 'A.3.2', 'ACCOUNTABILITY', 'domain-rules'),
	('ISO42001_2023', 'A.6.2.8', 'ACCOUNTABILITY', 'domain-rules'),
	('ISO42001_2023', 'A.3.3', 'ACCOUNTABILITY', 'assay'),
	('ISO42001_2023', 'A.10.2', 'ACCOUNTABILITY', 'assay');

-- The audits as assay-risk knows them (AuditOpened, and tenant/client from the first event
-- before it). ref_day: the newest event day (days since 1970-01-01 UTC) seen for the audit,
-- the day evidence freshness is measured against (never the wall clock).
CREATE TABLE risk_audits (
	audit_id text PRIMARY KEY,
	tenant_id text NOT NULL,
	client_id text NOT NULL,
	opened boolean NOT NULL,
	ref_day integer NULL,
	standards text[] NOT NULL,          -- Standard symbols in scope (with controls)
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- The AI systems of an audit's scope, as in its AuditOpened.
CREATE TABLE risk_ai_systems (
	audit_id text NOT NULL,
	ai_system_id text NOT NULL,
	tier text NOT NULL,                 -- AiActTier symbol
	roles integer NOT NULL,             -- bits: 1 PROVIDER, 2 PRODUCER, 4 USER
	PRIMARY KEY (audit_id, ai_system_id)
);

-- The latest SoA per audit and standard: the Annex A controls it excludes.
CREATE TABLE risk_soa (
	audit_id text NOT NULL,
	standard text NOT NULL,
	revision integer NOT NULL,
	excluded text[] NOT NULL,
	PRIMARY KEY (audit_id, standard)
);

-- Evidence per control as aggregates: per source system, strength tier (0 automated,
-- 1 sampled, 2 document, 3 attestation, 4 other) and link kind, the items linked and the
-- newest collected day. Enough to recompute coverage at any reference day.
CREATE TABLE risk_evidence (
	audit_id text NOT NULL,
	standard text NOT NULL,
	control_id text NOT NULL,
	source_system text NOT NULL,
	tier smallint NOT NULL CHECK (tier BETWEEN 0 AND 4),
	link_kind text NOT NULL CHECK (link_kind IN ('DIRECT', 'AUTOMATIC', 'NEEDS_CONFIRMATION')),
	newest_day integer NOT NULL,
	items integer NOT NULL CHECK (items > 0),
	PRIMARY KEY (audit_id, standard, control_id, source_system, tier, link_kind)
) WITH (fillfactor = 70); -- room for HOT updates: rows are updated in place every batch

-- The current score of every applicable control of every opened audit (rows of controls a
-- later SoA excludes are deleted). The link counts are not stored here: a new evidence item
-- that changes no score then writes no score row. Read them with the scores from the view
-- risk_control_scores.
CREATE TABLE risk_scores (
	audit_id text NOT NULL,
	standard text NOT NULL,
	control_id text NOT NULL,
	likelihood smallint NOT NULL CHECK (likelihood BETWEEN 1 AND 5),
	impact smallint NOT NULL CHECK (impact BETWEEN 1 AND 5),
	inherent_score smallint NOT NULL CHECK (inherent_score BETWEEN 1 AND 25),
	coverage_permille smallint NOT NULL CHECK (coverage_permille BETWEEN 0 AND 1000),
	independent_sources integer NOT NULL,
	residual_score smallint NULL CHECK (residual_score BETWEEN 1 AND 25),
	band text NULL,
	blocking boolean NOT NULL,
	blocking_reason text NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (audit_id, standard, control_id),
	CHECK ((residual_score IS NULL) = blocking AND (band IS NULL) = blocking)
) WITH (fillfactor = 80);

-- Scores with their link counts (sums over risk_evidence), as published in RiskScored.
CREATE VIEW risk_control_scores AS
SELECT s.audit_id, s.standard, s.control_id, s.likelihood, s.impact, s.inherent_score,
	s.coverage_permille,
	coalesce(e.direct, 0) AS direct_links,
	coalesce(e.automatic, 0) AS automatic_links,
	coalesce(e.pending, 0) AS pending_links,
	s.independent_sources, s.residual_score, s.band, s.blocking, s.blocking_reason, s.updated_at
FROM risk_scores s
LEFT JOIN (
	SELECT audit_id, standard, control_id,
		sum(items) FILTER (WHERE link_kind = 'DIRECT') AS direct,
		sum(items) FILTER (WHERE link_kind = 'AUTOMATIC') AS automatic,
		sum(items) FILTER (WHERE link_kind = 'NEEDS_CONFIRMATION') AS pending
	FROM risk_evidence GROUP BY audit_id, standard, control_id
) e USING (audit_id, standard, control_id);

-- The per-standard summary last published.
CREATE TABLE risk_summaries (
	audit_id text NOT NULL,
	standard text NOT NULL,
	applicable_controls integer NOT NULL,
	controls_with_evidence integer NOT NULL,
	very_low integer NOT NULL,
	low integer NOT NULL,
	medium integer NOT NULL,
	high integer NOT NULL,
	critical integer NOT NULL,
	blocking integer NOT NULL,
	top_controls text[] NOT NULL,       -- highest residual first
	top_scores integer[] NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (audit_id, standard),
	CHECK (cardinality(top_controls) = cardinality(top_scores))
);

-- The AI risk dimension scores of an audit (ISO 42001), last published.
CREATE TABLE risk_dimensions (
	audit_id text NOT NULL,
	dimension text NOT NULL,
	controls integer NOT NULL,
	residual_score smallint NULL,
	band text NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (audit_id, dimension)
);
