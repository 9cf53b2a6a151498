/*
 * assay-risk end to end on the local stack: the real executable on a fresh database and
 * unique topics, fed with real Avro AuditOpened, SoaSubmitted and ControlMapped events.
 *
 * - scores, SoA exclusion, AI impact floor, the blocking flag of a prohibited practice, the
 *   dimensions, the dead letter of an undecodable message, in PostgreSQL and on
 *   assay.risk.scored;
 * - nothing is published when a batch changes no score, summary or dimension;
 * - after a restart the state is loaded: the next change carries the stored previous score;
 * - determinism: one stream replayed with batch.max.messages 1, 7 and 1000 gives the same
 *   rows and the same final scores; so does a run that compacts the evidence log
 *   (risk_evidence_links into risk_evidence_base) after nearly every batch and is restarted
 *   halfway, and the restart replays nothing (no event, no evidence row);
 * - migration 008 on a database with 006's risk_evidence table: the view risk_evidence and
 *   risk_control_scores show the same rows as before, and the service loads them (the next
 *   score of a migrated control counts the migrated items and sources);
 * - two instances in one consumer group split 4 partitions; after one is stopped the survivor
 *   reloads the state on its new assignment, so the next score of an audit the stopped one
 *   scored carries the previous value it computed, and every score is published once.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"
#include "assay_codec.h"
#include "assay_embed.h"
#include "assay_headers.h"
#include "assay_migrate.h"
#include "assay_pg.h"
#include "assay_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY_MS 86400000LL
#define T0     (20240LL * DAY_MS) /* 2025-06-01 */

struct env {
	char url[512];
	char t_audit[128], t_mapped[128], t_scored[128], t_dlq[128];
	char group[128], instance[128]; /* this run's consumer group and member */
	struct assay_registry *reg;
	struct assay_codec *codec;
	rd_kafka_t *producer;
};

/* The registry, codec, topics and producer of e over the migrated database at e->url. */
static void env_open(struct env *e, int partitions)
{
	char errstr[512];

	assay_test_unique(e->group, sizeof(e->group), "risk-group");
	assay_test_unique(e->instance, sizeof(e->instance), "risk");
	e->reg = assay_registry_pg_new(e->url, errstr, sizeof(errstr));
	assert_non_null(e->reg);
	e->codec = assay_codec_new(e->reg, 0, errstr, sizeof(errstr));
	assert_non_null(e->codec);
	if (assay_codec_register_embedded(e->codec, errstr, sizeof(errstr)))
		fail_msg("register: %s", errstr);
	assay_test_kafka_topic(e->t_audit, sizeof(e->t_audit), "risk-audit", partitions);
	assay_test_kafka_topic(e->t_mapped, sizeof(e->t_mapped), "risk-mapped", partitions);
	assay_test_unique(e->t_scored, sizeof(e->t_scored), "risk-scored");
	assay_test_unique(e->t_dlq, sizeof(e->t_dlq), "risk-dlq");
	{
		static const char *const conf[] = {"enable.idempotence", "true", "linger.ms", "5",
		                                   NULL};
		e->producer = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, NULL, NULL);
	}
}

static void env_init_parts(struct env *e, const char *prefix, int partitions)
{
	memset(e, 0, sizeof(*e));
	assay_test_pg_fresh_db(e->url, sizeof(e->url), prefix);
	assay_test_pg_migrate(e->url);
	env_open(e, partitions);
}

static void env_init(struct env *e, const char *prefix)
{
	env_init_parts(e, prefix, 2);
}

static void env_release(struct env *e)
{
	rd_kafka_destroy(e->producer);
	assay_codec_destroy(e->codec);
	assay_registry_destroy(e->reg);
	assay_test_pg_drop_db(e->url);
}

static void produce(struct env *e, const char *topic, const char *key, const void *buf, size_t len)
{
	rd_kafka_resp_err_t err = rd_kafka_producev(
	        e->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
	        RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	        RD_KAFKA_V_END);

	assert_int_equal(err, 0);
}

static void flush(struct env *e)
{
	assert_int_equal(rd_kafka_flush(e->producer, 30000), 0);
}

/* Encodes v (of schema name) and produces it on topic with key. */
static void send_value(struct env *e, const char *topic, const char *key,
                       const struct assay_schema *s, avro_value_t *v)
{
	void *buf = NULL;
	size_t len = 0;
	char errstr[512];

	if (assay_codec_encode(e->codec, s, v, &buf, &len, errstr, sizeof(errstr)))
		fail_msg("encode %s: %s", s->full_name, errstr);
	produce(e, topic, key, buf, len);
	free(buf);
}

static const struct assay_schema *schema(struct env *e, const char *name)
{
	const struct assay_schema *s = NULL;
	char errstr[256];

	assert_int_equal(assay_codec_schema_by_name(e->codec, name, &s, errstr, sizeof(errstr)), 0);
	return s;
}

static void set_enum_elem(avro_value_t *arr, const char *symbol)
{
	avro_value_t el;
	int idx;

	assert_int_equal(avro_value_append(arr, &el, NULL), 0);
	idx = avro_schema_enum_get_by_name(avro_value_get_schema(&el), symbol);
	assert_true(idx >= 0);
	assert_int_equal(avro_value_set_enum(&el, idx), 0);
}

static void set_null_field(avro_value_t *rec, const char *field)
{
	avro_value_t x;

	assert_int_equal(assay_value_field(rec, field, AVRO_NULL, &x), 0);
	assert_int_equal(avro_value_set_null(&x), 0);
}

struct ai {
	const char *id, *tier, *role;
};

