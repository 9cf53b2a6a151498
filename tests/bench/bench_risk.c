/*
 * assay-risk alone on the local stack: what its batches cost in PostgreSQL. One fresh
 * database and fresh topics; 100 audits are opened (both standards, the last Annex A control
 * of each excluded in the SoA), then `events` ControlMapped are produced before the service
 * starts, shaped as the pipeline benchmark's: the same claimed controls per sequence number
 * as tests/support/assay_test_evidence.c, linked by the real crosswalk (assay_crosswalk_map,
 * as assay-mapper does), one source system, collected an hour ago. assay-risk (this build's
 * bin/) then consumes them in batches of 1,000 as fast as it can.
 *
 * Printed per window of `window` events: the loop's time to apply a batch in PostgreSQL
 * (assay_batch_seconds: outbox, risk's write, offsets, commit) and risk's own write
 * (assay_risk_write_seconds), both in ms per 1,000 events; then the time a restarted
 * instance needs to load the stored state (start until /readyz answers 200), and the size of
 * the risk tables.
 *
 *   bench_risk [events [window]]     (defaults 200000 and 50000)
 *   BENCH_RISK_KEEP_DB=1 keeps the database (its URL is printed) for EXPLAIN ANALYZE.
 * Last line: BENCH risk batch_ms_per_1k=... write_ms_per_1k=... reload_ms=...
 */
#include "assay_test.h"
#include "assay_test_evidence.h"
#include "assay_test_kafka.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"
#include "assay_catalog.h"
#include "assay_codec.h"
#include "assay_crosswalk.h"
#include "assay_pg.h"
#include "assay_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUDITS     100
#define NSTANDARDS 2

static const char *const standards[NSTANDARDS] = {"ISO27001_2022", "ISO42001_2023"};

struct bench {
	char url[512];
	char t_audit[128], t_mapped[128], t_scored[128], t_dlq[128];
	struct assay_registry *reg;
	struct assay_codec *codec;
	struct assay_catalog *cat;
	struct assay_crosswalk *cw;
	rd_kafka_t *rk;
	/* Annex A controls per standard (the last one is excluded in every SoA) */
	const struct assay_control **annex[NSTANDARDS];
	size_t nannex[NSTANDARDS];
};

static void produce(struct bench *b, const char *topic, const char *key, void *buf, size_t len)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = rd_kafka_producev(b->rk, RD_KAFKA_V_TOPIC(topic),
		                        RD_KAFKA_V_KEY(key, strlen(key)),
		                        RD_KAFKA_V_VALUE(buf, len),
		                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(b->rk, 10);
	}
	assert_int_equal(err, 0);
}

static void set_null_field(avro_value_t *rec, const char *field)
{
	avro_value_t x;

	assert_int_equal(assay_value_field(rec, field, AVRO_NULL, &x), 0);
	assert_int_equal(avro_value_set_null(&x), 0);
}

static void setup(struct bench *b)
{
	static const char *const conf[] = {
	        "enable.idempotence",           "true",    "linger.ms", "20",
	        "queue.buffering.max.messages", "1000000", NULL};
	char errstr[512];
	PGconn *conn = NULL;

	assay_test_pg_fresh_db(b->url, sizeof(b->url), "bench_risk");
	assay_test_pg_migrate(b->url);
	b->reg = assay_registry_pg_new(b->url, errstr, sizeof(errstr));
	assert_non_null(b->reg);
	b->codec = assay_codec_new(b->reg, 0, errstr, sizeof(errstr));
	assert_non_null(b->codec);
	if (assay_codec_register_embedded(b->codec, errstr, sizeof(errstr)))
		fail_msg("register: %s", errstr);
	if (assay_pg_connect(b->url, &conn, errstr, sizeof(errstr)) ||
	    assay_catalog_load(conn, &b->cat, errstr, sizeof(errstr)) ||
	    assay_crosswalk_load(conn, b->cat, &b->cw, errstr, sizeof(errstr)))
		fail_msg("catalog: %s", errstr);
	PQfinish(conn);
	for (int s = 0; s < NSTANDARDS; s++) {
		size_t n = assay_catalog_count(b->cat, standards[s], true);

		b->annex[s] = calloc(n, sizeof(*b->annex[s]));
		assert_non_null(b->annex[s]);
		for (size_t i = 0; i < n; i++)
			b->annex[s][i] = assay_catalog_at(b->cat, standards[s], true, i);
		b->nannex[s] = n;
	}
	assay_test_kafka_topic(b->t_audit, sizeof(b->t_audit), "bench-risk-audit", 4);
	assay_test_kafka_topic(b->t_mapped, sizeof(b->t_mapped), "bench-risk-mapped", 4);
	assay_test_unique(b->t_scored, sizeof(b->t_scored), "bench-risk-scored");
	assay_test_unique(b->t_dlq, sizeof(b->t_dlq), "bench-risk-dlq");
	b->rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, NULL, NULL);
}

