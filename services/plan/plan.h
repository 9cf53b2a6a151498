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
 *		return assay_service_main(argc, argv, &plan_service);
 *	}
 *
 * with plan_service a static descriptor over a static struct plan_context (main.c).
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

/*
 * The handler's context: the settings (assay_service_main fills them from plan_settings
 * before init) and the running service, which plan_init creates and plan_fini frees. One
 * static object per process (main.c); the descriptor points at it.
 */
struct plan;
struct plan_context {
	struct plan_settings settings;
	struct plan *plan; /* NULL outside init .. fini */
};

/*
 * The hooks of the service descriptor (struct assay_service_def), each given a
 * struct plan_context as ctx:
 *   plan_init      creates ctx->plan: rules from the settings, the catalog (Annex A lists,
 *                  edition windows), the state as committed, the contracts over env->codec
 *                  and the metrics; on failure nothing is kept (it may be called again)
 *   plan_fini      frees ctx->plan (before the codec it borrows)
 *   plan_handle    per batch: decode each command (the loop does not decode: the frame's
 *                  writer schema picks the generated decoder), apply it to a journalled
 *                  working copy of the state, emit its event or refusal; a frame that is not
 *                  an audit command is dead-lettered
 *   plan_write     writes the changed rows and the handled commands in the batch transaction
 *   plan_committed keeps the working copy; plan_rolled_back undoes it
 *   plan_assigned  reads the state again after every partition assignment and fenced batch
 *                  and replaces the one in memory, so several instances can share one group
 */
int plan_init(void *ctx, const struct assay_service_env *env, char *errstr, size_t errstr_size);
void plan_fini(void *ctx);
int plan_handle(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size);
int plan_write(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr,
               size_t errstr_size);
void plan_committed(void *ctx, struct assay_batch *batch);
void plan_rolled_back(void *ctx, struct assay_batch *batch);
int plan_assigned(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *partitions,
                  char *errstr, size_t errstr_size);

#endif
