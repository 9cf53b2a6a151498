/*
 * assay-risk: coverage and residual risk per (audit, standard, applicable control), updated
 * incrementally (issue 7, docs/risk-model.md).
 *
 * Consumes assay.control.mapped (ControlMapped) and assay.audit.events (AuditOpened,
 * SoaSubmitted; other types are skipped); publishes RiskScored on assay.risk.scored, one per
 * audit and standard whose control scores, summary or dimension scores a batch changed, and
 * nothing when nothing changed. State: sql/006_risk.sql and sql/008_risk_evidence_log.sql,
 * mirrored in memory (risk_state.h); the model: risk_model.h.
 *
 *	return assay_service_main(argc, argv, &risk_service);
 *
 * Threads: the handler runs on the loop's thread; nothing here is shared.
 */
#ifndef RISK_H
#define RISK_H

#include "assay_service.h"
#include "risk_model.h"

/* The service's settings (risk_settings fills it; strings owned by the configuration). */
struct risk_config {
	char *consumes[2]; /* topic.control.mapped, topic.audit.events */
	char *produces[1]; /* topic.risk.scored */
	long long likelihood_default, impact_default;
	long long ai_high_risk, ai_high_risk_provider, ai_limited_risk, ai_not_assessed;
	long long tier[RISK_NTIERS];
	long long link_direct, link_automatic;
	long long fresh_full_days, fresh_window_days;
	long long single_source, source_bonus, max_reduction;
	long long band_low, band_medium, band_high, band_critical;
	long long top_count;
	long long compact_rows; /* evidence log rows appended before a batch compacts the log */
};

/* The settings table of assay-risk (ends with an entry whose name is NULL). */
extern const struct assay_setting risk_settings[];

/* The model parameters of cfg (not validated: risk_params_check). */
void risk_config_params(const struct risk_config *cfg, struct risk_params *p);

/* The service: name "assay-risk", topics and settings from risk_settings, metrics port 9104;
 * its handler context (created by the service main) loads the catalog, the model data and
 * the stored state at init and again after every partition assignment and fenced batch (so
 * several instances can share one consumer group). */
extern const struct assay_service_def risk_service;

#endif
