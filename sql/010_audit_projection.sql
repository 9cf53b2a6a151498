-- The audit projection shared by every consumer of assay.audit.events
-- (services/domain/assay_audit_projection.c, docs/audit-projection.md): per consumer group, its
-- own copy of each audit (tenant, client, standards in scope, completed standards, closed)
-- and of each standard's latest SoA. A consumer writes the audits a batch changed in that
-- batch's transaction and loads its group's rows after every partition assignment.
--
-- Replaces intake's tables (intake_audits, intake_soa): their rows are carried over below, and
-- views of the old names keep their readers (operators' queries, tests) working. The mapper's
-- follow in 011_mapper_audit_projection.sql.
CREATE TABLE assay_audit_projection (
	consumer_group text NOT NULL,        -- the consumer's group (assay_offsets.consumer_group)
	service text NOT NULL,               -- the consumer ("assay-intake"), for the views below
	audit_id text NOT NULL,
	tenant_id text NOT NULL,
	client_id text NOT NULL,
	opened boolean NOT NULL,             -- AuditOpened seen (else only early SoAs are known)
	opened_at bigint NOT NULL DEFAULT 0, -- its occurred_at, ms since the epoch
	standards text[] NOT NULL,           -- Standard symbols in scope
	completed text[] NOT NULL DEFAULT '{}',
	closed boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer_group, audit_id)
);

CREATE TABLE assay_audit_projection_soa (
	consumer_group text NOT NULL,
	audit_id text NOT NULL,
	standard text NOT NULL,
	revision integer NOT NULL,
	control_ids text[] NOT NULL,         -- sorted, each once
	applicable boolean[] NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer_group, audit_id, standard),
	CHECK (cardinality(control_ids) = cardinality(applicable))
);

-- Carry-over: intake's rows go to its default group (the service name) and to every group
-- that holds a position on its default input topic, so an upgraded intake continues from
-- its stored offsets with the projection it had.
CREATE TEMPORARY TABLE audit_projection_groups ON COMMIT DROP AS
SELECT 'assay-intake' AS consumer_group
UNION SELECT consumer_group FROM assay_offsets WHERE topic = 'assay.evidence.submitted';

INSERT INTO assay_audit_projection (consumer_group, service, audit_id, tenant_id, client_id,
	opened, opened_at, standards, completed, closed, updated_at)
SELECT g.consumer_group, 'assay-intake', a.audit_id, a.tenant_id, a.client_id, true, 0,
	a.standards, a.completed, a.closed, a.updated_at
FROM intake_audits a, audit_projection_groups g;

INSERT INTO assay_audit_projection_soa (consumer_group, audit_id, standard, revision,
	control_ids, applicable, updated_at)
SELECT g.consumer_group, s.audit_id, s.standard, s.revision, s.control_ids, s.applicable,
	s.updated_at
FROM intake_soa s, audit_projection_groups g;

DROP TABLE intake_audits, intake_soa;

-- The old tables as views: per audit, the newest row of any group of the service (one group
-- per service is the usual deployment).
CREATE VIEW intake_audits AS
SELECT DISTINCT ON (audit_id) audit_id, tenant_id, client_id, standards, completed, closed,
	updated_at
FROM assay_audit_projection WHERE service = 'assay-intake' AND opened
ORDER BY audit_id, updated_at DESC;

CREATE VIEW intake_soa AS
SELECT DISTINCT ON (s.audit_id, s.standard) s.audit_id, s.standard, s.revision, s.control_ids,
	s.applicable, s.updated_at
FROM assay_audit_projection_soa s
JOIN assay_audit_projection a USING (consumer_group, audit_id)
WHERE a.service = 'assay-intake'
ORDER BY s.audit_id, s.standard, s.updated_at DESC;
