/*
 * Accepted-evidence events per second through assay-mapper on its own: the mapper's handler
 * (links decided, ControlMapped encoded, link rows COPYed) in the batch loop with 1,000-message
 * batches, exactly once (outbox, offsets, Kafka transactions). The input is produced first:
 * 100 audits opened with both standards in scope (every tenth with a 42001 SoA excluding
 * A.10.3), then warm-up and measured EvidenceAccepted events claiming 1-3 controls that have
 * crosswalk edges; the time runs from the last warm-up event published to the last one.
 *
 *   bench_mapper [events]      (default 200000, after 20000 warm-up events)
 * Last line: BENCH mapper events_per_s=... links_per_event=... events=...
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "assay_test_kafka.h"
#include "assay_test_loop.h"
#include "assay_test_pg.h"
#include "assay_codec.h"
#include "assay_embed.h"
#include "assay_migrate.h"
#include "mapper.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WARMUP  20000
#define NAUDITS 100

static volatile sig_atomic_t stop;

static void produce(rd_kafka_t *rk, struct assay_codec *codec, const char *topic, const char *key,
                    const struct assay_schema *s, avro_value_t *v)
{
	char err[512];
	void *buf;
	size_t len;
	rd_kafka_resp_err_t e;

	assay_test_null_unset_unions(v);
	if (assay_codec_encode(codec, s, v, &buf, &len, err, sizeof(err)))
		fail_msg("%s", err);
	while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
	                              RD_KAFKA_V_VALUE(buf, len),
	                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END)) ==
	       RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(rk, 10);
	assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_poll(rk, 0);
}

static void bench(long n)
{
	char url[512], ev_topic[128], au_topic[128], out[128], dlq[128], service[128], err[1024];
	const char *topics[2];
	const char *const props[] = {"linger.ms", "20", "batch.num.messages", "10000", NULL};
	static struct mapper_config mcfg;
	const struct assay_service_def *def = &mapper_service;
	struct assay_handler handler = def->handler;
	struct assay_loop_config cfg;
	struct assay_metrics *m = assay_metrics_new("bench");
	struct assay_log *log = assay_log_new("bench", ASSAY_LOG_WARN, 2);
	struct assay_registry *reg;
	struct assay_codec *codec, *loop_codec;
	void *mapper;
	struct assay_counter *produced;
	const struct assay_schema *s_open, *s_soa, *s_ev;
	struct assay_test_loop_thread r;
	PGconn *conn;
	rd_kafka_t *rk;
	int64_t t0, t1;
	avro_value_t v, arr, elem;

	assay_test_pg_fresh_db(url, sizeof(url), "bench_mapper");
	if (assay_pg_connect(url, &conn, err, sizeof(err)) ||
	    assay_migrate(conn, assay_embedded_migrations, err, sizeof(err)))
		fail_msg("%s", err);
	reg = assay_registry_pg_new(url, err, sizeof(err));
	codec = reg ? assay_codec_new(reg, 0, err, sizeof(err)) : NULL;
	loop_codec = reg ? assay_codec_new(reg, 0, err, sizeof(err)) : NULL;
	if (codec == NULL || loop_codec == NULL ||
	    assay_codec_register_embedded(codec, err, sizeof(err)) ||
	    assay_codec_register_embedded(loop_codec, err, sizeof(err)) ||
	    assay_codec_schema_by_name(codec, "org.assay.v1.AuditOpened", &s_open, err,
	                               sizeof(err)) ||
	    assay_codec_schema_by_name(codec, "org.assay.v1.SoaSubmitted", &s_soa, err,
	                               sizeof(err)) ||
	    assay_codec_schema_by_name(codec, "org.assay.v1.EvidenceAccepted", &s_ev, err,
	                               sizeof(err)))
		fail_msg("%s", err);
	assay_test_kafka_topic(ev_topic, sizeof(ev_topic), "bench-map-ev", 4);
	assay_test_kafka_topic(au_topic, sizeof(au_topic), "bench-map-audit", 4);
	assay_test_kafka_topic(out, sizeof(out), "bench-map-out", 4);
	assay_test_kafka_topic(dlq, sizeof(dlq), "bench-map-dlq", 1);
	assay_test_unique(service, sizeof(service), "bench-mapper");

	/* the input: audits, then evidence claiming controls with crosswalk edges */
	static const char *const claims[][2] = {
	        {"ISO27001_2022", "9.3.1"},  {"ISO27001_2022", "A.8.15"},
	        {"ISO27001_2022", "A.5.19"}, {"ISO27001_2022", "7.2"},
	        {"ISO42001_2023", "9.2.2"},  {"ISO42001_2023", "A.8.4"},
	        {"ISO27001_2022", "A.5.9"},  {"ISO27001_2022", "A.8.32"},
	        {"ISO42001_2023", "6.1.4"},  {"ISO27001_2022", "10.2"},
	        {"ISO27001_2022", "A.7.4"},  {"ISO42001_2023", "A.6.2.6"},
	};
	const size_t nclaims = sizeof(claims) / sizeof(claims[0]);
	rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, props, NULL, NULL);
	for (int a = 0; a < NAUDITS; a++) {
		char audit[32];

		snprintf(audit, sizeof(audit), "audit-%d", a);
		assay_codec_value_new(s_open, &v);
		assay_value_set_string(&v, "event_id", audit);
		assay_value_set_string(&v, "tenant_id", "cb-1");
		assay_value_set_string(&v, "audit_id", audit);
		assay_value_set_string(&v, "client_id", "client-1");
		assay_value_field(&v, "standards", AVRO_ARRAY, &arr);
		for (int k = 0; k < 2; k++) {
			avro_value_append(&arr, &elem, NULL);
			assay_value_set_enum(&elem, "standard",
			                     k ? "ISO42001_2023" : "ISO27001_2022");
		}
		produce(rk, codec, au_topic, audit, s_open, &v);
		avro_value_decref(&v);
		if (a % 10 == 0) {
			assay_codec_value_new(s_soa, &v);
			assay_value_set_string(&v, "audit_id", audit);
			assay_value_set_enum(&v, "standard", "ISO42001_2023");
			assay_value_set_int(&v, "revision", 1);
			assay_value_field(&v, "rows", AVRO_ARRAY, &arr);
			avro_value_append(&arr, &elem, NULL);
			assay_value_set_string(&elem, "control_id", "A.10.3");
			assay_value_set_bool(&elem, "applicable", false);
			produce(rk, codec, au_topic, audit, s_soa, &v);
			avro_value_decref(&v);
		}
	}
	assert_int_equal(rd_kafka_flush(rk, 30000), 0);
	assay_codec_value_new(s_ev, &v);
	for (long i = 0; i < WARMUP + n; i++) {
		char audit[32], id[48];
		size_t k = (size_t)i % 3 + 1;

		snprintf(audit, sizeof(audit), "audit-%ld", i % NAUDITS);
		snprintf(id, sizeof(id), "acc-%ld", i);
		avro_value_reset(&v);
		assay_value_set_string(&v, "event_id", id);
		assay_value_set_string(&v, "tenant_id", "cb-1");
		assay_value_set_long(&v, "occurred_at", 1767225600000);
		assay_value_set_string(&v, "audit_id", audit);
		assay_value_set_string(&v, "client_id", "client-1");
		assay_value_set_string(&v, "evidence_id", id + 4);
		assay_value_set_string(&v, "submitted_event_id", id);
		assay_value_set_string(&v, "source_system", "bench");
		assay_value_set_enum(&v, "kind", "LOG_SAMPLE");
		assay_value_set_long(&v, "collected_at", 1767225000000);
		assay_value_set_string(&v, "sha256", "00");
		assay_value_set_string(&v, "uri", "s3://bench");
		assay_value_field(&v, "claimed_controls", AVRO_ARRAY, &arr);
		for (size_t c = 0; c < k; c++) {
			const char *const *cl = claims[((size_t)i * 7 + c * 5) % nclaims];

			avro_value_append(&arr, &elem, NULL);
			assay_value_set_enum(&elem, "standard", cl[0]);
			assay_value_set_string(&elem, "control_id", cl[1]);
		}
		produce(rk, codec, ev_topic, audit, s_ev, &v);
	}
	avro_value_decref(&v);
	assert_int_equal(rd_kafka_flush(rk, 60000), 0);
	rd_kafka_destroy(rk);

	/* the mapper's own start-up, then the loop */
	mcfg.consumes[0] = ev_topic;
	mcfg.consumes[1] = au_topic;
	mcfg.produces[0] = out;
	mapper = def->create(&mcfg);
	if (mapper == NULL)
		fail_msg("out of memory");
	handler.ctx = mapper;
	{
		struct assay_service_env env = {NULL, log, m, loop_codec, conn};

		if (def->init(mapper, &env, err, sizeof(err)))
			fail_msg("%s", err);
	}
	topics[0] = ev_topic;
	topics[1] = au_topic;
	assay_test_loop_config(&cfg, service, "bench", url, topics, dlq, &stop);
	cfg.ntopics = 2;
	cfg.metrics = m;
	cfg.log = log;
	cfg.codec = loop_codec;
	produced = assay_metrics_counter(m, "assay_produced_total", "", NULL);
	assay_test_loop_thread_start(&r, &cfg, &handler);
	assay_test_loop_thread_wait(&r, produced, WARMUP);
	t0 = assay_test_now_ms();
	assay_test_loop_thread_wait(&r, produced, (uint64_t)(WARMUP + n));
	t1 = assay_test_now_ms();
	stop = 1;
	if (assay_test_loop_thread_join(&r) != 0)
		fail_msg("%s", r.errstr);

	PGresult *res;
	double links = 0;
	if (assay_pg_query(conn, "SELECT count(*) FROM assay_mapper_links", 0, NULL, &res, err,
	                   sizeof(err)) == 0) {
		links = strtod(PQgetvalue(res, 0, 0), NULL);
		PQclear(res);
	}
	{
		char *text;
		size_t len;

		if (assay_metrics_render(m, &text, &len) == 0) {
			fprintf(stderr, "%s", text);
			free(text);
		}
	}
	PQfinish(conn);
	def->fini(mapper);
	def->destroy(mapper);
	assay_codec_destroy(codec);
	assay_codec_destroy(loop_codec);
	assay_registry_destroy(reg);
	assay_metrics_destroy(m);
	assay_log_destroy(log);
	assay_test_pg_drop_db(url);
	printf("mapper: %ld accepted-evidence events mapped and published in %.2f s\n", n,
	       (t1 - t0) / 1000.0);
	printf("BENCH mapper events_per_s=%.0f links_per_event=%.2f batch=1000 events=%ld\n",
	       (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1), links / (double)(WARMUP + n),
	       n);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;

	bench(n);
	return 0;
}