static void open_audits(struct bench *b)
{
	for (int k = 0; k < AUDITS; k++) {
		char audit[32], client[32];
		void *buf;
		size_t len;

		snprintf(audit, sizeof(audit), "audit-%d", k);
		snprintf(client, sizeof(client), "client-%d", k % 10);
		assay_test_audit_opened_encode(b->codec, "cb-bench", audit, client, standards,
		                               NSTANDARDS, &buf, &len);
		produce(b, b->t_audit, audit, buf, len);
		for (int s = 0; s < NSTANDARDS; s++) {
			size_t n = b->nannex[s];
			const char **ids = calloc(n, sizeof(*ids));
			bool *app = calloc(n, sizeof(*app));

			assert_true(ids && app);
			for (size_t i = 0; i < n; i++) {
				ids[i] = b->annex[s][i]->id;
				app[i] = i + 1 < n;
			}
			assay_test_soa_encode(b->codec, "cb-bench", audit, client, standards[s], 1,
			                      ids, app, n, &buf, &len);
			produce(b, b->t_audit, audit, buf, len);
			free(ids);
			free(app);
		}
	}
}

/* ControlMapped for sequence numbers [0, count); returns the links made. */
static long produce_mapped(struct bench *b, long count)
{
	const struct assay_schema *s = NULL;
	const struct assay_control *excluded[NSTANDARDS];
	struct assay_map_scope scope;
	struct assay_link *links;
	size_t cap = assay_crosswalk_links_bound(b->cw, 3);
	long nlinks = 0;
	int64_t now = assay_test_wall_ms();
	char errstr[256];
	avro_value_t v;

	assert_int_equal(assay_codec_schema_by_name(b->codec, "org.assay.v1.ControlMapped", &s,
	                                            errstr, sizeof(errstr)),
	                 0);
	assert_int_equal(assay_codec_value_new(s, &v), 0);
	links = calloc(cap, sizeof(*links));
	assert_non_null(links);
	for (int k = 0; k < NSTANDARDS; k++)
		excluded[k] = b->annex[k][b->nannex[k] - 1];
	scope.standards = standards;
	scope.nstandards = NSTANDARDS;
	scope.excluded = excluded;
	scope.nexcluded = NSTANDARDS;
	for (long seq = 0; seq < count; seq++) {
		size_t n27 = b->nannex[0] - 1, n42 = b->nannex[1] - 1;
		size_t a = (size_t)seq % n27, c = (a + 1 + (size_t)seq % (n27 - 1)) % n27;
		const struct assay_control *claimed[3];
		char audit[32], client[32], id[48];
		avro_value_t arr, el, via;
		size_t n = 0;
		void *buf = NULL;
		size_t len = 0;

		claimed[0] = b->annex[0][a];
		claimed[1] = b->annex[0][c];
		claimed[2] = b->annex[1][(size_t)seq % n42];
		assert_int_equal(assay_crosswalk_map(b->cw, claimed, 3, &scope, links, cap, &n), 0);
		nlinks += (long)n;
		snprintf(audit, sizeof(audit), "audit-%ld", seq % AUDITS);
		snprintf(client, sizeof(client), "client-%ld", (seq % AUDITS) % 10);
		snprintf(id, sizeof(id), "map-%ld", seq);
		avro_value_reset(&v);
		assay_value_set_string(&v, "event_id", id);
		assay_value_set_string(&v, "tenant_id", "cb-bench");
		assay_value_set_long(&v, "occurred_at", now);
		assay_value_set_string(&v, "audit_id", audit);
		assay_value_set_string(&v, "client_id", client);
		assay_value_set_string(&v, "evidence_id", id);
		assay_value_set_string(&v, "accepted_event_id", id);
		assay_value_set_string(&v, "source_system", "scanner");
		assert_int_equal(assay_value_set_enum(&v, "kind", "CONFIGURATION_SCAN"), 0);
		assay_value_set_long(&v, "collected_at", now - 3600000);
		assert_int_equal(assay_value_field(&v, "links", AVRO_ARRAY, &arr), 0);
		for (size_t i = 0; i < n; i++) {
			const struct assay_link *l = &links[i];

			assert_int_equal(avro_value_append(&arr, &el, NULL), 0);
			assert_int_equal(
			        assay_value_set_enum(&el, "standard", l->control->standard), 0);
			assay_value_set_string(&el, "control_id", l->control->id);
			assert_int_equal(assay_value_set_enum(&el, "link_kind",
			                                      assay_link_kind_symbol(l->kind)),
			                 0);
			if (l->via == NULL) {
				set_null_field(&el, "via");
				set_null_field(&el, "relation");
				set_null_field(&el, "strength");
			} else {
				assert_int_equal(assay_value_field(&el, "via", AVRO_RECORD, &via),
				                 0);
				assay_value_set_enum(&via, "standard", l->via->standard);
				assay_value_set_string(&via, "control_id", l->via->id);
				assay_value_set_enum(&el, "relation",
				                     assay_relation_symbol(l->relation));
				assay_value_set_enum(&el, "strength",
				                     assay_strength_symbol(l->strength));
			}
		}
		if (assay_codec_encode(b->codec, s, &v, &buf, &len, errstr, sizeof(errstr)))
			fail_msg("encode: %s", errstr);
		produce(b, b->t_mapped, audit, buf, len);
	}
	avro_value_decref(&v);
	free(links);
	assert_int_equal(rd_kafka_flush(b->rk, 120000), 0);
	return nlinks;
}

