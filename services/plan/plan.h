/*
 * assay-plan: the certification body's audit programme. Consumes assay.audit.commands
 * (RegisterClient, RecordAuditor, OpenAudit, AssignTeamMember, SubmitSoa, CompleteStage,
 * RecordDecisionMaker), keeps clients, auditors, cycles, audits, teams and SoAs in PostgreSQL
 * and in memory, and publishes one event per applied command, or AuditCommandRefused with
 * every broken rule, on assay.audit.events. docs/audit-programme.md describes the rules and
 * the audit-time calculation.
 *
 *	int main(int argc, char **argv)
 *	{
 *		struct plan_service *svc = plan_service_new();
 *		struct assay_service_def def;
 *		plan_service_def(svc, &def);
 *		return assay_service_main(argc, argv, &def);
 *	}
 *
 * Threads: a service handle is used by the loop thread only.
 */
#ifndef PLAN_H
#define PLAN_H

#include "plan_rules.h"
#include "assay_config.h"
#include "assay_service.h"

/* The service's settings (plan_settings fills them). */
struct plan_settings {
	/* the two topic names first: the service definition points at them */
	char *topic_commands;
	char *topic_events;
	long long conflict_months;
	char *isms_table;
	char *aims_table;
	long long isms_adjustment_cap_percent;
	long long aims_adjustment_cap_percent;
	bool aims_identical_groups;
	long long integration_max_percent;
	char *integration_table;
	long long total_reduction_cap_percent;
	long long onsite_min_percent;
	long long sampling_permille[PLAN_NAUDIT_TYPES];
	long long share_permille[PLAN_NAUDIT_TYPES];
};

/* The settings table of assay-plan (docs/configuration.md). */
extern const struct assay_setting plan_settings[];

/*
 * Rules from loaded settings: parses the tables and integration list and checks them.
 * Returns 0 or ASSAY_ERR_FATAL with every reason found. The catalog ops are left empty.
 */
int plan_rules_from_settings(const struct plan_settings *s, struct plan_rules *r, char *errstr,
                             size_t errstr_size);

struct plan_service;

/* A service handle (NULL when out of memory); free with plan_service_destroy. */
struct plan_service *plan_service_new(void);
void plan_service_destroy(struct plan_service *svc);

/* Fills def for assay_service_main: name "assay-plan", metrics port 9101, the settings, the
 * handler with its assigned hook (reads the state again after every partition assignment and
 * fenced batch and replaces the one in memory, so several instances can share one consumer
 * group) and the init hook (loads the catalog and the state). def points into svc, which
 * must outlive the service run. */
void plan_service_def(struct plan_service *svc, struct assay_service_def *def);

#endif
