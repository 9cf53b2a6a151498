-- assay-plan: clients, auditors, certification cycles, audits with their computed audit time,
-- teams, Statements of Applicability, stage completions, decision makers, and the command ids
-- already handled. Written only by assay-plan (services/plan/plan_db.c), in the batch
-- transaction that also moves its consumer offsets; read back into memory at start.
-- Dates are calendar dates (the Avro "date" logical type); standards, roles and kinds are the
-- Avro enum symbols.

CREATE TABLE assay_plan_clients (
	client_id text PRIMARY KEY,
	tenant_id text NOT NULL,
	revision integer NOT NULL CHECK (revision >= 1),
	legal_name text NOT NULL,
	persons integer NOT NULL CHECK (persons >= 0),
	command_id text NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assay_plan_client_sites (
	client_id text NOT NULL REFERENCES assay_plan_clients ON DELETE CASCADE,
	seq integer NOT NULL,
	site_id text NOT NULL,
	name text NOT NULL,
	country text NULL,
	persons integer NOT NULL CHECK (persons >= 0),
	central_function boolean NOT NULL,
	PRIMARY KEY (client_id, site_id),
	UNIQUE (client_id, seq)
);

-- Justified identical-work groups (27006-1 C.3.4): counted as ceil(sqrt(persons)).
CREATE TABLE assay_plan_client_groups (
	client_id text NOT NULL REFERENCES assay_plan_clients ON DELETE CASCADE,
	seq integer NOT NULL,
	group_id text NOT NULL,
	description text NOT NULL,
	persons integer NOT NULL CHECK (persons >= 1),
	justification text NOT NULL CHECK (justification <> ''),
	PRIMARY KEY (client_id, group_id),
	UNIQUE (client_id, seq)
);

CREATE TABLE assay_plan_client_ai_systems (
	client_id text NOT NULL REFERENCES assay_plan_clients ON DELETE CASCADE,
	seq integer NOT NULL,
	ai_system_id text NOT NULL,
	name text NOT NULL,
	roles text NOT NULL CHECK (roles <> ''),    -- AiRole symbols, comma-separated
	eu_ai_act_tier text NOT NULL,
	intended_purpose text NULL,
	PRIMARY KEY (client_id, ai_system_id),
	UNIQUE (client_id, seq)
);

CREATE TABLE assay_plan_auditors (
	person_id text PRIMARY KEY,
	tenant_id text NOT NULL,
	revision integer NOT NULL CHECK (revision >= 1),
	name text NOT NULL,
	command_id text NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assay_plan_competences (
	person_id text NOT NULL REFERENCES assay_plan_auditors ON DELETE CASCADE,
	seq integer NOT NULL,
	standard text NOT NULL,
	role text NOT NULL,
	technical_area text NULL,
	valid_from date NULL,
	valid_until date NULL,
	PRIMARY KEY (person_id, seq),
	CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from <= valid_until)
);

CREATE TABLE assay_plan_client_relations (
	person_id text NOT NULL REFERENCES assay_plan_auditors ON DELETE CASCADE,
	seq integer NOT NULL,
	client_id text NOT NULL,
	kind text NOT NULL,
	started_on date NOT NULL,
	ended_on date NULL,
	PRIMARY KEY (person_id, seq),
	CHECK (ended_on IS NULL OR ended_on >= started_on)
);

-- Certification cycles per client and standard (17021-1 §9.1.3); a stage 1 opens one.
CREATE TABLE assay_plan_cycles (
	cycle_id text PRIMARY KEY,
	client_id text NOT NULL REFERENCES assay_plan_clients,
	standard text NOT NULL,
	seq integer NOT NULL CHECK (seq >= 1),
	stage1_completed_on date NULL,
	UNIQUE (client_id, standard, seq)
);

CREATE TABLE assay_plan_audits (
	audit_id text PRIMARY KEY,
	tenant_id text NOT NULL,
	client_id text NOT NULL REFERENCES assay_plan_clients,
	audit_type text NOT NULL,
	planned_start date NOT NULL,
	planned_end date NOT NULL CHECK (planned_end >= planned_start),
	documentation boolean NOT NULL,
	policy_and_objectives boolean NOT NULL,
	internal_audit boolean NOT NULL,
	management_review boolean NOT NULL,
	risk_process boolean NOT NULL,
	corrective_action boolean NOT NULL,
	responsibilities boolean NOT NULL,
	command_id text NOT NULL,
	opened_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assay_plan_audit_standards (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	seq integer NOT NULL,
	standard text NOT NULL,
	cycle_id text NOT NULL REFERENCES assay_plan_cycles,
	scope_statement text NOT NULL CHECK (scope_statement <> ''),
	PRIMARY KEY (audit_id, standard),
	UNIQUE (audit_id, seq)
);
CREATE INDEX assay_plan_audit_standards_cycle ON assay_plan_audit_standards (cycle_id);

-- Sites to visit (given, or sampled by assay-plan: IAF MD 1).
CREATE TABLE assay_plan_audit_sites (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	seq integer NOT NULL,
	site_id text NOT NULL,
	PRIMARY KEY (audit_id, seq)
);

-- Adjustment factors, each with its justification (domain-rules R2.5).
CREATE TABLE assay_plan_adjustments (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	seq integer NOT NULL,
	standard text NOT NULL,
	factor text NOT NULL,
	percent double precision NOT NULL,
	justification text NOT NULL CHECK (justification <> ''),
	PRIMARY KEY (audit_id, seq)
);

-- The audit-time calculation with every factor (docs/audit-programme.md). NULL days: a
-- standard's table is not configured ("AIMS audit time not configured").
CREATE TABLE assay_plan_audit_times (
	audit_id text PRIMARY KEY REFERENCES assay_plan_audits,
	configured boolean NOT NULL,
	sites_total integer NOT NULL,
	sites_sampled integer NOT NULL,
	sampling_factor double precision NOT NULL,
	sum_days double precision NULL,
	integration_elements integer NOT NULL CHECK (integration_elements BETWEEN 0 AND 7),
	integration_reduction_percent double precision NOT NULL
		CHECK (integration_reduction_percent BETWEEN 0 AND 20),
	total_reduction_percent double precision NULL,
	total_reduction_cap_percent double precision NOT NULL,
	initial_days double precision NULL,
	audit_share_percent double precision NOT NULL,
	total_days double precision NULL,
	onsite_days double precision NULL,
	offsite_days double precision NULL,
	onsite_min_percent double precision NOT NULL,
	notes text NOT NULL,                        -- one note per line
	CHECK (onsite_days IS NULL OR onsite_days >= total_days * onsite_min_percent / 100 - 1e-9)
);

CREATE TABLE assay_plan_audit_time_standards (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	standard text NOT NULL,
	configured boolean NOT NULL,
	persons integer NOT NULL,
	effective_persons integer NOT NULL,
	table_days double precision NULL,
	adjustment_sum_percent double precision NOT NULL,
	adjustment_cap_percent double precision NOT NULL,
	adjustment_applied_percent double precision NOT NULL
		CHECK (adjustment_applied_percent >= -adjustment_cap_percent - 1e-9),
	days double precision NULL,
	PRIMARY KEY (audit_id, standard)
);

CREATE TABLE assay_plan_audit_time_groups (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	standard text NOT NULL,
	group_id text NOT NULL,
	persons integer NOT NULL,
	counted integer NOT NULL,
	PRIMARY KEY (audit_id, standard, group_id)
);

CREATE TABLE assay_plan_team (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	person_id text NOT NULL REFERENCES assay_plan_auditors,
	role text NOT NULL CHECK (role IN ('AUDITOR', 'LEAD_AUDITOR', 'TECHNICAL_EXPERT')),
	standards text NOT NULL CHECK (standards <> ''), -- Standard symbols, comma-separated
	PRIMARY KEY (audit_id, person_id)
);
CREATE INDEX assay_plan_team_person ON assay_plan_team (person_id);

CREATE TABLE assay_plan_soas (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	standard text NOT NULL,
	revision integer NOT NULL CHECK (revision >= 1),
	soa_version text NOT NULL,
	applicable_count integer NOT NULL,
	excluded_count integer NOT NULL,
	command_id text NOT NULL,
	submitted_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (audit_id, standard, revision)
);

CREATE TABLE assay_plan_soa_rows (
	audit_id text NOT NULL,
	standard text NOT NULL,
	revision integer NOT NULL,
	control_id text NOT NULL,
	applicable boolean NOT NULL,
	justification text NOT NULL CHECK (justification <> ''),
	PRIMARY KEY (audit_id, standard, revision, control_id),
	FOREIGN KEY (audit_id, standard, revision) REFERENCES assay_plan_soas
);

CREATE TABLE assay_plan_stage_completions (
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	standard text NOT NULL,
	stage text NOT NULL,
	last_day date NOT NULL,
	command_id text NOT NULL,
	PRIMARY KEY (audit_id, standard)
);

-- Decision makers per client, standard and cycle (17021-1 §9.5: never on that cycle's teams).
CREATE TABLE assay_plan_decision_makers (
	cycle_id text NOT NULL REFERENCES assay_plan_cycles,
	person_id text NOT NULL REFERENCES assay_plan_auditors,
	audit_id text NOT NULL REFERENCES assay_plan_audits,
	command_id text NOT NULL,
	PRIMARY KEY (cycle_id, person_id)
);

-- Every command id handled once (applied, refused or ignored as an identical re-send): the
-- second line of defence against applying a re-sent command twice.
CREATE TABLE assay_plan_commands (
	command_id text PRIMARY KEY,
	command_type text NOT NULL,
	outcome text NOT NULL CHECK (outcome IN ('applied', 'refused', 'ignored')),
	reasons integer NOT NULL DEFAULT 0,
	topic text NOT NULL,
	partition integer NOT NULL,
	"offset" bigint NOT NULL,
	handled_at timestamptz NOT NULL DEFAULT now()
);