static void send_opened(struct env *e, const char *audit, int64_t at, const struct ai *ai,
                        size_t nai)
{
	const struct assay_schema *s = schema(e, "org.assay.v1.AuditOpened");
	static const char *const stds[] = {"ISO27001_2022", "ISO42001_2023"};
	avro_value_t v, arr, el, rec, x;
	char id[64];

	assert_int_equal(assay_codec_value_new(s, &v), 0);
	snprintf(id, sizeof(id), "evt-open-%s", audit);
	assay_value_set_string(&v, "event_id", id);
	assay_value_set_string(&v, "tenant_id", "cb-1");
	assay_value_set_long(&v, "occurred_at", at);
	assay_value_set_string(&v, "command_id", id);
	assay_value_set_string(&v, "audit_id", audit);
	assay_value_set_string(&v, "client_id", "client-1");
	assay_value_set_enum(&v, "audit_type", "STAGE_2");
	assert_int_equal(assay_value_field(&v, "standards", AVRO_ARRAY, &arr), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(avro_value_append(&arr, &el, NULL), 0);
		assert_int_equal(assay_value_set_enum(&el, "standard", stds[i]), 0);
		assert_int_equal(assay_value_set_string(&el, "cycle_id", "cycle-1"), 0);
		assert_int_equal(assay_value_set_string(&el, "scope_statement", "everything"), 0);
	}
	assay_value_set_int(&v, "planned_start", 20300);
	assay_value_set_int(&v, "planned_end", 20302);
	assert_int_equal(assay_value_field(&v, "ai_systems", AVRO_ARRAY, &arr), 0);
	for (size_t i = 0; i < nai; i++) {
		assert_int_equal(avro_value_append(&arr, &el, NULL), 0);
		assert_int_equal(assay_value_set_string(&el, "ai_system_id", ai[i].id), 0);
		assert_int_equal(assay_value_set_string(&el, "name", ai[i].id), 0);
		assert_int_equal(assay_value_field(&el, "roles", AVRO_ARRAY, &x), 0);
		set_enum_elem(&x, ai[i].role);
		assert_int_equal(assay_value_set_enum(&el, "eu_ai_act_tier", ai[i].tier), 0);
		set_null_field(&el, "intended_purpose");
	}
	/* the audit-time record is not read by assay-risk; fill its required parts */
	assert_int_equal(assay_value_field(&v, "audit_time", AVRO_RECORD, &rec), 0);
	set_null_field(&rec, "sum_days");
	set_null_field(&rec, "total_reduction_percent");
	set_null_field(&rec, "total_days");
	set_null_field(&rec, "onsite_days");
	set_null_field(&rec, "offsite_days");
	set_null_field(&rec, "initial_days");
	send_value(e, e->t_audit, audit, s, &v);
	avro_value_decref(&v);
}

static void send_soa(struct env *e, const char *audit, int64_t at, int revision,
                     const char *const *excluded, size_t nex)
{
	const struct assay_schema *s = schema(e, "org.assay.v1.SoaSubmitted");
	avro_value_t v, arr, el;
	char id[64];

	assert_int_equal(assay_codec_value_new(s, &v), 0);
	snprintf(id, sizeof(id), "evt-soa-%s-%d", audit, revision);
	assay_value_set_string(&v, "event_id", id);
	assay_value_set_string(&v, "tenant_id", "cb-1");
	assay_value_set_long(&v, "occurred_at", at);
	assay_value_set_string(&v, "command_id", id);
	assay_value_set_string(&v, "audit_id", audit);
	assay_value_set_string(&v, "client_id", "client-1");
	assay_value_set_enum(&v, "standard", "ISO27001_2022");
	assay_value_set_string(&v, "soa_version", "v1");
	assay_value_set_int(&v, "revision", revision);
	assert_int_equal(assay_value_field(&v, "rows", AVRO_ARRAY, &arr), 0);
	for (size_t i = 0; i < nex; i++) {
		assert_int_equal(avro_value_append(&arr, &el, NULL), 0);
		assay_value_set_string(&el, "control_id", excluded[i]);
		assay_value_set_bool(&el, "applicable", false);
		assay_value_set_string(&el, "justification", "not used");
	}
	assay_value_set_int(&v, "applicable_count", 0);
	assay_value_set_int(&v, "excluded_count", (int)nex);
	send_value(e, e->t_audit, audit, s, &v);
	avro_value_decref(&v);
}

struct link {
	const char *standard, *control, *kind;
};

static void send_mapped(struct env *e, const char *audit, const char *evidence, int64_t at,
                        const char *source, const char *kind, int64_t collected,
                        const struct link *links, size_t nlinks)
{
	const struct assay_schema *s = schema(e, "org.assay.v1.ControlMapped");
	avro_value_t v, arr, el, via;
	char id[96];

	assert_int_equal(assay_codec_value_new(s, &v), 0);
	snprintf(id, sizeof(id), "evt-map-%s", evidence);
	assay_value_set_string(&v, "event_id", id);
	assay_value_set_string(&v, "tenant_id", "cb-1");
	assay_value_set_long(&v, "occurred_at", at);
	assay_value_set_string(&v, "audit_id", audit);
	assay_value_set_string(&v, "client_id", "client-1");
	assay_value_set_string(&v, "evidence_id", evidence);
	assay_value_set_string(&v, "accepted_event_id", id);
	assay_value_set_string(&v, "source_system", source);
	assert_int_equal(assay_value_set_enum(&v, "kind", kind), 0);
	assay_value_set_long(&v, "collected_at", collected);
	assert_int_equal(assay_value_field(&v, "links", AVRO_ARRAY, &arr), 0);
	for (size_t i = 0; i < nlinks; i++) {
		bool direct = strcmp(links[i].kind, "DIRECT") == 0;

		assert_int_equal(avro_value_append(&arr, &el, NULL), 0);
		assert_int_equal(assay_value_set_enum(&el, "standard", links[i].standard), 0);
		assay_value_set_string(&el, "control_id", links[i].control);
		assert_int_equal(assay_value_set_enum(&el, "link_kind", links[i].kind), 0);
		if (direct) {
			set_null_field(&el, "via");
			set_null_field(&el, "relation");
			set_null_field(&el, "strength");
		} else {
			assert_int_equal(assay_value_field(&el, "via", AVRO_RECORD, &via), 0);
			assay_value_set_enum(&via, "standard", "ISO27001_2022");
			assay_value_set_string(&via, "control_id", "A.8.8");
			assay_value_set_enum(&el, "relation", "INTERSECTS_WITH");
			assay_value_set_enum(&el, "strength", "MEDIUM");
		}
	}
	send_value(e, e->t_mapped, audit, s, &v);
	avro_value_decref(&v);
}

/* ---- the service process ---- */

/* assay-risk with batch.max.messages batch_max; compact_rows > 0 sets
 * risk.evidence.compact.rows; port > 0 the metrics port (0: none). */
