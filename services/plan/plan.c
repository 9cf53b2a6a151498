/*
 * assay-plan's handler on the batch loop (plan.h): start-up (catalog and state from
 * PostgreSQL), and per batch: decode each command with the generated contracts, apply it to a
 * journaled working copy of the state (so later commands of the batch see earlier ones), emit
 * its event or its refusal, write the changed rows in the batch transaction, and keep or undo
 * the working copy when the transaction commits or rolls back. init loads the state once at
 * start; assigned reads it again after every partition assignment and every fenced batch and
 * replaces the one in memory, since another instance of the consumer group may have changed
 * the tables while it owned those partitions (the load in init only makes the first reload
 * redundant).
 */
#include "plan.h"
#include "assay_vec.h"
#include "plan_command.h"
#include "plan_db.h"
#include "plan_event.h"
#include "assay_catalog.h"
#include "assay_err.h"
#include "assay_log.h"
#include "assay_metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct plan {
	const struct plan_settings *settings; /* the context's */
	struct plan_rules rules;
	struct plan_state *state;
	struct assay_catalog *catalog;
	const char **annex_a[PLAN_NSTANDARDS];
	size_t nannex_a[PLAN_NSTANDARDS];
	struct assay_contracts *cx;
	struct assay_contract_buf frame; /* the last event encoded */
	struct assay_log *log;
	struct assay_counter *m_applied, *m_refused, *m_ignored;
	/* per batch */
	struct assay_arena arena; /* decoded commands, events being built */
	struct plan_cmdlog *cmdlog;
	size_t ncmdlog, cmdlog_cap;
	uint64_t n_applied, n_refused, n_ignored;
	struct plan_db db;
};

static size_t catalog_annex_a(void *arg, int standard, const char *const **ids)
{
	struct plan *svc = arg;

	if (standard < 0 || standard >= PLAN_NSTANDARDS)
		return 0;
	*ids = svc->annex_a[standard];
	return svc->nannex_a[standard];
}

static bool catalog_edition_valid(void *arg, int standard, int64_t at_ms)
{
	struct plan *svc = arg;

	return standard >= 0 && standard < PLAN_NSTANDARDS &&
	       assay_catalog_edition_valid(svc->catalog, plan_standard_names[standard], at_ms);
}

static struct plan *plan_new(const struct plan_settings *settings)
{
	struct plan *svc = calloc(1, sizeof(*svc));

	if (svc == NULL)
		return NULL;
	svc->settings = settings;
	plan_db_init(&svc->db);
	assay_arena_init(&svc->arena);
	assay_contract_buf_init(&svc->frame);
	return svc;
}

static void drop_catalog(struct plan *svc)
{
	for (int s = 0; s < PLAN_NSTANDARDS; s++) {
		free(svc->annex_a[s]);
		svc->annex_a[s] = NULL;
		svc->nannex_a[s] = 0;
	}
	assay_catalog_destroy(svc->catalog);
	svc->catalog = NULL;
}

static void plan_destroy(struct plan *svc)
{
	if (svc == NULL)
		return;
	plan_state_destroy(svc->state);
	drop_catalog(svc);
	assay_contracts_destroy(svc->cx);
	assay_contract_buf_release(&svc->frame);
	assay_arena_release(&svc->arena);
	free(svc->cmdlog);
	plan_db_release(&svc->db);
	free(svc);
}

/*
 * Reads the plan tables into a new state in one read-only snapshot (its own REPEATABLE READ
 * transaction when conn is idle) and, on success only, replaces svc->state with it, freeing
 * the old one (an open batch of it is rolled back); on failure svc->state is left as it was.
 */
static int reload(struct plan *svc, PGconn *conn, char *errstr, size_t errstr_size)
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

