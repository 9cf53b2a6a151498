/*
 * assay-plan's handler on the batch loop (plan.h): settings, start-up (catalog and state from
 * PostgreSQL), and per batch: decode each command, apply it to a journaled working copy of the
 * state (so later commands of the batch see earlier ones), emit its event or its refusal,
 * write the changed rows in the batch transaction, and keep or undo the working copy when the
 * transaction commits or rolls back. init loads the state once at start; assigned reads it
 * again after every partition assignment and every fenced batch and replaces the one in
 * memory, since another instance of the consumer group may have changed the tables while it
 * owned those partitions (the load in init only makes the first reload redundant).
 */
#include "plan.h"
#include "assay_vec.h"
#include "plan_avro.h"
#include "plan_db.h"
#include "assay_catalog.h"
#include "assay_err.h"
#include "assay_log.h"
#include "assay_metrics.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S(field) offsetof(struct plan_settings, field)

const struct assay_setting plan_settings[] = {
        {"topic.audit.commands", "ASSAY_TOPIC_AUDIT_COMMANDS", ASSAY_SETTING_STRING,
         "assay.audit.commands", 0, 0, S(topic_commands), "topic of the audit commands consumed"},
        {"topic.audit.events", "ASSAY_TOPIC_AUDIT_EVENTS", ASSAY_SETTING_STRING,
         "assay.audit.events", 0, 0, S(topic_events), "topic the audit events are published to"},
        {"plan.conflict.months", "ASSAY_PLAN_CONFLICT_MONTHS", ASSAY_SETTING_INT, "24", 0, 600,
         S(conflict_months),
         "months after consultancy, employment or a declared relation with a client during "
         "which a person may not audit or decide it (17021-1, domain-rules R1.38)"},
        {"plan.time.isms.table", "ASSAY_PLAN_TIME_ISMS_TABLE", ASSAY_SETTING_STRING,
         plan_isms_table_default, 0, 0, S(isms_table),
         "ISMS audit-time table, persons:days bands (ISO/IEC 27006-1 Annex C, domain-rules "
         "R2.10)"},
        {"plan.time.aims.table", "ASSAY_PLAN_TIME_AIMS_TABLE", ASSAY_SETTING_STRING, "", 0, 0,
         S(aims_table),
         "AIMS audit-time table, persons:days bands; empty: not configured, no public source "
         "(domain-rules R2.16)"},
        {"plan.time.isms.adjustment.cap.percent", "ASSAY_PLAN_TIME_ISMS_ADJUSTMENT_CAP_PERCENT",
         ASSAY_SETTING_INT, "30", 0, 99, S(isms_adjustment_cap_percent),
         "largest reduction of the ISMS table time by adjustment factors (domain-rules R2.13)"},
        {"plan.time.aims.adjustment.cap.percent", "ASSAY_PLAN_TIME_AIMS_ADJUSTMENT_CAP_PERCENT",
         ASSAY_SETTING_INT, "30", 0, 99, S(aims_adjustment_cap_percent),
         "largest reduction of the AIMS table time by adjustment factors (domain-rules R2.5)"},
        {"plan.time.aims.identical.groups", "ASSAY_PLAN_TIME_AIMS_IDENTICAL_GROUPS",
         ASSAY_SETTING_BOOL, "false", 0, 0, S(aims_identical_groups),
         "count identical-work groups as ceil(sqrt(n)) for AIMS too (ISMS always does)"},
        {"plan.time.integration.max.percent", "ASSAY_PLAN_TIME_INTEGRATION_MAX_PERCENT",
         ASSAY_SETTING_INT, "20", 0, 20, S(integration_max_percent),
         "largest reduction for an integrated management system (IAF MD 11, domain-rules "
         "R2.18)"},
        {"plan.time.integration.table", "ASSAY_PLAN_TIME_INTEGRATION_TABLE", ASSAY_SETTING_STRING,
         "", 0, 0, S(integration_table),
         "reduction percent for 0..7 integrated elements, 8 comma-separated numbers; empty: "
         "linear up to the maximum (domain-rules R2.20)"},
        {"plan.time.total.reduction.cap.percent", "ASSAY_PLAN_TIME_TOTAL_REDUCTION_CAP_PERCENT",
         ASSAY_SETTING_INT, "50", 0, 99, S(total_reduction_cap_percent),
         "largest total reduction against the table times (IAF MD 1, domain-rules R2.19)"},
        {"plan.time.onsite.min.percent", "ASSAY_PLAN_TIME_ONSITE_MIN_PERCENT", ASSAY_SETTING_INT,
         "80", 0, 100, S(onsite_min_percent),
         "smallest on-site share of the audit time (domain-rules R2.2)"},
        {"plan.sampling.initial.permille", "ASSAY_PLAN_SAMPLING_INITIAL_PERMILLE",
         ASSAY_SETTING_INT, "1000", 1, 10000, S(sampling_permille[PLAN_STAGE_1]),
         "multi-site sample factor f (x1000) of stage 1 audits: ceil(f*sqrt(sites)) (IAF MD 1)"},
        {"plan.sampling.stage2.permille", "ASSAY_PLAN_SAMPLING_STAGE2_PERMILLE", ASSAY_SETTING_INT,
         "1000", 1, 10000, S(sampling_permille[PLAN_STAGE_2]),
         "multi-site sample factor f (x1000) of stage 2 audits (IAF MD 1)"},
        {"plan.sampling.surveillance.permille", "ASSAY_PLAN_SAMPLING_SURVEILLANCE_PERMILLE",
         ASSAY_SETTING_INT, "600", 1, 10000, S(sampling_permille[PLAN_SURVEILLANCE]),
         "multi-site sample factor f (x1000) of surveillance audits (IAF MD 1)"},
        {"plan.sampling.recertification.permille", "ASSAY_PLAN_SAMPLING_RECERTIFICATION_PERMILLE",
         ASSAY_SETTING_INT, "800", 1, 10000, S(sampling_permille[PLAN_RECERTIFICATION]),
         "multi-site sample factor f (x1000) of recertification audits (IAF MD 1)"},
        {"plan.sampling.special.permille", "ASSAY_PLAN_SAMPLING_SPECIAL_PERMILLE",
         ASSAY_SETTING_INT, "1000", 1, 10000, S(sampling_permille[PLAN_SPECIAL]),
         "multi-site sample factor f (x1000) of special audits (no source: as initial)"},
        {"plan.share.stage1.permille", "ASSAY_PLAN_SHARE_STAGE1_PERMILLE", ASSAY_SETTING_INT, "333",
         1, 10000, S(share_permille[PLAN_STAGE_1]),
         "share (x1000) of the initial audit time a stage 1 takes (domain-rules §2.6)"},
        {"plan.share.stage2.permille", "ASSAY_PLAN_SHARE_STAGE2_PERMILLE", ASSAY_SETTING_INT, "667",
         1, 10000, S(share_permille[PLAN_STAGE_2]),
         "share (x1000) of the initial audit time a stage 2 takes (domain-rules §2.6)"},
        {"plan.share.surveillance.permille", "ASSAY_PLAN_SHARE_SURVEILLANCE_PERMILLE",
         ASSAY_SETTING_INT, "333", 1, 10000, S(share_permille[PLAN_SURVEILLANCE]),
         "share (x1000) of the initial audit time a surveillance audit takes (R2.6)"},
        {"plan.share.recertification.permille", "ASSAY_PLAN_SHARE_RECERTIFICATION_PERMILLE",
         ASSAY_SETTING_INT, "667", 1, 10000, S(share_permille[PLAN_RECERTIFICATION]),
         "share (x1000) of the initial audit time a recertification audit takes (R2.6)"},
        {"plan.share.special.permille", "ASSAY_PLAN_SHARE_SPECIAL_PERMILLE", ASSAY_SETTING_INT,
         "333", 1, 10000, S(share_permille[PLAN_SPECIAL]),
         "share (x1000) of the initial audit time a special audit takes (no source: as "
         "surveillance)"},
        {NULL, NULL, 0, NULL, 0, 0, 0, "assay-plan settings"},
};