static pid_t spawn_risk_opts(struct env *e, int batch_max, int compact_rows, int port)
{
	char v_url[600], v_a[200], v_m[200], v_s[200], v_d[200], v_b[64], v_c[64], v_p[64];
	char v_g[200], v_i[200];
	const char *vars[] = {v_url,
	                      v_a,
	                      v_m,
	                      v_s,
	                      v_d,
	                      v_b,
	                      v_p,
	                      v_g,
	                      v_i,
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_TOPICS_PARTITIONS=2",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      compact_rows > 0 ? v_c : NULL,
	                      NULL};

	snprintf(v_url, sizeof(v_url), "ASSAY_PG_URL=%s", e->url);
	snprintf(v_a, sizeof(v_a), "ASSAY_TOPIC_AUDIT_EVENTS=%s", e->t_audit);
	snprintf(v_m, sizeof(v_m), "ASSAY_TOPIC_CONTROL_MAPPED=%s", e->t_mapped);
	snprintf(v_s, sizeof(v_s), "ASSAY_TOPIC_RISK_SCORED=%s", e->t_scored);
	snprintf(v_d, sizeof(v_d), "ASSAY_DEADLETTER_TOPIC=%s", e->t_dlq);
	snprintf(v_b, sizeof(v_b), "ASSAY_BATCH_MAX_MESSAGES=%d", batch_max);
	snprintf(v_c, sizeof(v_c), "ASSAY_RISK_EVIDENCE_COMPACT_ROWS=%d", compact_rows);
	snprintf(v_p, sizeof(v_p), "ASSAY_METRICS_PORT=%d", port);
	snprintf(v_g, sizeof(v_g), "ASSAY_GROUP_ID=%s", e->group);
	snprintf(v_i, sizeof(v_i), "ASSAY_INSTANCE_ID=%s", e->instance);
	return assay_test_service_start("assay-risk", NULL, vars, NULL, -1);
}

static pid_t spawn_risk(struct env *e, int batch_max)
{
	return spawn_risk_opts(e, batch_max, 0, 0);
}

/* ---- reading back ---- */

/* Rows of sql joined as text (one line per row). Caller frees. */
static char *query_text(const char *url, const char *sql)
{
	char errstr[512];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	out[0] = '\0';
	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("query %s: %s", sql, errstr);
	for (int i = 0; i < PQntuples(res); i++)
		for (int c = 0; c < PQnfields(res); c++) {
			const char *v = PQgetisnull(res, i, c) ? "NULL" : PQgetvalue(res, i, c);
			size_t need = len + strlen(v) + 2;

			if (need >= cap) {
				while (need >= cap)
					cap *= 2;
				out = realloc(out, cap);
				assert_non_null(out);
			}
			len += (size_t)snprintf(out + len, cap - len, "%s%c", v,
			                        c + 1 == PQnfields(res) ? '\n' : '|');
		}
	PQclear(res);
	PQfinish(conn);
	return out;
}

/* Final view folded from the RiskScored events in topic order: per control the last residual
 * ("-" when blocking), per audit and standard the last summary. */
static char *fold_scored(struct env *e, struct assay_test_record *recs, size_t n)
{
	size_t cap = 1 << 16, len = 0;
	char *out = calloc(1, cap);
	struct item {
		char key[128];
		char val[160];
	} *items = calloc(4096, sizeof(*items));
	size_t nitems = 0;

	for (size_t i = 0; i < n; i++) {
		struct assay_decoded d;
		char errstr[512], key[128], val[160];
		const char *audit, *std, *cid;
		avro_value_t arr, el, sum;
		size_t nc;
		int32_t residual, ap, we, hi;
		bool blocking;

		if (assay_codec_decode(e->codec, recs[i].value, recs[i].value_len, &d, errstr,
		                       sizeof(errstr)))
			fail_msg("decode RiskScored: %s", errstr);
		assert_string_equal(d.schema->full_name, "org.assay.v1.RiskScored");
		assert_int_equal(assay_value_string(&d.value, "audit_id", &audit, NULL), 0);
		assert_int_equal(assay_value_enum(&d.value, "standard", &std), 0);
		assert_int_equal(assay_value_array(&d.value, "controls", &arr, &nc), 0);
		for (size_t k = 0; k < nc; k++) {
			assert_int_equal(assay_value_array_get(&arr, k, &el), 0);
			assay_value_string(&el, "control_id", &cid, NULL);
			assay_value_bool(&el, "blocking", &blocking);
			residual = -1;
			assay_value_int_or(&el, "residual_score", -1, &residual);
			snprintf(key, sizeof(key), "C %s %s %s", audit, std, cid);
			snprintf(val, sizeof(val), "%d%s", residual, blocking ? " blocking" : "");
			size_t j = 0;
			while (j < nitems && strcmp(items[j].key, key) != 0)
				j++;
			if (j == nitems) {
				assert_true(nitems < 4096);
				snprintf(items[nitems++].key, sizeof(items[0].key), "%s", key);
			}
			snprintf(items[j].val, sizeof(items[j].val), "%s", val);
		}
		assert_int_equal(assay_value_record(&d.value, "summary", &sum), 0);
		assay_value_int(&sum, "applicable_controls", &ap);
		assay_value_int(&sum, "controls_with_evidence", &we);
		assay_value_int(&sum, "high", &hi);
		snprintf(key, sizeof(key), "S %s %s", audit, std);
		snprintf(val, sizeof(val), "applicable=%d evidence=%d high=%d", ap, we, hi);
		{
			size_t j = 0;

			while (j < nitems && strcmp(items[j].key, key) != 0)
				j++;
			if (j == nitems)
				snprintf(items[nitems++].key, sizeof(items[0].key), "%s", key);
			snprintf(items[j].val, sizeof(items[j].val), "%s", val);
		}
		assay_decoded_release(&d);
	}
	/* sorted, so runs compare regardless of the order of audits across partitions */
	for (size_t i = 0; i < nitems; i++)
		for (size_t j = i + 1; j < nitems; j++)
			if (strcmp(items[j].key, items[i].key) < 0) {
				struct item t = items[i];

				items[i] = items[j];
				items[j] = t;
			}
	for (size_t i = 0; i < nitems && len + 300 < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s=%s\n", items[i].key,
		                        items[i].val);
	free(items);
	return out;
}