static pid_t spawn(struct bench *b, int port)
{
	char v[7][640];
	const char *vars[] = {v[0],
	                      v[1],
	                      v[2],
	                      v[3],
	                      v[4],
	                      v[5],
	                      v[6],
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_TOPICS_PARTITIONS=4",
	                      "ASSAY_BATCH_MAX_MESSAGES=1000",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};

	snprintf(v[0], sizeof(v[0]), "ASSAY_PG_URL=%s", b->url);
	snprintf(v[1], sizeof(v[0]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", b->t_audit);
	snprintf(v[2], sizeof(v[0]), "ASSAY_TOPIC_CONTROL_MAPPED=%s", b->t_mapped);
	snprintf(v[3], sizeof(v[0]), "ASSAY_TOPIC_RISK_SCORED=%s", b->t_scored);
	snprintf(v[4], sizeof(v[0]), "ASSAY_DEADLETTER_TOPIC=%s", b->t_dlq);
	snprintf(v[5], sizeof(v[0]), "ASSAY_METRICS_PORT=%d", port);
	snprintf(v[6], sizeof(v[0]), "ASSAY_GROUP_ID=%s-group", b->t_mapped);
	return assay_test_service_start("assay-risk", NULL, vars, NULL, -1);
}

static double metric(int port, const char *name)
{
	double v = assay_test_metric(port, name);

	return v < 0 ? 0 : v;
}

static void wait_ready(int port, int64_t timeout_ms)
{
	int64_t deadline = assay_test_now_ms() + timeout_ms;
	char body[512];

	while (assay_test_http_get(port, "/readyz", body, sizeof(body)) != 200) {
		if (assay_test_now_ms() > deadline)
			fail_msg("assay-risk not ready in %lld ms", (long long)timeout_ms);
		usleep(20 * 1000);
	}
}

static void print_sizes(struct bench *b)
{
	static const char *const sql =
	        "SELECT string_agg(format('%s %s rows %s', c.relname, "
	        "pg_size_pretty(pg_total_relation_size(c.oid)), c.reltuples::bigint), '; ' "
	        "ORDER BY c.relname) FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE "
	        "'risk\\_%' AND c.relname NOT IN ('risk_theme_defaults', 'risk_dimension_tags')";
	char errstr[512];
	PGconn *conn = NULL;
	PGresult *res = NULL;

	if (assay_pg_connect(b->url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_exec(conn, "ANALYZE", errstr, sizeof(errstr)) ||
	    assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("sizes: %s", errstr);
	printf("  tables: %s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(conn);
}

static void bench(void **state)
{
	long events = 200000, window = 50000, nlinks, setup_msgs = AUDITS * (1 + NSTANDARDS);
	double prev_b_sum = 0, prev_b_n = 0, prev_w_sum = 0, prev_w_n = 0, all_b = 0, all_w = 0;
	double all_n = 0;
	const char *arg;
	struct bench b;
	int port;
	int64_t t0, t_start;
	pid_t pid;

	(void)state;
	memset(&b, 0, sizeof(b));
	if ((arg = getenv("BENCH_RISK_EVENTS")) != NULL)
		events = strtol(arg, NULL, 10);
	if ((arg = getenv("BENCH_RISK_WINDOW")) != NULL)
		window = strtol(arg, NULL, 10);
	if (window <= 0 || window > events)
		window = events;
	setup(&b);
	open_audits(&b);
	t0 = assay_test_now_ms();
	nlinks = produce_mapped(&b, events);
	printf("risk bench: %ld ControlMapped with %ld links (%.2f per event) produced in %.1f s\n",
	       events, nlinks, (double)nlinks / (double)events,
	       (double)(assay_test_now_ms() - t0) / 1000.0);
	fflush(stdout);

	port = assay_test_free_port();
	t_start = assay_test_now_ms();
	pid = spawn(&b, port);
	for (long done = 0, want; done < events; done = want) {
		int64_t deadline = assay_test_now_ms() + 600000;
		double b_sum, b_n, w_sum, w_n;

		want = done + window < events ? done + window : events;

		while (metric(port, "assay_consumed_total") < (double)(setup_msgs + want)) {
			if (assay_test_now_ms() > deadline)
				fail_msg("assay-risk consumed %.0f of %ld in 600 s",
				         metric(port, "assay_consumed_total"), setup_msgs + want);
			usleep(50 * 1000);
		}
		b_sum = metric(port, "assay_batch_seconds_sum");
		b_n = metric(port, "assay_batch_seconds_count");
		w_sum = metric(port, "assay_risk_write_seconds_sum");
		w_n = metric(port, "assay_risk_write_seconds_count");
		printf("  events %7ld: %4.0f batches, batch %6.2f ms, risk write %6.2f ms (%4.0f "
		       "writes) per 1,000 events\n",
		       want, b_n - prev_b_n, (b_sum - prev_b_sum) * 1e6 / (double)(want - done),
		       (w_sum - prev_w_sum) * 1e6 / (double)(want - done), w_n - prev_w_n);
		prev_b_sum = b_sum;
		prev_b_n = b_n;
		prev_w_sum = w_sum;
		prev_w_n = w_n;
		fflush(stdout);
	}
	all_b = prev_b_sum;
	all_w = prev_w_sum;
	all_n = prev_b_n;
	printf("  all: %.0f batches in %.1f s wall, batch %.2f ms, risk write %.2f ms per 1,000 "
	       "events\n",
	       all_n, (double)(assay_test_now_ms() - t_start) / 1000.0,
	       all_b * 1e6 / (double)events, all_w * 1e6 / (double)events);
	assert_int_equal(assay_test_service_stop(pid), 0);
	print_sizes(&b);

	/* a restart: the state of 100 audits and their evidence is loaded again */
	{
		int64_t t;
		double reload_ms;

		port = assay_test_free_port();
		t = assay_test_now_ms();
		pid = spawn(&b, port);
		wait_ready(port, 120000);
		reload_ms = (double)(assay_test_now_ms() - t);
		assert_int_equal(assay_test_service_stop(pid), 0);
		printf("  restart until ready: %.0f ms\n", reload_ms);
		printf("BENCH risk events=%ld batch_ms_per_1k=%.2f write_ms_per_1k=%.2f "
		       "reload_ms=%.0f\n",
		       events, all_b * 1e6 / (double)events, all_w * 1e6 / (double)events,
		       reload_ms);
	}
	if (getenv("BENCH_RISK_KEEP_DB"))
		printf("  database kept: %s\n", b.url);
	else
		assay_test_pg_drop_db(b.url);
	rd_kafka_destroy(b.rk);
	for (int s = 0; s < NSTANDARDS; s++)
		free(b.annex[s]);
	assay_crosswalk_destroy(b.cw);
	assay_catalog_destroy(b.cat);
	assay_codec_destroy(b.codec);
	assay_registry_destroy(b.reg);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(bench, assay_test_service_teardown),
	};

	if (argc > 1)
		setenv("BENCH_RISK_EVENTS", argv[1], 1);
	if (argc > 2)
		setenv("BENCH_RISK_WINDOW", argv[2], 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
