-- assay-mapper: its projection of the audits (standards in scope, SoA exclusions), accepted
-- evidence waiting for its audit, the links of evidence to controls, and the coverage view.

-- Audits as assay-mapper knows them from AuditOpened (assay.audit.events).
CREATE TABLE assay_mapper_audits (
	audit_id text PRIMARY KEY,
	tenant_id text NOT NULL,
	client_id text NOT NULL,
	standards text[] NOT NULL,          -- Standard symbols in the audit's scope
	opened_at timestamptz NOT NULL
);

-- The latest Statement of Applicability per audit and standard (SoaSubmitted): the Annex A
-- controls it excludes. A SoA may arrive before the AuditOpened it belongs to.
CREATE TABLE assay_mapper_soa (
	audit_id text NOT NULL,
	standard text NOT NULL,
	revision integer NOT NULL,
	excluded text[] NOT NULL,
	PRIMARY KEY (audit_id, standard)
);

-- Accepted evidence read before its audit's AuditOpened: the framed EvidenceAccepted value,
-- mapped and deleted when the audit arrives.
CREATE TABLE assay_mapper_pending (
	accepted_event_id text PRIMARY KEY,
	audit_id text NOT NULL,
	value bytea NOT NULL,
	received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assay_mapper_pending_audit ON assay_mapper_pending (audit_id);

-- The links of each mapped evidence item, one row per item (what one ControlMapped event
-- says). links: the item's links separated by ';', each "standard control_id link_kind" and,
-- for a crosswalk link, " via_standard via_control_id relation strength" (the claimed control
-- the edge starts from, the OSCAL relation from it, the edge's strength), e.g.
-- "ISO27001_2022 9.3.1 DIRECT;ISO42001_2023 9.3.1 AUTOMATIC ISO27001_2022 9.3.1 equivalent-to
-- high". DIRECT = claimed; AUTOMATIC = along a high-strength equivalent-to / equal-to edge;
-- NEEDS_CONFIRMATION = along any other edge, counts for nothing until an auditor confirms it.
-- Read them through the view assay_mapper_links (one row per link). Links say which evidence
-- may be looked at, not what it proves.
-- One text row per item rather than one row per link: a fifth of the rows and index
-- entries and no array parsing, which is what the write rate is made of (docs/crosswalk.md).
-- No unique key: the batch loop applies each input once (the offsets move in the same
-- transaction), and coverage counts distinct evidence_id anyway.
CREATE TABLE assay_mapper_mapped (
	accepted_event_id text NOT NULL,
	audit_id text NOT NULL,
	tenant_id text NOT NULL,
	client_id text NOT NULL,
	evidence_id text NOT NULL,
	links text NOT NULL,
	mapped_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assay_mapper_mapped_audit ON assay_mapper_mapped (audit_id);

-- One row per link.
CREATE VIEW assay_mapper_links AS
SELECT m.accepted_event_id, m.audit_id, m.tenant_id, m.client_id, m.evidence_id,
	split_part(l, ' ', 1) AS standard,
	split_part(l, ' ', 2) AS control_id,
	split_part(l, ' ', 3) AS link_kind,
	nullif(split_part(l, ' ', 4), '') AS via_standard,
	nullif(split_part(l, ' ', 5), '') AS via_control_id,
	nullif(split_part(l, ' ', 6), '') AS relation,
	nullif(split_part(l, ' ', 7), '') AS strength,
	m.mapped_at
FROM assay_mapper_mapped m, string_to_table(m.links, ';') AS l;

-- Coverage: per audit and standard in its scope, every applicable control (every clause;
-- every Annex A control the latest SoA does not exclude, all of them before a SoA) with the
-- number of distinct evidence items linked directly, automatically, and pending an auditor's
-- confirmation. Read it through assay_coverage_query() (services/core/assay_coverage.h).
CREATE VIEW assay_coverage AS
SELECT s.audit_id, s.standard, c.id AS control_id, c.annex_a, c.title,
	count(DISTINCT l.evidence_id) FILTER (WHERE l.link_kind = 'DIRECT') AS direct,
	count(DISTINCT l.evidence_id) FILTER (WHERE l.link_kind = 'AUTOMATIC') AS automatic,
	count(DISTINCT l.evidence_id) FILTER (WHERE l.link_kind = 'NEEDS_CONFIRMATION') AS pending
FROM (SELECT a.audit_id, unnest(a.standards) AS standard FROM assay_mapper_audits a) s
JOIN assay_catalog_controls c ON c.standard = s.standard
LEFT JOIN assay_mapper_soa soa ON soa.audit_id = s.audit_id AND soa.standard = s.standard
LEFT JOIN assay_mapper_links l
	ON l.audit_id = s.audit_id AND l.standard = s.standard AND l.control_id = c.id
WHERE NOT (c.annex_a AND soa.excluded IS NOT NULL AND c.id = ANY (soa.excluded))
GROUP BY s.audit_id, s.standard, c.id, c.annex_a, c.title;