static const char *find_line(const char *text, const char *prefix)
{
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			return p;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

static void assert_line(const char *text, const char *line)
{
	const char *p = find_line(text, line);

	if (p == NULL || (p[strlen(line)] != '\n' && p[strlen(line)] != '\0')) {
		char key[160];
		const char *near;

		snprintf(key, sizeof(key), "%.*s", (int)strcspn(line, "="), line);
		near = find_line(text, key);
		fail_msg("missing line \"%s\"; found \"%.*s\"", line,
		         near ? (int)strcspn(near, "\n") : 0, near ? near : "");
	}
}

/* ---- tests ---- */

static void test_scores_dead_letters_quiet_batches_and_restart(void **state)
{
	static const struct ai ai1[] = {{"cv-screen", "HIGH_RISK", "USER"}};
	static const struct ai ai2[] = {{"social-score", "PROHIBITED", "PROVIDER"}};
	static const char *const excluded[] = {"A.5.1"};
	static const struct link l1[] = {{"ISO27001_2022", "A.8.8", "DIRECT"},
	                                 {"ISO42001_2023", "A.6.2.6", "AUTOMATIC"},
	                                 {"ISO27001_2022", "A.8.16", "NEEDS_CONFIRMATION"}};
	static const struct link l2[] = {{"ISO27001_2022", "A.8.15", "DIRECT"}};
	static const struct link l3[] = {{"ISO42001_2023", "A.7.4", "DIRECT"}};
	static const struct link l4[] = {{"ISO27001_2022", "A.8.8", "DIRECT"}};
	struct env e;
	struct assay_test_record *recs;
	size_t n, n_before, n_after;
	long n27, n42;
	char *fold, *rows;
	pid_t pid;

	(void)state;
	env_init(&e, "test_risk");
	n27 = assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_catalog_controls "
	                                  "WHERE standard = 'ISO27001_2022'");
	n42 = assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_catalog_controls "
	                                  "WHERE standard = 'ISO42001_2023'");
	assert_true(n27 > 93 && n42 > 38);

	send_opened(&e, "au-1", T0, ai1, 1);
	send_soa(&e, "au-1", T0 + 3600000, 1, excluded, 1);
	send_opened(&e, "au-2", T0, ai2, 1);
	send_mapped(&e, "au-1", "ev-1", T0 + 7200000, "scanner", "CONFIGURATION_SCAN", T0 - DAY_MS,
	            l1, 3);
	send_mapped(&e, "au-1", "ev-2", T0 + 7200000, "siem", "LOG_SAMPLE", T0 - DAY_MS, l2, 1);
	produce(&e, e.t_mapped, "au-1", "not avro", 8);
	send_mapped(&e, "au-2", "ev-3", T0 + 7200000, "scanner", "TEST_REPORT", T0, l3, 1);
	flush(&e);

	pid = spawn_risk(&e, 1000);
	assay_test_pg_wait(e.url, "SELECT coalesce(sum(items), 0) FROM risk_evidence", 5, 60000);
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM risk_scores");
		assay_test_pg_wait(e.url, sql, (n27 - 1) + n42 + n27 + n42, 30000);
	}

	/* PostgreSQL: the scores */
	rows = query_text(e.url,
	                  "SELECT audit_id, standard, control_id, likelihood, impact, "
	                  "inherent_score, coverage_permille, direct_links, automatic_links, "
	                  "pending_links, independent_sources, residual_score, band, blocking "
	                  "FROM risk_control_scores ORDER BY 1, 2, 3");
	/* A.8.8: 4x4, one fresh scan from one source: coverage 700, residual 16*0.44 = 7 */
	assert_line(rows, "au-1|ISO27001_2022|A.8.8|4|4|16|700|1|0|0|1|7|LOW|f");
	/* A.8.15: sampled logs (700) -> coverage 490, residual 16*(1-0.392) = 10 */
	assert_line(rows, "au-1|ISO27001_2022|A.8.15|4|4|16|490|1|0|0|1|10|MEDIUM|f");
	/* pending links count for nothing */
	assert_line(rows, "au-1|ISO27001_2022|A.8.16|4|4|16|0|0|0|1|0|16|HIGH|f");
	/* 42001 A.6.2.6: 3x3 raised to impact 4 by the high-risk system; automatic link 800 */
	assert_line(rows, "au-1|ISO42001_2023|A.6.2.6|3|4|12|560|0|1|0|1|7|LOW|f");
	assert_null(find_line(rows, "au-1|ISO27001_2022|A.5.1|"));
	/* au-2: a prohibited practice blocks every 42001 control, not 27001 */
	assert_line(rows, "au-2|ISO42001_2023|A.7.4|4|4|16|700|1|0|0|1|NULL|NULL|t");
	assert_line(rows, "au-2|ISO27001_2022|A.5.1|3|3|9|0|0|0|0|0|9|LOW|f");
	free(rows);
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT count(*) FROM risk_scores WHERE blocking AND "
	                                      "blocking_reason LIKE '%social-score%'"),
	                 n42);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_dimensions WHERE "
	                                             "audit_id = 'au-1'"),
	                 8);
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT residual_score FROM risk_dimensions WHERE "
	                                      "audit_id = 'au-1' AND dimension = 'ROBUSTNESS'"),
	                 12); /* A.6.2.4 unevidenced: 3 x 4 */
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT applicable_controls FROM risk_summaries WHERE "
	                                    "audit_id = 'au-1' AND standard = 'ISO27001_2022'"),
	        n27 - 1);

	/* Kafka: the events fold to the same scores */
	recs = assay_test_read_topic(e.t_scored, "read_committed", 4, 2000, 60000, &n_before);
	assert_true(n_before >= 4);
	fold = fold_scored(&e, recs, n_before);
	if (getenv("RISK_TEST_DUMP"))
		fprintf(stderr, "%s", fold);
	assert_line(fold, "C au-1 ISO27001_2022 A.8.8=7");
	assert_line(fold, "C au-1 ISO42001_2023 A.6.2.6=7");
	assert_line(fold, "C au-2 ISO42001_2023 A.7.4=-1 blocking");
	assert_null(find_line(fold, "C au-1 ISO27001_2022 A.5.1="));
	{
		char line[128];

		snprintf(line, sizeof(line), "S au-1 ISO27001_2022=applicable=%ld evidence=2 ",
		         n27 - 1);
		assert_non_null(find_line(fold, line));
	}
	for (size_t i = 0; i < n_before; i++) {
		const struct assay_header *h = assay_headers_find(&recs[i].headers, "event_type");

		assert_non_null(h);
		assert_memory_equal(h->value, "org.assay.v1.RiskScored", h->size);
	}
	free(fold);
	assay_test_records_free(recs, n_before);

	/* the dead letter: on the configured topic; the shared main() does not pass
	 * deadletter.topic to the loop yet, so look in the default topic too, by the
	 * assay.dlq.topic header naming this test's input topic */
	{
		const char *topics[] = {e.t_dlq, "assay.deadletter"};
		size_t found = 0;

		for (int t = 0; t < 2 && found == 0; t++) {
			recs = assay_test_read_topic(topics[t], "read_committed", 0, 1500, 60000,
			                             &n);
			for (size_t i = 0; i < n; i++) {
				const struct assay_header *hs =
				        assay_headers_find(&recs[i].headers, "assay.dlq.stage");

				if (!assay_test_header_equals(&recs[i], "assay.dlq.topic",
				                              e.t_mapped))
					continue;
				found++;
				assert_int_equal(recs[i].value_len, 8);
				assert_memory_equal(recs[i].value, "not avro", 8);
				assert_non_null(hs);
				assert_memory_equal(hs->value, "risk", hs->size);
			}
			assay_test_records_free(recs, n);
		}
		assert_int_equal(found, 1);
	}

	/* nothing changed, nothing published: a second scan from the same source */
	send_mapped(&e, "au-1", "ev-4", T0 + 7200000, "scanner", "CONFIGURATION_SCAN", T0 - DAY_MS,
	            l4, 1);
	flush(&e);
	assay_test_pg_wait(e.url, "SELECT coalesce(sum(items), 0) FROM risk_evidence", 6, 30000);
	assert_int_equal(assay_test_pg_scalar(
	                         e.url,
	                         "SELECT direct_links FROM risk_control_scores WHERE audit_id = "
	                         "'au-1' AND control_id = 'A.8.8'"),
	                 2);
	recs = assay_test_read_topic(e.t_scored, "read_committed", n_before, 3000, 60000, &n_after);
	assert_int_equal(n_after, n_before);
	assay_test_records_free(recs, n_after);
	assert_int_equal(assay_test_service_stop(pid), 0);

	/* restart: the state comes back from PostgreSQL; a second source lowers A.8.8 */
	pid = spawn_risk(&e, 1000);
	send_mapped(&e, "au-1", "ev-5", T0 + 7200000, "grc", "POLICY", T0 - DAY_MS, l4, 1);
	flush(&e);
	assay_test_pg_wait(e.url, "SELECT coalesce(sum(items), 0) FROM risk_evidence", 7, 60000);
	recs = assay_test_read_topic(e.t_scored, "read_committed", n_before + 1, 2000, 60000,
	                             &n_after);
	assert_int_equal(n_after, n_before + 1);
	{
		struct assay_decoded d;
		char errstr[256];
		avro_value_t arr, el;
		size_t nc;
		const char *cid;
		int32_t res, prev;

		assert_int_equal(assay_codec_decode(e.codec, recs[n_after - 1].value,
		                                    recs[n_after - 1].value_len, &d, errstr,
		                                    sizeof(errstr)),
		                 0);
		assert_int_equal(assay_value_array(&d.value, "controls", &arr, &nc), 0);
		assert_int_equal(nc, 1);
		assay_value_array_get(&arr, 0, &el);
		assay_value_string(&el, "control_id", &cid, NULL);
		assert_string_equal(cid, "A.8.8");
		/* 700 + 450 * 150 / 1000 = 767: 16 * (1 - 0.613) = 6 */
		assay_value_int(&el, "residual_score", &res);
		assay_value_int(&el, "previous_residual_score", &prev);
		assert_int_equal(res, 6);
		assert_int_equal(prev, 7);
		assay_decoded_release(&d);
	}
	assay_test_records_free(recs, n_after);
	assert_int_equal(assay_test_service_stop(pid), 0);
	env_release(&e);
}