/* Everything plan_init does, on a new svc. */
static int start(struct plan *svc, const struct assay_service_env *env, char *errstr,
                 size_t errstr_size)
{
	int err;

	svc->log = env->log;
	err = plan_rules_from_settings(svc->settings, &svc->rules, errstr, errstr_size);
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
	svc->cx = assay_contracts_new(env->codec, errstr, errstr_size);
	if (svc->cx == NULL)
		return ASSAY_ERR_FATAL;
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

int plan_init(void *ctx, const struct assay_service_env *env, char *errstr, size_t errstr_size)
{
	struct plan_context *pc = ctx;
	int err;

	plan_destroy(pc->plan);
	pc->plan = plan_new(&pc->settings);
	if (pc->plan == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "plan: out of memory");
	err = start(pc->plan, env, errstr, errstr_size);
	if (err) {
		plan_destroy(pc->plan);
		pc->plan = NULL;
	}
	return err;
}

void plan_fini(void *ctx)
{
	struct plan_context *pc = ctx;

	plan_destroy(pc->plan);
	pc->plan = NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Emits the frame in svc->frame, of schema type, for message i under key. */
static int emit(struct plan *svc, struct assay_batch *batch, size_t i, const char *type,
                const void *key, size_t key_len)
{
	return assay_batch_emit_typed(batch, i, svc->settings->topic_events, key, key_len,
	                              svc->frame.data, svc->frame.len, type);
}

static int emit_applied(struct plan *svc, struct assay_batch *batch, size_t i,
                        const struct plan_cmd *cmd, const struct plan_result *res,
                        const struct plan_event_head *h, char *errstr, size_t errstr_size)
{
	struct plan_event ev;
	int err;

	err = plan_event_applied(svc->cx, &svc->arena, cmd, res, h, &svc->frame, &ev, errstr,
	                         errstr_size);
	if (!err && (err = emit(svc, batch, i, ev.type, ev.key, strlen(ev.key))) != 0)
		assay_errf(err, errstr, errstr_size, "emit %s: out of memory", ev.type);
	return err;
}

static int emit_refused(struct plan *svc, struct assay_batch *batch, size_t i,
                        const struct assay_msg *m, const struct plan_cmd *cmd,
                        const struct plan_result *res, const struct plan_event_head *h,
                        char *errstr, size_t errstr_size)
{
	const char *client = NULL, *audit = NULL, *person = NULL;
	const struct plan_audit *au = NULL;
	struct plan_event ev;
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
	err = plan_event_refused(svc->cx, &svc->arena, cmd->kind, client, audit, person, res, h,
	                         &svc->frame, &ev, errstr, errstr_size);
	if (!err && (err = emit(svc, batch, i, ev.type, m->key, m->key ? m->key_len : 0)) != 0)
		assay_errf(err, errstr, errstr_size, "emit %s: out of memory", ev.type);
	return err;
}

static int log_command(struct plan *svc, const struct assay_msg *m, const struct plan_cmd *cmd,
                       const struct plan_result *res)
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

/*
 * Decodes message i into *cmd. A value that is not an audit command of a known schema is
 * dead-lettered (*dead set). A registry that cannot be reached is fatal here: the handler
 * has no retry class, so the service stops and its restart reads the message again. Frames
 * written with our own schemas do not reach the registry (their ids are cached at start-up);
 * only a frame of a schema id never seen before can meet this case.
 */
static int decode(struct plan *svc, struct assay_batch *batch, size_t i, struct plan_cmd *cmd,
                  bool *dead, char *errstr, size_t errstr_size)
{
	struct assay_msg *m = assay_batch_msg(batch, i);
	char why[512];
	int err;

	*dead = false;
	err = plan_command_decode(svc->cx, m->value, m->value ? m->value_len : 0, &svc->arena, cmd,
	                          why, sizeof(why));
	if (err == ASSAY_ERR_REJECT) {
		*dead = true;
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, why);
	}
	if (err)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "%s", why);
	return 0;
}

int plan_handle(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size)
{
	struct plan *svc = ((struct plan_context *)ctx)->plan;
	size_t n = assay_batch_count(batch);
	int err = 0;

	plan_state_begin(svc->state); /* rolls back a batch left open */
	assay_arena_reset(&svc->arena);
	svc->ncmdlog = 0;
	svc->n_applied = svc->n_refused = svc->n_ignored = 0;
	for (size_t i = 0; i < n && !err; i++) {
		struct assay_msg *m = assay_batch_msg(batch, i);
		struct plan_cmd cmd;
		struct plan_result res;
		struct plan_event_head h;
		char event_id[ASSAY_UUID_LEN];
		bool seen, dead;

		if (m->dead)
			continue;
		err = decode(svc, batch, i, &cmd, &dead, errstr, errstr_size);
		if (err || dead)
			continue;
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

int plan_write(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr, size_t errstr_size)
{
	struct plan *svc = ((struct plan_context *)ctx)->plan;

	(void)batch;
	return plan_db_write(&svc->db, conn, svc->state, svc->cmdlog, svc->ncmdlog, errstr,
	                     errstr_size);
}

void plan_committed(void *ctx, struct assay_batch *batch)
{
	struct plan *svc = ((struct plan_context *)ctx)->plan;

	(void)batch;
	plan_state_commit(svc->state);
	assay_counter_add(svc->m_applied, svc->n_applied);
	assay_counter_add(svc->m_refused, svc->n_refused);
	assay_counter_add(svc->m_ignored, svc->n_ignored);
}

void plan_rolled_back(void *ctx, struct assay_batch *batch)
{
	struct plan *svc = ((struct plan_context *)ctx)->plan;

	(void)batch;
	plan_state_rollback(svc->state);
}

/*
 * After every assignment (and after a fenced batch): another instance of the group may have
 * written the plan tables while it owned these partitions, so the state is read again and
 * replaces the one in memory. The catalog stays as init loaded it.
 */
int plan_assigned(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *partitions,
                  char *errstr, size_t errstr_size)
{
	struct plan *svc = ((struct plan_context *)ctx)->plan;
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
