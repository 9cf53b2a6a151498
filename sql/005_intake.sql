-- assay-intake: accepted evidence (append-only) and intake's own projection of the audits it
-- validates evidence against (kept current from assay.audit.events). docs/intake.md.

-- Evidence that passed every intake rule, one row per (tenant, evidence id), with the Kafka
-- position of the EvidenceSubmitted it came from. Rows are never updated or deleted (the
-- trigger below refuses it); a resubmission with the same hash is a no-op, one with another
-- hash is rejected (HASH_CONFLICT). The primary key is the last line of de-duplication: the
-- service de-duplicates in memory first. Ingest speed shapes the table: the primary key is its
-- only index, the hash format is checked by the service, not by a regex CHECK, and attributes
-- are json, not jsonb (together about twice as fast to COPY; docs/intake.md).
CREATE TABLE intake_evidence (
	tenant_id text NOT NULL,
	evidence_id text NOT NULL,
	sha256 text NOT NULL,               -- 64 lowercase hex digits (checked by intake)
	audit_id text NOT NULL,
	client_id text NOT NULL,
	submitted_event_id text NOT NULL,
	source_system text NOT NULL,
	kind text NOT NULL,
	collected_at timestamptz NOT NULL,
	size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
	uri text NOT NULL,
	controls text[] NOT NULL,           -- resolved, "ISO27001_2022:A.8.15"
	attributes json NOT NULL,           -- the producer's string map, as sent
	src_topic text NOT NULL,
	src_partition integer NOT NULL,
	src_offset bigint NOT NULL,
	accepted_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, evidence_id)
);

CREATE FUNCTION intake_evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'intake_evidence is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER intake_evidence_append_only BEFORE UPDATE OR DELETE ON intake_evidence
	FOR EACH ROW EXECUTE FUNCTION intake_evidence_append_only();
CREATE TRIGGER intake_evidence_no_truncate BEFORE TRUNCATE ON intake_evidence
	FOR EACH STATEMENT EXECUTE FUNCTION intake_evidence_append_only();

-- The audits as intake sees them (AuditOpened, StageCompleted): owner, scope, closure. An
-- audit is closed once every standard of its scope has completed its stage.
CREATE TABLE intake_audits (
	audit_id text PRIMARY KEY,
	tenant_id text NOT NULL,
	client_id text NOT NULL,
	standards text[] NOT NULL,          -- Standard symbols in scope
	completed text[] NOT NULL DEFAULT '{}',
	closed boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- The latest SoA (SoaSubmitted) per audit and standard: control ids with their applicability.
CREATE TABLE intake_soa (
	audit_id text NOT NULL,
	standard text NOT NULL,
	revision integer NOT NULL,
	control_ids text[] NOT NULL,
	applicable boolean[] NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (audit_id, standard),
	CHECK (cardinality(control_ids) = cardinality(applicable))
);