/* Waits (at most 60 s) until the instance on port reports ready (partitions assigned). */
static void wait_ready(int port)
{
	int64_t deadline = assay_test_now_ms() + 60000;
	char body[512];

	while (assay_test_http_get(port, "/readyz", body, sizeof(body)) != 200) {
		if (assay_test_now_ms() > deadline)
			fail_msg("instance on port %d not ready in 60 s", port);
		usleep(100 * 1000);
	}
}

/* One stream, deterministic content: 3 audits, SoAs, evidence over 200 days of event time.
 * Produces its part [from, to) of the 90 ControlMapped (the audits and the first SoA with
 * the part that starts at 0) and adds the links it made to *links. */
static void produce_stream_part(struct env *e, int from, int to, long *links)
{
	static const struct ai ai[] = {{"cv", "HIGH_RISK", "PROVIDER"}};
	static const char *const ctl27[] = {"A.5.1",  "A.5.15", "A.8.8", "A.8.15",
	                                    "A.8.16", "6.1.2",  "9.2.1", "A.6.3"};
	static const char *const ctl42[] = {"A.7.4", "A.9.2", "A.6.2.4", "6.1.2", "A.5.4"};
	static const char *const sources[] = {"scanner", "siem", "grc", "hr"};
	static const char *const kinds[] = {"CONFIGURATION_SCAN", "LOG_SAMPLE",  "POLICY",
	                                    "ATTESTATION",        "TEST_REPORT", "OTHER"};
	static const char *const lk[] = {"DIRECT", "AUTOMATIC", "NEEDS_CONFIRMATION"};
	static const char *const ex1[] = {"A.5.15"};
	static const char *const ex2[] = {"A.6.3", "A.8.16"};
	const char *audits[] = {"au-x", "au-y", "au-z"};

	for (int a = 0; from == 0 && a < 3; a++)
		send_opened(e, audits[a], T0 + a * DAY_MS, a == 1 ? ai : NULL, a == 1 ? 1 : 0);
	if (from == 0)
		send_soa(e, "au-x", T0 + DAY_MS, 1, ex1, 1);
	for (int i = from; i < to; i++) {
		const char *audit = audits[i % 3];
		int64_t at = T0 + (int64_t)(i * 2) * DAY_MS + i * 1000;
		int64_t collected = at - (int64_t)((i * 37) % 300) * DAY_MS;
		struct link l[2];
		char ev[32];

		l[0].standard = "ISO27001_2022";
		l[0].control = ctl27[(i * 7) % 8];
		l[0].kind = lk[i % 5 == 0 ? 2 : 0];
		l[1].standard = "ISO42001_2023";
		l[1].control = ctl42[(i * 3) % 5];
		l[1].kind = lk[i % 4 == 0 ? 2 : 1];
		snprintf(ev, sizeof(ev), "ev-%d", i);
		send_mapped(e, audit, ev, at, sources[(i * 5) % 4], kinds[(i * 11) % 6], collected,
		            l, i % 3 == 2 ? 1 : 2);
		*links += i % 3 == 2 ? 1 : 2;
		if (i == 45)
			send_soa(e, "au-x", at, 2, ex2, 2); /* replaces revision 1 */
	}
	flush(e);
}

/*
 * Runs the stream through assay-risk with batch.max.messages batch_max and returns the rows
 * of every risk table and the scores folded from the events. compact_rows > 0: the evidence
 * log is compacted every compact_rows rows. restart_at > 0: only the first restart_at
 * ControlMapped are produced, the service is stopped once it applied them (and must have
 * compacted the log by then) and started again, which must replay nothing, then the rest of
 * the stream follows.
 */