/* Appends one configuration problem to errstr ("; "-separated). */
static void problem(char *errstr, size_t errstr_size, size_t *len, int *bad, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static void problem(char *errstr, size_t errstr_size, size_t *len, int *bad, const char *fmt, ...)
{
	va_list ap;
	int n;

	*bad = 1;
	if (errstr == NULL || *len + 3 >= errstr_size)
		return;
	if (*len > 0)
		*len += (size_t)snprintf(errstr + *len, errstr_size - *len, "; ");
	va_start(ap, fmt);
	n = vsnprintf(errstr + *len, errstr_size - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n;
	if (*len >= errstr_size)
		*len = errstr_size - 1;
}

int plan_rules_from_settings(const struct plan_settings *s, struct plan_rules *r, char *errstr,
                             size_t errstr_size)
{
	char why[256];
	size_t len = 0;
	int bad = 0;

	plan_rules_default(r);
	if (errstr && errstr_size)
		errstr[0] = '\0';
	r->conflict_months = (int)s->conflict_months;
	if (plan_time_table_parse(s->isms_table, &r->time.table[PLAN_ISMS], why, sizeof(why)) != 0)
		problem(errstr, errstr_size, &len, &bad, "plan.time.isms.table: %s", why);
	if (plan_time_table_parse(s->aims_table, &r->time.table[PLAN_AIMS], why, sizeof(why)) != 0)
		problem(errstr, errstr_size, &len, &bad, "plan.time.aims.table: %s", why);
	r->time.adjustment_cap_percent[PLAN_ISMS] = (double)s->isms_adjustment_cap_percent;
	r->time.adjustment_cap_percent[PLAN_AIMS] = (double)s->aims_adjustment_cap_percent;
	r->time.identical_groups[PLAN_AIMS] = s->aims_identical_groups;
	plan_time_integration_linear(&r->time, (double)s->integration_max_percent);
	if (s->integration_table && s->integration_table[0]) {
		const char *p = s->integration_table;
		int k = 0;

		for (; k <= PLAN_INTEGRATION_ELEMENTS; k++) {
			char *end;
			double x = strtod(p, &end);

			if (end == p || x < 0 || x > (double)s->integration_max_percent ||
			    (k > 0 && x < r->time.integration_percent[k - 1]))
				break;
			r->time.integration_percent[k] = x;
			p = end;
			while (*p == ' ')
				p++;
			if (k < PLAN_INTEGRATION_ELEMENTS) {
				if (*p != ',')
					break;
				p++;
			}
		}
		if (k <= PLAN_INTEGRATION_ELEMENTS || *p != '\0')
			problem(errstr, errstr_size, &len, &bad,
			        "plan.time.integration.table: expected 8 non-decreasing percents "
			        "between 0 and %lld",
			        s->integration_max_percent);
	}
	r->time.total_reduction_cap_percent = (double)s->total_reduction_cap_percent;
	r->time.onsite_min_percent = (double)s->onsite_min_percent;
	for (int t = 0; t < PLAN_NAUDIT_TYPES; t++) {
		r->time.sampling_factor[t] = (double)s->sampling_permille[t] / 1000.0;
		r->time.share_percent[t] = (double)s->share_permille[t] / 10.0;
	}
	return bad ? ASSAY_ERR_FATAL : 0;
}

/* ---- the service ---- */

static const char *const event_names[] = {
        "org.assay.v1.ClientRegistered",     "org.assay.v1.AuditorRecorded",
        "org.assay.v1.AuditOpened",          "org.assay.v1.TeamMemberAssigned",
        "org.assay.v1.SoaSubmitted",         "org.assay.v1.StageCompleted",
        "org.assay.v1.DecisionMakerRecorded"};
#define REFUSED_NAME "org.assay.v1.AuditCommandRefused"

struct plan_service {
	struct plan_settings settings;
	struct plan_rules rules;
	struct plan_state *state;
	struct assay_catalog *catalog;
	const char **annex_a[PLAN_NSTANDARDS];
	size_t nannex_a[PLAN_NSTANDARDS];
	const struct assay_schema *events[PLAN_NCMD_KINDS];
	const struct assay_schema *refused;
	struct assay_log *log;
	struct assay_counter *m_applied, *m_refused, *m_ignored;
	/* per batch */
	struct plan_arena *arena;
	struct plan_cmdlog *cmdlog;
	size_t ncmdlog, cmdlog_cap;
	uint64_t n_applied, n_refused, n_ignored;
	struct plan_db db;
};

static size_t catalog_annex_a(void *arg, int standard, const char *const **ids)
{
	struct plan_service *svc = arg;

	if (standard < 0 || standard >= PLAN_NSTANDARDS)
		return 0;
	*ids = svc->annex_a[standard];
	return svc->nannex_a[standard];
}

static bool catalog_edition_valid(void *arg, int standard, int64_t at_ms)
{
	struct plan_service *svc = arg;

	return standard >= 0 && standard < PLAN_NSTANDARDS &&
	       assay_catalog_edition_valid(svc->catalog, plan_standard_names[standard], at_ms);
}

struct plan_service *plan_service_new(void)
{
	struct plan_service *svc = calloc(1, sizeof(*svc));

	if (svc == NULL)
		return NULL;
	plan_db_init(&svc->db);
	return svc;
}

static void drop_catalog(struct plan_service *svc)
{
	for (int s = 0; s < PLAN_NSTANDARDS; s++) {
		free(svc->annex_a[s]);
		svc->annex_a[s] = NULL;
		svc->nannex_a[s] = 0;
	}
	assay_catalog_destroy(svc->catalog);
	svc->catalog = NULL;
}

void plan_service_destroy(struct plan_service *svc)
{
	if (svc == NULL)
		return;
	plan_state_destroy(svc->state);
	drop_catalog(svc);
	plan_arena_destroy(svc->arena);
	free(svc->cmdlog);
	plan_db_release(&svc->db);
	free(svc);
}

/*
 * Reads the plan tables into a new state in one read-only snapshot (its own REPEATABLE READ
 * transaction when conn is idle) and, on success only, replaces svc->state with it, freeing
 * the old one (an open batch of it is rolled back); on failure svc->state is left as it was.
 */
static int reload(struct plan_service *svc, PGconn *conn, char *errstr, size_t errstr_size)
{
	struct plan_state *st = plan_state_new();
	bool own = false;
	int err = 0;

	if (st == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	err = assay_pg_snapshot_begin(conn, &own, errstr, errstr_size);
	if (!err)
		err = plan_db_load(conn, st, errstr, errstr_size);
	err = assay_pg_snapshot_end(conn, own, err, errstr, errstr_size);
	if (err) {
		plan_state_destroy(st);
		return err;
	}
	plan_state_destroy(svc->state);
	svc->state = st;
	return 0;
}

static int plan_init(void *ctx, const struct assay_service_env *env, char *errstr,
                     size_t errstr_size)
{
	struct plan_service *svc = ctx;
	int err;

	svc->log = env->log;
	err = plan_rules_from_settings(&svc->settings, &svc->rules, errstr, errstr_size);
	if (err)
		return err;
	/* Annex A control lists for the SoA check, edition windows for E19 */
	drop_catalog(svc);
	err = assay_catalog_load(env->conn, &svc->catalog, errstr, errstr_size);
	if (err)
		return err;
	for (int s = 0; s < PLAN_NSTANDARDS; s++) {
		const char *name = plan_standard_names[s];
		size_t n = assay_catalog_count(svc->catalog, name, true);

		if (n == 0)
			continue;
		svc->annex_a[s] = calloc(n, sizeof(char *));
		if (svc->annex_a[s] == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		for (size_t i = 0; i < n; i++)
			svc->annex_a[s][i] = assay_catalog_at(svc->catalog, name, true, i)->id;
		svc->nannex_a[s] = n;
	}
	svc->rules.catalog.annex_a = catalog_annex_a;
	svc->rules.catalog.edition_valid = catalog_edition_valid;
	svc->rules.catalog.arg = svc;
	/* the state as committed (assigned reads it again for every assignment) */
	err = reload(svc, env->conn, errstr, errstr_size);
	if (err)
		return err;
	for (int k = 0; k < PLAN_NCMD_KINDS; k++)
		if ((err = assay_codec_schema_by_name(env->codec, event_names[k], &svc->events[k],
		                                      errstr, errstr_size)) != 0)
			return err;
	err = assay_codec_schema_by_name(env->codec, REFUSED_NAME, &svc->refused, errstr,
	                                 errstr_size);
	if (err)
		return err;
	svc->m_applied = assay_metrics_counter(env->metrics, "assay_plan_commands_applied_total",
	                                       "audit commands applied", NULL);
	svc->m_refused = assay_metrics_counter(env->metrics, "assay_plan_commands_refused_total",
	                                       "audit commands refused with reasons", NULL);
	svc->m_ignored = assay_metrics_counter(env->metrics, "assay_plan_commands_ignored_total",
	                                       "audit commands ignored as already handled", NULL);
	assay_log_info(
	        svc->log, "plan state loaded",
	        ASSAY_LF_INT("clients", (int64_t)plan_state_count(svc->state, PLAN_MAP_CLIENT)),
	        ASSAY_LF_INT("auditors", (int64_t)plan_state_count(svc->state, PLAN_MAP_PERSON)),
	        ASSAY_LF_INT("audits", (int64_t)plan_state_count(svc->state, PLAN_MAP_AUDIT)),
	        ASSAY_LF_INT("commands", (int64_t)plan_state_count(svc->state, PLAN_MAP_COMMAND)));
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Emits the event in v (a value of s) for message i under key. */
static int emit(struct plan_service *svc, struct assay_batch *batch, size_t i,
                const struct assay_schema *s, avro_value_t *v, const char *key, size_t key_len,
                char *errstr, size_t errstr_size)
{
	return assay_batch_emit_avro(batch, i, svc->settings.topic_events, key, key_len, s, v,
	                             errstr, errstr_size);
}

static int emit_applied(struct plan_service *svc, struct assay_batch *batch, size_t i,
                        const struct plan_cmd *cmd, const struct plan_result *res,
                        const struct plan_event_head *h, char *errstr, size_t errstr_size)
{
	const struct assay_schema *s = svc->events[cmd->kind];
	avro_value_t v;
	const char *key;
	int err;

	if (assay_codec_value_new(s, &v) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "event value: out of memory");
	switch (cmd->kind) {
	case PLAN_REGISTER_CLIENT:
		err = plan_encode_client_registered(&v, h, res->client);
		key = res->client->client_id;
		break;
	case PLAN_RECORD_AUDITOR:
		err = plan_encode_auditor_recorded(&v, h, res->person);
		key = res->person->person_id;
		break;
	case PLAN_OPEN_AUDIT:
		err = plan_encode_audit_opened(&v, h, res->audit);
		key = res->audit->audit_id;
		break;
	case PLAN_ASSIGN_TEAM_MEMBER:
		err = plan_encode_team_member_assigned(&v, h, res->audit, res->member);
		key = res->audit->audit_id;
		break;
	case PLAN_SUBMIT_SOA:
		err = plan_encode_soa_submitted(&v, h, res->audit, res->soa);
		key = res->audit->audit_id;
		break;
	case PLAN_COMPLETE_STAGE:
		err = plan_encode_stage_completed(&v, h, res->audit, &cmd->u.complete);
		key = res->audit->audit_id;
		break;
	default:
		err = plan_encode_decision_maker_recorded(&v, h, res->audit, cmd->u.dm.standard,
		                                          res->cycle_id, cmd->u.dm.person_id);
		key = res->audit->audit_id;
		break;
	}
	if (err)
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                 "encode %s: the value does not fit the schema", s->full_name);
	else
		err = emit(svc, batch, i, s, &v, key, strlen(key), errstr, errstr_size);
	avro_value_decref(&v);
	return err;
}

static int emit_refused(struct plan_service *svc, struct assay_batch *batch, size_t i,
                        const struct assay_msg *m, const struct plan_cmd *cmd,
                        const struct plan_result *res, const struct plan_event_head *h,
                        char *errstr, size_t errstr_size)
{
	const char *client = NULL, *audit = NULL, *person = NULL;
	const struct plan_audit *au = NULL;
	avro_value_t v;
	int err;

	switch (cmd->kind) {
	case PLAN_REGISTER_CLIENT:
		client = cmd->u.client.client_id;
		break;
	case PLAN_RECORD_AUDITOR:
		person = cmd->u.person.person_id;
		break;
	case PLAN_OPEN_AUDIT:
		audit = cmd->u.audit.audit_id;
		client = cmd->u.audit.client_id;
		break;
	case PLAN_ASSIGN_TEAM_MEMBER:
		audit = cmd->u.assign.audit_id;
		person = cmd->u.assign.person_id;
		break;
	case PLAN_SUBMIT_SOA:
		audit = cmd->u.soa.audit_id;
		break;
	case PLAN_COMPLETE_STAGE:
		audit = cmd->u.complete.audit_id;
		break;
	default:
		audit = cmd->u.dm.audit_id;
		person = cmd->u.dm.person_id;
		break;
	}
	if (client == NULL && audit &&
	    (au = plan_state_get(svc->state, PLAN_MAP_AUDIT, audit)) != NULL)
		client = au->client_id;
	if (assay_codec_value_new(svc->refused, &v) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "event value: out of memory");
	err = plan_encode_refused(&v, h, plan_cmd_names[cmd->kind], client, audit, person,
	                          res->reasons, res->nreasons);
	if (err)
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                 "encode refusal: the value does not fit the schema");
	else
		err = emit(svc, batch, i, svc->refused, &v, m->key, m->key ? m->key_len : 0, errstr,
		           errstr_size);
	avro_value_decref(&v);
	return err;
}

static int log_command(struct plan_service *svc, const struct assay_msg *m,
                       const struct plan_cmd *cmd, const struct plan_result *res)
{
	struct plan_cmdlog *l;

	if (assay_vec_reserve(&svc->cmdlog, &svc->cmdlog_cap, svc->ncmdlog + 1,
	                      sizeof(*svc->cmdlog)))
		return ASSAY_ERR_FATAL;
	l = &svc->cmdlog[svc->ncmdlog++];
	l->command_id = cmd->head.command_id;
	l->kind = cmd->kind;
	l->status = res->status;
	l->nreasons = res->nreasons;
	l->topic = m->topic;
	l->partition = m->partition;
	l->offset = m->offset;
	return 0;
}

static int plan_handle(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size)
{
	struct plan_service *svc = ctx;
	size_t n = assay_batch_count(batch);
	int err = 0;

	plan_state_begin(svc->state); /* rolls back a batch left open */
	plan_arena_destroy(svc->arena);
	svc->arena = plan_arena_new();
	if (svc->arena == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
	svc->ncmdlog = 0;
	svc->n_applied = svc->n_refused = svc->n_ignored = 0;
	for (size_t i = 0; i < n && !err; i++) {
		struct assay_msg *m = assay_batch_msg(batch, i);
		struct plan_cmd cmd;
		struct plan_result res;
		struct plan_event_head h;
		char why[512], event_id[ASSAY_UUID_LEN];
		bool seen;

		if (m->dead || !m->decoded_ok)
			continue;
		err = plan_decode(&m->decoded.value, m->decoded.schema->full_name, svc->arena, &cmd,
		                  why, sizeof(why));
		if (err == ASSAY_ERR_REJECT) {
			err = assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, why);
			continue;
		}
		if (err)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "%s", why);
		seen = cmd.head.command_id[0] &&
		       plan_state_get(svc->state, PLAN_MAP_COMMAND, cmd.head.command_id);
		plan_result_init(&res);
		err = plan_apply(svc->state, &svc->rules, &cmd, &res, errstr, errstr_size);
		if (!err && res.status != PLAN_IGNORED) {
			assay_batch_next_event_id(batch, i, event_id);
			h.event_id = event_id;
			h.tenant_id = cmd.head.tenant_id;
			h.occurred_at = now_ms();
			h.command_id = cmd.head.command_id;
			if (res.status == PLAN_APPLIED)
				err = emit_applied(svc, batch, i, &cmd, &res, &h, errstr,
				                   errstr_size);
			else
				err = emit_refused(svc, batch, i, m, &cmd, &res, &h, errstr,
				                   errstr_size);
		}
		/* the commands table gets every id the state now remembers */
		if (!err && !seen &&
		    plan_state_get(svc->state, PLAN_MAP_COMMAND, cmd.head.command_id))
			err = log_command(svc, m, &cmd, &res);
		if (res.status == PLAN_APPLIED)
			svc->n_applied++;
		else if (res.status == PLAN_REFUSED)
			svc->n_refused++;
		else
			svc->n_ignored++;
		plan_result_release(&res);
	}
	return err ? ASSAY_ERR_FATAL : 0;
}

static int plan_write(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr,
                      size_t errstr_size)
{
	struct plan_service *svc = ctx;

	(void)batch;
	return plan_db_write(&svc->db, conn, svc->state, svc->cmdlog, svc->ncmdlog, errstr,
	                     errstr_size);
}

static void plan_committed(void *ctx, struct assay_batch *batch)
{
	struct plan_service *svc = ctx;

	(void)batch;
	plan_state_commit(svc->state);
	assay_counter_add(svc->m_applied, svc->n_applied);
	assay_counter_add(svc->m_refused, svc->n_refused);
	assay_counter_add(svc->m_ignored, svc->n_ignored);
}

static void plan_rolled_back(void *ctx, struct assay_batch *batch)
{
	struct plan_service *svc = ctx;

	(void)batch;
	plan_state_rollback(svc->state);
}

/*
 * After every assignment (and after a fenced batch): another instance of the group may have
 * written the plan tables while it owned these partitions, so the state is read again and
 * replaces the one in memory. The catalog stays as init loaded it.
 */
static int plan_assigned(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *partitions,
                         char *errstr, size_t errstr_size)
{
	struct plan_service *svc = ctx;
	int err;

	(void)partitions;
	err = reload(svc, conn, errstr, errstr_size);
	if (err == 0)
		assay_log_info(svc->log, "plan state reloaded",
		               ASSAY_LF_INT("audits",
		                            (int64_t)plan_state_count(svc->state, PLAN_MAP_AUDIT)),
		               ASSAY_LF_INT("commands", (int64_t)plan_state_count(
		                                                svc->state, PLAN_MAP_COMMAND)));
	return err;
}

void plan_service_def(struct plan_service *svc, struct assay_service_def *def)
{
	memset(def, 0, sizeof(*def));
	def->name = "assay-plan";
	def->description = "audit programme: clients, auditors, audits, teams, SoAs, audit time";
	/* the loaded topic names: read through the settings when the service starts */
	def->consumes = (const char *const *)&svc->settings.topic_commands;
	def->nconsumes = 1;
	def->produces = (const char *const *)&svc->settings.topic_events;
	def->nproduces = 1;
	def->metrics_port = 9101;
	def->settings = plan_settings;
	def->settings_target = &svc->settings;
	def->handler.stage = "plan";
	def->handler.decode = true;
	def->handler.handle = plan_handle;
	def->handler.write = plan_write;
	def->handler.committed = plan_committed;
	def->handler.rolled_back = plan_rolled_back;
	def->handler.assigned = plan_assigned;
	def->handler.ctx = svc;
	def->init = plan_init;
}
