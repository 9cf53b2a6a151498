-- assay-risk: the evidence aggregates become an append-only log plus a compacted base.
--
-- Until now every batch upserted its evidence aggregates into the table risk_evidence
-- (INSERT ... ON CONFLICT DO UPDATE): a few thousand index probes and row updates per 1,000
-- events, the largest part of the service's time in PostgreSQL. Now each batch appends its
-- deltas with one COPY to risk_evidence_links, which has no index; now and then (every
-- risk.evidence.compact.rows appended rows) a batch folds the log into risk_evidence_base and
-- empties it. The aggregates are sums (items) and maxima (newest_day), so
-- base + log grouped by the key is the same as the old table, whatever the batches or the
-- compactions were: the view risk_evidence shows exactly that, with the old columns, and
-- risk_control_scores reads it as before. docs/risk-model.md describes the state.
--
-- Readers of several statements in one REPEATABLE READ snapshot (the service's state reload)
-- must take LOCK TABLE risk_evidence_links IN ACCESS SHARE MODE before their first query:
-- the compaction empties the log with TRUNCATE, which a snapshot taken before it does not
-- see (TRUNCATE is not MVCC-safe). Single statements (READ COMMITTED) need nothing.
--
-- Every instance of assay-risk must run this version: an older one writing the table
-- risk_evidence fails (it is a view now).

-- The existing aggregates stay where they are and become the compacted base (no copy).
ALTER TABLE risk_evidence RENAME TO risk_evidence_base;
ALTER TABLE risk_evidence_base RENAME CONSTRAINT risk_evidence_pkey TO risk_evidence_base_pkey;

-- Appended by every batch with evidence: one row per (audit, standard, control, source
-- system, tier, link kind) the batch links items to, with the batch's item count and newest
-- collected day (days since 1970-01-01 UTC). No key: nothing reads one row.
CREATE TABLE risk_evidence_links (
	audit_id text NOT NULL,
	standard text NOT NULL,
	control_id text NOT NULL,
	source_system text NOT NULL,
	tier smallint NOT NULL CHECK (tier BETWEEN 0 AND 4),
	link_kind text NOT NULL CHECK (link_kind IN ('DIRECT', 'AUTOMATIC', 'NEEDS_CONFIRMATION')),
	newest_day integer NOT NULL,
	items integer NOT NULL CHECK (items > 0)
) WITH (autovacuum_enabled = false); -- emptied by TRUNCATE, never updated or deleted from

-- The evidence per control as aggregates, as the table of 006 had them.
CREATE VIEW risk_evidence AS
SELECT audit_id, standard, control_id, source_system, tier, link_kind,
	max(newest_day) AS newest_day, sum(items)::integer AS items
FROM (
	SELECT audit_id, standard, control_id, source_system, tier, link_kind, newest_day, items
	FROM risk_evidence_base
	UNION ALL
	SELECT audit_id, standard, control_id, source_system, tier, link_kind, newest_day, items
	FROM risk_evidence_links
) e
GROUP BY audit_id, standard, control_id, source_system, tier, link_kind;

-- Same columns as in 006; it followed the rename, so it is pointed at the view again.
CREATE OR REPLACE VIEW risk_control_scores AS
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