static void run_once_opts(int batch_max, int compact_rows, int restart_at, char **rows, char **fold)
{
	struct env e;
	struct assay_test_record *recs;
	size_t n;
	long links = 0;
	const char *sql = "SELECT coalesce(sum(items), 0) FROM risk_evidence";
	pid_t pid;

	env_init(&e, "test_risk_det");
	if (restart_at > 0) {
		size_t n_mid;
		long rows_mid;
		int port = assay_test_free_port();

		produce_stream_part(&e, 0, restart_at, &links);
		pid = spawn_risk_opts(&e, batch_max, compact_rows, 0);
		assay_test_pg_wait(e.url, sql, links, 90000);
		recs = assay_test_read_topic(e.t_scored, "read_committed", 1, 3000, 60000, &n_mid);
		assay_test_records_free(recs, n_mid);
		assert_int_equal(assay_test_service_stop(pid), 0);
		/* compacted: the base holds aggregates, the log holds less than every batch's rows
		 */
		assert_true(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_evidence_base") >
		            0);
		rows_mid = assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_evidence");
		assert_true(assay_test_pg_scalar(
		                    e.url, "SELECT count(*) FROM risk_evidence_links") < rows_mid);

		/* restarted: the state is loaded and nothing is applied twice */
		pid = spawn_risk_opts(&e, batch_max, compact_rows, port);
		wait_ready(port);
		recs = assay_test_read_topic(e.t_scored, "read_committed", n_mid, 2000, 60000, &n);
		assay_test_records_free(recs, n);
		assert_int_equal(n, n_mid);
		assert_int_equal(assay_test_pg_scalar(e.url, sql), links);
		assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_evidence"),
		                 rows_mid);
		produce_stream_part(&e, restart_at, 90, &links);
	} else {
		produce_stream_part(&e, 0, 90, &links);
		pid = spawn_risk_opts(&e, batch_max, compact_rows, 0);
	}
	assay_test_pg_wait(e.url, sql, links, 90000);
	/* the last batch's events reach Kafka shortly after its commit */
	recs = assay_test_read_topic(e.t_scored, "read_committed", 1, 3000, 60000, &n);
	assert_int_equal(assay_test_service_stop(pid), 0);
	{
		/* controls a later SoA excluded are not reported again (RiskScored lists
		 * applicable controls only): keep the folded lines of controls that are
		 * applicable at the end, and every summary */
		char *all = fold_scored(&e, recs, n);
		char *keep = query_text(e.url, "SELECT 'C ' || audit_id || ' ' || standard || ' ' "
		                               "|| control_id || '=' FROM risk_scores");
		size_t len = 0, size = strlen(all) + 1;

		*fold = calloc(1, size);
		for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
			char key[160];

			snprintf(key, sizeof(key), "%.*s=", (int)strcspn(line, "="), line);
			if (line[0] == 'S' || find_line(keep, key))
				len += (size_t)snprintf(*fold + len, size - len, "%s\n", line);
		}
		free(all);
		free(keep);
	}
	assay_test_records_free(recs, n);
	*rows = query_text(
	        e.url,
	        "SELECT 'score', audit_id, standard, control_id, likelihood, impact, "
	        "inherent_score, "
	        "coverage_permille, direct_links, automatic_links, pending_links, "
	        "independent_sources, residual_score, band, blocking FROM risk_control_scores "
	        "UNION ALL SELECT 'summary', audit_id, standard, applicable_controls::text, "
	        "controls_with_evidence, very_low, low, medium, high, critical, blocking, 0, "
	        "cardinality(top_controls), array_to_string(top_controls, ','), false "
	        "FROM risk_summaries "
	        "UNION ALL SELECT 'dim', audit_id, dimension, controls::text, 0, 0, 0, 0, 0, 0, 0, "
	        "0, residual_score, band, false FROM risk_dimensions "
	        "UNION ALL SELECT 'evidence', audit_id, standard, control_id || '/' || "
	        "source_system || '/' || link_kind, tier, 0, 0, 0, 0, 0, 0, 0, newest_day, "
	        "items::text, false FROM risk_evidence "
	        "UNION ALL SELECT 'audit', audit_id, tenant_id, client_id, 0, 0, 0, 0, 0, 0, 0, 0, "
	        "ref_day, array_to_string(standards, ','), opened FROM risk_audits "
	        "ORDER BY 1, 2, 3, 4");
	env_release(&e);
}

static void test_same_final_scores_for_any_batch_size(void **state)
{
	/* batch.max.messages; risk.evidence.compact.rows (0: the default, never reached here);
	 * where the run is restarted (0: never) */
	static const int runs[][3] = {{1000, 0, 0}, {1, 0, 0}, {7, 0, 0}, {7, 5, 45}};
	enum { NRUNS = sizeof(runs) / sizeof(runs[0]) };
	char *rows[NRUNS], *fold[NRUNS];

	(void)state;
	for (int i = 0; i < NRUNS; i++) {
		run_once_opts(runs[i][0], runs[i][1], runs[i][2], &rows[i], &fold[i]);
		print_message("batch.max.messages=%d compact.rows=%d restart at %d: %zu bytes of "
		              "rows, %zu bytes of folded scores\n",
		              runs[i][0], runs[i][1], runs[i][2], strlen(rows[i]), strlen(fold[i]));
	}
	/* not trivial: many scored controls, some evidence, a moved reference day */
	assert_true(strlen(rows[0]) > 10000);
	assert_non_null(strstr(rows[0], "evidence|au-x"));
	for (int i = 1; i < NRUNS; i++) {
		assert_string_equal(rows[i], rows[0]);
		assert_string_equal(fold[i], fold[0]);
	}
	for (int i = 0; i < NRUNS; i++) {
		free(rows[i]);
		free(fold[i]);
	}
}

/* ---- two instances in one group ---- */

#define NAUD 8

