-- assay-mapper keeps its audits in the shared audit projection (010_audit_projection.sql,
-- docs/audit-projection.md) instead of its own tables. Its rows (assay_mapper_audits,
-- assay_mapper_soa) are carried over to its default group and to every group holding a
-- position on its default input topic; the old tables become views of the same names, and
-- assay_coverage, which reads them, is recreated over the views unchanged.
CREATE TEMPORARY TABLE mapper_projection_groups ON COMMIT DROP AS
SELECT 'assay-mapper' AS consumer_group
UNION SELECT consumer_group FROM assay_offsets WHERE topic = 'assay.evidence.accepted';

-- opened audits; opened_at becomes milliseconds since the epoch
INSERT INTO assay_audit_projection (consumer_group, service, audit_id, tenant_id, client_id,
	opened, opened_at, standards)
SELECT g.consumer_group, 'assay-mapper', a.audit_id, a.tenant_id, a.client_id, true,
	(extract(epoch FROM a.opened_at) * 1000)::bigint, a.standards
FROM assay_mapper_audits a, mapper_projection_groups g;

-- audits only known from SoAs that came before their AuditOpened
INSERT INTO assay_audit_projection (consumer_group, service, audit_id, tenant_id, client_id,
	opened, standards)
SELECT g.consumer_group, 'assay-mapper', s.audit_id, '', '', false, array_agg(s.standard)
FROM assay_mapper_soa s, mapper_projection_groups g
WHERE NOT EXISTS (SELECT 1 FROM assay_mapper_audits a WHERE a.audit_id = s.audit_id)
GROUP BY g.consumer_group, s.audit_id;

-- the mapper kept only the excluded controls of a SoA: they become its rows (not applicable);
-- applicable controls were never stored and stay unlisted until the next SoaSubmitted
INSERT INTO assay_audit_projection_soa (consumer_group, audit_id, standard, revision,
	control_ids, applicable)
SELECT p.consumer_group, s.audit_id, s.standard, s.revision,
	ARRAY(SELECT d.e FROM (SELECT DISTINCT e FROM unnest(s.excluded) AS e) d
		ORDER BY d.e COLLATE "C"),
	ARRAY(SELECT false FROM (SELECT DISTINCT e FROM unnest(s.excluded) AS e) d)
FROM assay_mapper_soa s
JOIN assay_audit_projection p ON p.audit_id = s.audit_id AND p.service = 'assay-mapper'
WHERE s.standard = ANY (p.standards);

DROP VIEW assay_coverage;
DROP TABLE assay_mapper_audits, assay_mapper_soa;

-- The old tables as views: per audit, the newest row of any group of the service.
CREATE VIEW assay_mapper_audits AS
SELECT DISTINCT ON (audit_id) audit_id, tenant_id, client_id, standards,
	to_timestamp(opened_at / 1000.0) AS opened_at
FROM assay_audit_projection WHERE service = 'assay-mapper' AND opened
ORDER BY audit_id, updated_at DESC;

CREATE VIEW assay_mapper_soa AS
SELECT DISTINCT ON (s.audit_id, s.standard) s.audit_id, s.standard, s.revision,
	ARRAY(SELECT u.c FROM unnest(s.control_ids, s.applicable) AS u(c, a) WHERE NOT u.a)
		AS excluded
FROM assay_audit_projection_soa s
JOIN assay_audit_projection a USING (consumer_group, audit_id)
WHERE a.service = 'assay-mapper'
ORDER BY s.audit_id, s.standard, s.updated_at DESC;

-- Coverage as in 003_mapper.sql, over the views.
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
