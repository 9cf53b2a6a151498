/*
 * assay-intake: validates, de-duplicates and stores evidence at stream speed (issue 5).
 *
 * Consumes assay.evidence.submitted (EvidenceSubmitted) and assay.audit.events (AuditOpened,
 * SoaSubmitted, StageCompleted; other types are skipped); publishes EvidenceAccepted on
 * assay.evidence.accepted and EvidenceRejected on assay.evidence.rejected; stores accepted
 * evidence append-only in intake_evidence (sql/005_intake.sql) and its copy of the shared
 * audit projection in assay_audit_projection(_soa) (sql/010_audit_projection.sql). docs/intake.md
 *describes rules, ordering and memory.
 *
 *	return assay_service_main(argc, argv, &intake_service);
 *
 * Threads: the handler runs on the loop's thread; nothing here is shared with other threads.
 */
#ifndef INTAKE_H
#define INTAKE_H

#include "assay_service.h"
#include "intake_rules.h"

/* The service's settings (intake_settings fills it; strings owned by the configuration). */
struct intake_config {
	char *consumes[2]; /* topic.evidence.submitted, topic.audit.events */
	char *produces[2]; /* topic.evidence.accepted, topic.evidence.rejected */
	long long future_tolerance_ms;
	long long freshness_days;
	long long max_size_bytes;
	long long max_attributes;
	long long max_string_bytes;
	long long max_controls;
};

/* The settings table of assay-intake (ends with an entry whose name is NULL). */
extern const struct assay_setting intake_settings[];

struct intake;

/* The service: name "assay-intake", topics and settings from intake_settings, metrics port
 * 9102; its handler context (created by the service main) loads the catalog at init and,
 * after every assignment, replaces the audit projection and the de-duplication set with the
 * database's (several instances may share one consumer group). */
extern const struct assay_service_def intake_service;

/* The limits in effect (valid after init). */
const struct intake_limits *intake_limits(const struct intake *in);

#endif