static pid_t spawn_member(struct env *e, const char *group, const char *instance, int port)
{
	char v_url[600], v_a[200], v_m[200], v_s[200], v_d[200], v_g[200], v_i[200], v_p[64];
	const char *vars[] = {v_url,
	                      v_a,
	                      v_m,
	                      v_s,
	                      v_d,
	                      v_g,
	                      v_i,
	                      v_p,
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_TOPICS_PARTITIONS=4",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};

	snprintf(v_url, sizeof(v_url), "ASSAY_PG_URL=%s", e->url);
	snprintf(v_a, sizeof(v_a), "ASSAY_TOPIC_AUDIT_EVENTS=%s", e->t_audit);
	snprintf(v_m, sizeof(v_m), "ASSAY_TOPIC_CONTROL_MAPPED=%s", e->t_mapped);
	snprintf(v_s, sizeof(v_s), "ASSAY_TOPIC_RISK_SCORED=%s", e->t_scored);
	snprintf(v_d, sizeof(v_d), "ASSAY_DEADLETTER_TOPIC=%s", e->t_dlq);
	snprintf(v_g, sizeof(v_g), "ASSAY_GROUP_ID=%s", group);
	snprintf(v_i, sizeof(v_i), "ASSAY_INSTANCE_ID=%s", instance);
	snprintf(v_p, sizeof(v_p), "ASSAY_METRICS_PORT=%d", port);
	return assay_test_service_start("assay-risk", NULL, vars, NULL, -1);
}

/*
 * The A.8.8 entries of the ISO27001_2022 RiskScored events of audit, in topic order (one
 * partition per audit): residual and previous residual (-1 when absent). Returns how many
 * there were (at most 4).
 */
static size_t a88_scores(struct env *e, struct assay_test_record *recs, size_t n, const char *audit,
                         int32_t res[4], int32_t prev[4])
{
	size_t found = 0;

	for (size_t i = 0; i < n; i++) {
		struct assay_decoded d;
		char errstr[256];
		const char *au, *std, *cid;
		avro_value_t arr, el;
		size_t nc;

		if (assay_codec_decode(e->codec, recs[i].value, recs[i].value_len, &d, errstr,
		                       sizeof(errstr)))
			fail_msg("decode RiskScored: %s", errstr);
		assert_int_equal(assay_value_string(&d.value, "audit_id", &au, NULL), 0);
		assert_int_equal(assay_value_enum(&d.value, "standard", &std), 0);
		assert_int_equal(assay_value_array(&d.value, "controls", &arr, &nc), 0);
		for (size_t k = 0;
		     strcmp(au, audit) == 0 && strcmp(std, "ISO27001_2022") == 0 && k < nc; k++) {
			assert_int_equal(assay_value_array_get(&arr, k, &el), 0);
			assert_int_equal(assay_value_string(&el, "control_id", &cid, NULL), 0);
			if (strcmp(cid, "A.8.8") != 0)
				continue;
			assert_true(found < 4);
			assay_value_int_or(&el, "residual_score", -1, &res[found]);
			assay_value_int_or(&el, "previous_residual_score", -1, &prev[found]);
			found++;
		}
		assay_decoded_release(&d);
	}
	return found;
}

/*
 * Phase 1: one instance takes the AuditOpened events of eight audits. Phase 2: a second
 * instance joins the group (4 partitions per topic), and a scan of A.8.8 per audit is scored
 * by whichever owns the audit's partition (residual 7). Phase 3: the second one is stopped
 * with SIGTERM and a second source per audit lowers A.8.8: the survivor, which now owns every
 * partition, must publish residual 6 with previous residual 7 for every audit, including
 * those the stopped instance scored, and every score exactly once.
 */
static void test_two_instances_share_the_group(void **state)
{
	static const struct link l88[] = {{"ISO27001_2022", "A.8.8", "DIRECT"}};
	char group[128], ia[128], ib[128], audits[NAUD][16], ev[64];
	struct env e;
	struct assay_test_record *recs;
	size_t n1, n;
	double scored_a, scored_b;
	int port_a, port_b;
	pid_t a, b;

	(void)state;
	env_init_parts(&e, "test_risk2", 4);
	assay_test_unique(group, sizeof(group), "risk-group");
	assay_test_unique(ia, sizeof(ia), "risk-a");
	assay_test_unique(ib, sizeof(ib), "risk-b");
	port_a = assay_test_free_port();
	port_b = assay_test_free_port();

	/* phase 1: one instance, the audits */
	for (int k = 0; k < NAUD; k++) {
		snprintf(audits[k], sizeof(audits[k]), "au-%d", k + 1);
		send_opened(&e, audits[k], T0, NULL, 0);
	}
	flush(&e);
	a = spawn_member(&e, group, ia, port_a);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM risk_audits", NAUD, 60000);
	recs = assay_test_read_topic(e.t_scored, "read_committed", 1, 2000, 60000, &n1);
	assay_test_records_free(recs, n1);
	assert_true(n1 >= 1);

	/* phase 2: a second instance; the two split the partitions and score the scans */
	b = spawn_member(&e, group, ib, port_b);
	wait_ready(port_b);
	for (int k = 0; k < NAUD; k++) {
		snprintf(ev, sizeof(ev), "ev-scan-au-%d", k + 1);
		send_mapped(&e, audits[k], ev, T0 + 7200000, "scanner", "CONFIGURATION_SCAN",
		            T0 - DAY_MS, l88, 1);
	}
	flush(&e);
	assay_test_pg_wait(e.url, "SELECT coalesce(sum(items), 0) FROM risk_evidence", NAUD, 60000);
	recs = assay_test_read_topic(e.t_scored, "read_committed", n1 + NAUD, 2000, 60000, &n);
	assay_test_records_free(recs, n);
	assert_int_equal(n, n1 + NAUD);
	/* both scored: the one about to stop published some of the phase 2 events */
	scored_b = assay_test_metric(port_b, "assay_risk_scored_events_total");
	scored_a = assay_test_metric(port_a, "assay_risk_scored_events_total");
	assert_true(scored_b > 0);
	assert_true(scored_a >= (double)n1);
	assert_true(scored_a + scored_b == (double)(n1 + NAUD));

	/* phase 3: b leaves; a owns every partition and must know b's scores */
	assert_int_equal(assay_test_service_stop(b), 0);
	for (int k = 0; k < NAUD; k++) {
		snprintf(ev, sizeof(ev), "ev-policy-au-%d", k + 1);
		send_mapped(&e, audits[k], ev, T0 + 7200000, "grc", "POLICY", T0 - DAY_MS, l88, 1);
	}
	flush(&e);
	assay_test_pg_wait(e.url, "SELECT coalesce(sum(items), 0) FROM risk_evidence", 2 * NAUD,
	                   90000);
	recs = assay_test_read_topic(e.t_scored, "read_committed", n1 + 2 * NAUD, 3000, 60000, &n);
	assert_int_equal(assay_test_service_stop(a), 0);
	assert_int_equal(n, n1 + 2 * NAUD);
	for (size_t i = 0; i < n; i++)
		for (size_t k = i + 1; k < n; k++)
			assert_string_not_equal(recs[i].event_id ? recs[i].event_id : "",
			                        recs[k].event_id ? recs[k].event_id : "");
	for (int k = 0; k < NAUD; k++) {
		int32_t res[4], prev[4];

		/* opened (phase 1), scanned (phase 2), a second source (phase 3): once each */
		assert_int_equal(a88_scores(&e, recs, n, audits[k], res, prev), 3);
		assert_int_equal(res[0], 16); /* no evidence: 4 x 4 */
		assert_int_equal(prev[0], -1);
		assert_int_equal(res[1], 7); /* one fresh scan: 16 * 0.44 */
		assert_int_equal(prev[1], 16);
		assert_int_equal(res[2], 6); /* a second source: 16 * (1 - 0.613) */
		assert_int_equal(prev[2], 7);
	}
	assay_test_records_free(recs, n);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_control_scores "
	                                             "WHERE control_id = 'A.8.8' AND "
	                                             "independent_sources = 2 AND "
	                                             "residual_score = 6"),
	                 NAUD);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_evidence"),
	                 2 * NAUD);
	env_release(&e);
}

/* ---- migration 008 over a database of 006 ---- */

/* Applies the embedded migrations up to version last only. */
static void migrate_upto(const char *url, long last)
{
	struct assay_embedded files[64];
	size_t n = 0;
	char errstr[512];
	PGconn *conn = NULL;

	for (size_t i = 0; assay_embedded_migrations[i].name; i++)
		if (assay_migrate_version(assay_embedded_migrations[i].name) <= last) {
			assert_true(n + 1 < sizeof(files) / sizeof(files[0]));
			files[n++] = assay_embedded_migrations[i];
		}
	memset(&files[n], 0, sizeof(files[n]));
	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_migrate(conn, files, errstr, sizeof(errstr)))
		fail_msg("migrate to %ld: %s", last, errstr);
	PQfinish(conn);
}

/*
 * A database that 006 created and an earlier assay-risk filled (rows written here as it
 * wrote them): after 008 the view risk_evidence and risk_control_scores give the same rows,
 * the aggregates sit in risk_evidence_base, and the service loads them: a second source for
 * A.8.8 lowers it from 7 to 6 with the three migrated items counted, and its row goes to the
 * log.
 */
static void test_migration_keeps_the_evidence(void **state)
{
	static const struct link l88[] = {{"ISO27001_2022", "A.8.8", "DIRECT"}};
	static const char *const ev_sql = "SELECT audit_id, standard, control_id, source_system, "
	                                  "tier, link_kind, newest_day, "
	                                  "items FROM risk_evidence ORDER BY 1, 2, 3, 4, 5, 6";
	static const char *const sc_sql = "SELECT * FROM risk_control_scores ORDER BY 1, 2, 3";
	const long day = T0 / DAY_MS;
	struct env e;
	struct assay_test_record *recs;
	char sql[2048], *ev_before, *sc_before, *ev_after, *sc_after;
	size_t n;
	bool found = false;
	pid_t pid;

	(void)state;
	memset(&e, 0, sizeof(e));
	assay_test_pg_fresh_db(e.url, sizeof(e.url), "test_risk_mig");
	migrate_upto(e.url, 6);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO risk_audits (audit_id, tenant_id, client_id, opened, ref_day, "
	         "standards) VALUES ('au-m', 'cb-1', 'client-1', true, %ld, "
	         "'{ISO27001_2022}'), ('au-n', 'cb-1', 'client-1', true, %ld, '{ISO42001_2023}');"
	         "INSERT INTO risk_evidence VALUES "
	         "('au-m', 'ISO27001_2022', 'A.8.8', 'scanner', 0, 'DIRECT', %ld, 3),"
	         "('au-m', 'ISO27001_2022', 'A.8.16', 'siem', 1, 'NEEDS_CONFIRMATION', %ld, 2),"
	         "('au-n', 'ISO42001_2023', 'A.7.4', 'scanner', 0, 'AUTOMATIC', %ld, 1);"
	         "INSERT INTO risk_scores (audit_id, standard, control_id, likelihood, impact, "
	         "inherent_score, coverage_permille, independent_sources, residual_score, band, "
	         "blocking) VALUES "
	         "('au-m', 'ISO27001_2022', 'A.8.8', 4, 4, 16, 700, 1, 7, 'LOW', false),"
	         "('au-m', 'ISO27001_2022', 'A.8.16', 4, 4, 16, 0, 0, 16, 'HIGH', false)",
	         day, day, day - 1, day - 2, day - 5);
	{
		PGconn *conn = NULL;
		char errstr[512];

		if (assay_pg_connect(e.url, &conn, errstr, sizeof(errstr)) ||
		    assay_pg_exec(conn, sql, errstr, sizeof(errstr)))
			fail_msg("old rows: %s", errstr);
		PQfinish(conn);
	}
	ev_before = query_text(e.url, ev_sql);
	sc_before = query_text(e.url, sc_sql);
	assay_test_pg_migrate(e.url);
	ev_after = query_text(e.url, ev_sql);
	sc_after = query_text(e.url, sc_sql);
	assert_string_equal(ev_after, ev_before);
	assert_string_equal(sc_after, sc_before);
	assert_non_null(strstr(sc_after, "au-m|ISO27001_2022|A.8.8|4|4|16|700|3|0|0|1|7|LOW|f"));
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_evidence_base"), 3);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_evidence_links"),
	                 0);
	free(ev_before);
	free(sc_before);
	free(ev_after);
	free(sc_after);

	/* the service loads the migrated evidence */
	env_open(&e, 2);
	pid = spawn_risk(&e, 1000);
	send_mapped(&e, "au-m", "ev-m1", T0 + 7200000, "grc", "POLICY", T0 - DAY_MS, l88, 1);
	flush(&e);
	assay_test_pg_wait(e.url,
	                   "SELECT coalesce(sum(items), 0) FROM risk_evidence WHERE audit_id = "
	                   "'au-m'",
	                   6, 60000);
	recs = assay_test_read_topic(e.t_scored, "read_committed", 1, 2000, 60000, &n);
	assert_int_equal(assay_test_service_stop(pid), 0);
	for (size_t i = 0; i < n; i++) {
		struct assay_decoded d;
		char errstr[256];
		avro_value_t arr, el;
		size_t nc;
		const char *cid;
		int32_t v;

		assert_int_equal(assay_codec_decode(e.codec, recs[i].value, recs[i].value_len, &d,
		                                    errstr, sizeof(errstr)),
		                 0);
		assert_int_equal(assay_value_array(&d.value, "controls", &arr, &nc), 0);
		for (size_t k = 0; k < nc; k++) {
			assay_value_array_get(&arr, k, &el);
			assay_value_string(&el, "control_id", &cid, NULL);
			if (strcmp(cid, "A.8.8") != 0)
				continue;
			found = true;
			/* 700 + 450 * 150 / 1000 = 767: 16 * (1 - 0.613) = 6 */
			assay_value_int(&el, "residual_score", &v);
			assert_int_equal(v, 6);
			assay_value_int(&el, "previous_residual_score", &v);
			assert_int_equal(v, 7);
			assay_value_int(&el, "direct_links", &v);
			assert_int_equal(v, 4);
			assay_value_int(&el, "independent_sources", &v);
			assert_int_equal(v, 2);
		}
		assay_decoded_release(&d);
	}
	assert_true(found);
	assay_test_records_free(recs, n);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM risk_evidence_links"),
	                 1);
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT direct_links FROM risk_control_scores WHERE "
	                                      "audit_id = 'au-m' AND control_id = 'A.8.8'"),
	                 4);
	env_release(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_scores_dead_letters_quiet_batches_and_restart,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_same_final_scores_for_any_batch_size,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_two_instances_share_the_group,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_migration_keeps_the_evidence,
	                                  assay_test_service_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
