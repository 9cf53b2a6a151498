/*
 * Outputs that cannot fit, and health, against the real broker and database: a dead letter or
 * an event larger than its topic takes is parked in assay_parked_values with a bounded record
 * in its place (just under the limit travels whole, just over is parked), on topics with
 * default and with raised limits; an event the broker refuses after its topic's limit was
 * lowered is parked by the relay while its neighbours are published; a relay that cannot
 * publish turns /readyz 503 with the reason and counts retries; assay-intake's EvidenceRejected
 * for a submission of about 1 MB names the parked original; a restarted instance takes its
 * partitions back at once (static membership) although the session timeout is 45 s; an empty
 * value is dead-lettered empty, and the dead-letter log line names the input's ids.
 */
#include "assay_test.h"
#include "assay_test_evidence.h"
#include "assay_test_kafka.h"
#include "assay_test_loop.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"

#include "assay_http.h"
#include "assay_kafka.h"
#include "assay_sha256.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MB (1024 * 1024)

/* A new topic with the given max.message.bytes (NULL: the broker's default). */
static void topic_with_limit(char *name, size_t size, const char *prefix, const char *max_bytes)
{
	const char *configs[] = {"max.message.bytes", max_bytes, NULL};
	const char *topics[1] = {name};
	char errstr[512];

	assay_test_unique(name, size, prefix);
	if (assay_kafka_ensure_topics(assay_test_brokers(), topics, 1, 1, 1,
	                              max_bytes ? configs : NULL, 30000, errstr, sizeof(errstr)))
		fail_msg("topic %s: %s", name, errstr);
}

/* Sets one config of topic through AlterConfigs. */
static void alter_topic(const char *topic, const char *name, const char *value)
{
	rd_kafka_t *rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, NULL, NULL, NULL);
	rd_kafka_ConfigResource_t *res =
	        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;
	const rd_kafka_ConfigResource_t **out;
	size_t n = 0;

	assert_int_equal(rd_kafka_ConfigResource_set_config(res, name, value), 0);
	rd_kafka_AlterConfigs(rk, &res, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, 30000);
	assert_non_null(ev);
	assert_int_equal(rd_kafka_event_error(ev), 0);
	out = rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
	assert_int_equal(n, 1);
	assert_int_equal(rd_kafka_ConfigResource_error(out[0]), 0);
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

/* Produces one message (value may be NULL for a NULL value) with optional event_id and
 * trace_id headers, with a producer that takes messages of up to 16 MB. */
static void send_one(const char *topic, const char *key, const void *value, size_t len,
                     const char *event_id, const char *trace_id)
{
	static const char *const conf[] = {"message.max.bytes", "16777216", NULL};
	rd_kafka_t *rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, NULL, NULL);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);

	if (event_id)
		rd_kafka_header_add(h, "event_id", -1, event_id, -1);
	if (trace_id)
		rd_kafka_header_add(h, "trace_id", -1, trace_id, -1);
	assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
	                                   RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
	                                   RD_KAFKA_V_VALUE((void *)value, len),
	                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	                                   RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
	                 0);
	assert_int_equal(rd_kafka_flush(rk, 30000), 0);
	rd_kafka_destroy(rk);
}

/* "poison" followed by filler up to len bytes: the copy handler dead-letters it. */
static char *poison_of(size_t len)
{
	char *v = malloc(len);

	assert_non_null(v);
	memset(v, 'p', len);
	memcpy(v, "poison", 6);
	return v;
}

/* The header name of r as a NUL-terminated string in out ("" when absent). */
static const char *header(const struct assay_test_record *r, const char *name, char *out,
                          size_t size)
{
	const struct assay_header *h = assay_headers_find(&r->headers, name);

	snprintf(out, size, "%.*s", h ? (int)h->size : 0, h ? (const char *)h->value : "");
	return out;
}

/* A loop running the copy handler with its own database and topics. */
struct rig {
	char url[512], in[160], out[160], dlq[160], service[128];
	const char *instance; /* NULL: "one" */
	int session_ms;       /* 0: the tests' 6 s */
	const char *topics[1];
	const char *produces[1];
	struct assay_loop_config cfg;
	struct assay_test_copy_handler h;
	struct assay_test_loop_thread t;
	struct assay_metrics *metrics;
	struct assay_log *log;
	volatile sig_atomic_t stop;
};

static void rig_init(struct rig *r, const char *name, const char *in_limit, const char *out_limit,
                     const char *dlq_limit)
{
	char prefix[64];

	memset(r, 0, sizeof(*r));
	snprintf(prefix, sizeof(prefix), "test_outputs_%s", name);
	assay_test_pg_fresh_db(r->url, sizeof(r->url), prefix);
	assay_test_loop_schema(r->url);
	topic_with_limit(r->in, sizeof(r->in), "out-in", in_limit);
	topic_with_limit(r->out, sizeof(r->out), "out-out", out_limit);
	topic_with_limit(r->dlq, sizeof(r->dlq), "out-dlq", dlq_limit);
	assay_test_unique(r->service, sizeof(r->service), "outputs-svc");
}

static void rig_start(struct rig *r)
{
	struct assay_handler handler;

	r->stop = 0;
	r->topics[0] = r->in;
	r->produces[0] = r->out;
	r->metrics = assay_metrics_new(r->service);
	assert_non_null(r->metrics);
	if (r->instance == NULL)
		r->instance = "one";
	assay_test_copy_handler_init(&r->h, r->instance, r->out);
	handler = assay_test_copy_handler(&r->h);
	assay_test_loop_config(&r->cfg, r->service, r->instance, r->url, r->topics, r->dlq,
	                       &r->stop);
	r->cfg.produces = r->produces;
	r->cfg.nproduces = 1;
	if (r->session_ms) {
		static const char *const props[] = {"consumer.heartbeat.interval.ms", "500"};

		r->cfg.session_timeout_ms = r->session_ms;
		r->cfg.kafka_props = props;
		r->cfg.nkafka_props = 1;
	}
	r->cfg.metrics = r->metrics;
	r->cfg.relay_unready_ms = 2000;
	r->log = assay_log_new(r->service, ASSAY_LOG_WARN, -1);
	r->cfg.log = r->log;
	assay_test_loop_thread_start(&r->t, &r->cfg, &handler);
}

static void rig_stop(struct rig *r)
{
	r->stop = 1;
	if (assay_test_loop_thread_join(&r->t) != 0)
		fail_msg("loop ended with %d: %s", r->t.rc, r->t.errstr);
	assay_test_copy_handler_release(&r->h);
	assay_metrics_destroy(r->metrics);
	assay_log_destroy(r->log);
}

/* The metric's value in the rendered text of m, or -1. */
static double metric(struct assay_metrics *m, const char *name)
{
	char *text = NULL, *line;
	size_t len = 0;
	double v = -1;

	assert_int_equal(assay_metrics_render(m, &text, &len), 0);
	for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ') {
			v = strtod(line + strlen(name) + 1, NULL);
			break;
		}
	free(text);
	return v;
}

/* One value of the parked row of (topic, offset, seq), as text; "" when there is none. */
static void parked(const char *url, const char *column, const char *topic, long offset, int seq,
                   char *out, size_t size)
{
	char sql[700];
	char errstr[512];
	PGconn *conn;
	PGresult *res;

	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM assay_parked_values WHERE topic = '%s' AND \"offset\" = %ld "
	         "AND seq = %d",
	         column, topic, offset, seq);
	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("%s", errstr);
	snprintf(out, size, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	PQfinish(conn);
}

/* A dead letter just under the dead-letter topic's limit (Kafka's default, 1,048,588 bytes)
 * travels whole; one just over is parked and travels as a prefix with its size, hash and
 * where it is; the messages around them are applied and published. */
static void test_deadletter_just_under_and_over(void **state)
{
	struct rig r;
	char *under = poison_of(1040005), *over = poison_of(1048000);
	char sha[ASSAY_SHA256_HEX_LEN], text[700];
	struct assay_test_record *dl, *out;
	size_t ndl = 0, nout = 0;
	long rows, distinct;

	(void)state;
	rig_init(&r, "dlq_limit", NULL, NULL, NULL);
	rig_start(&r);
	send_one(r.in, "k", "msg-0", 5, NULL, NULL);
	send_one(r.in, "k", under, 1040005, NULL, NULL);
	send_one(r.in, "k", over, 1048000, "ev-over", "trace-over");
	send_one(r.in, "k", "msg-3", 5, NULL, NULL);
	out = assay_test_read_topic(r.out, "read_committed", 2, 1000, 60000, &nout);
	dl = assay_test_read_topic(r.dlq, "read_committed", 2, 1000, 60000, &ndl);
	rig_stop(&r);

	assert_int_equal(nout, 2);
	assert_string_equal(out[0].value, "out:msg-0");
	assert_string_equal(out[1].value, "out:msg-3");
	assert_int_equal(ndl, 2);
	/* just under: whole, no parking headers */
	assert_int_equal(dl[0].value_len, 1040005);
	assert_memory_equal(dl[0].value, under, 1040005);
	assert_string_equal(header(&dl[0], "assay.dlq.parked", text, sizeof(text)), "");
	/* just over: a prefix, the size, the hash, the row */
	assert_int_equal(dl[1].value_len, 1024);
	assert_memory_equal(dl[1].value, over, 1024);
	assert_true(assay_test_header_equals(&dl[1], "assay.dlq.value.size", "1048000"));
	assay_sha256_hex(over, 1048000, sha);
	assert_true(assay_test_header_equals(&dl[1], "assay.dlq.value.sha256", sha));
	assert_true(assay_test_header_equals(&dl[1], "assay.dlq.value.kept", "1024"));
	assert_non_null(strstr(header(&dl[1], "assay.dlq.parked", text, sizeof(text)), "seq=-1"));
	assert_true(assay_test_header_equals(&dl[1], "assay.dlq.event_id", "ev-over"));
	assert_true(assay_test_header_equals(&dl[1], "trace_id", "trace-over"));
	/* the whole bytes are in the database */
	parked(r.url, "value_size", r.in, 2, -1, text, sizeof(text));
	assert_string_equal(text, "1048000");
	parked(r.url, "value_sha256", r.in, 2, -1, text, sizeof(text));
	assert_string_equal(text, sha);
	parked(r.url, "substr(value, 7) = decode(repeat('p', 1047994), 'escape')", r.in, 2, -1,
	       text, sizeof(text));
	assert_string_equal(text, "t");
	parked(r.url, "count(*) OVER ()", r.in, 1, -1, text, sizeof(text));
	assert_string_equal(text, ""); /* the one that fit is not parked */
	assay_test_loop_counts(r.url, &rows, &distinct);
	assert_int_equal(rows, 2);
	assay_test_records_free(out, nout);
	assay_test_records_free(dl, ndl);
	free(under);
	free(over);
	assay_test_pg_drop_db(r.url);
}

/* Topics with raised limits (8 MB): a 4 MB dead letter travels whole, because the producer
 * is sized for the largest topic it writes to. */
static void test_deadletter_raised_limit(void **state)
{
	struct rig r;
	char *big = poison_of(4 * MB);
	struct assay_test_record *dl;
	size_t ndl = 0;
	char text[64];

	(void)state;
	rig_init(&r, "raised", "8388608", NULL, "8388608");
	rig_start(&r);
	send_one(r.in, "k", big, 4 * MB, NULL, NULL);
	send_one(r.in, "k", "msg-1", 5, NULL, NULL);
	dl = assay_test_read_topic(r.dlq, "read_committed", 1, 1000, 60000, &ndl);
	assert_int_equal(ndl, 1);
	assert_int_equal(dl[0].value_len, 4 * MB);
	assert_memory_equal(dl[0].value, big, 4 * MB);
	parked(r.url, "value_size", r.in, 0, -1, text, sizeof(text));
	assert_string_equal(text, "");
	assay_test_records_free(dl, ndl);
	rig_stop(&r);
	free(big);
	assay_test_pg_drop_db(r.url);
}

/* An event larger than its topic takes (20,000 bytes) is parked whole and its input
 * dead-lettered, naming it; the other events are published. */
static void test_event_too_large_for_topic(void **state)
{
	struct rig r;
	char *big = malloc(50000), text[700];
	struct assay_test_record *dl, *out;
	size_t ndl = 0, nout = 0;
	long rows, distinct;

	(void)state;
	memset(big, 'b', 50000);
	rig_init(&r, "event_limit", NULL, "20000", NULL);
	rig_start(&r);
	send_one(r.in, "k", "msg-0", 5, NULL, NULL);
	send_one(r.in, "k", big, 50000, NULL, NULL);
	send_one(r.in, "k", "msg-2", 5, NULL, NULL);
	out = assay_test_read_topic(r.out, "read_committed", 2, 1000, 60000, &nout);
	dl = assay_test_read_topic(r.dlq, "read_committed", 1, 1000, 60000, &ndl);
	rig_stop(&r);

	assert_int_equal(nout, 2);
	assert_string_equal(out[0].value, "out:msg-0");
	assert_string_equal(out[1].value, "out:msg-2");
	assert_int_equal(ndl, 1);
	assert_int_equal(dl[0].value_len, 50000); /* the input, whole */
	assert_non_null(strstr(header(&dl[0], "assay.dlq.error.message", text, sizeof(text)),
	                       "does not fit topic"));
	parked(r.url, "value_size", r.in, 1, 0, text, sizeof(text));
	assert_string_equal(text, "50004");
	parked(r.url, "target_topic", r.in, 1, 0, text, sizeof(text));
	assert_string_equal(text, r.out);
	assay_test_loop_counts(r.url, &rows, &distinct);
	assert_int_equal(rows, 3); /* the handler's rows are all applied */
	assay_test_records_free(out, nout);
	assay_test_records_free(dl, ndl);
	free(big);
	assay_test_pg_drop_db(r.url);
}

/* The output topic's limit is lowered under a running loop: the broker refuses the large
 * event (with its neighbours in the same request); the relay parks it and publishes a dead
 * letter in its place, and publishes the neighbours. */
static void test_broker_refuses_event(void **state)
{
	struct rig r;
	char *big = malloc(20000), text[700];
	struct assay_test_record *dl, *out;
	size_t ndl = 0, nout = 0;

	(void)state;
	memset(big, 'b', 20000);
	rig_init(&r, "refused", NULL, NULL, NULL);
	rig_start(&r);
	send_one(r.in, "k", "msg-0", 5, NULL, NULL);
	out = assay_test_read_topic(r.out, "read_committed", 1, 500, 60000, &nout);
	assert_int_equal(nout, 1);
	assay_test_records_free(out, nout);

	alter_topic(r.out, "max.message.bytes", "5000");
	send_one(r.in, "k", "msg-1", 5, NULL, NULL);
	send_one(r.in, "k", big, 20000, NULL, NULL);
	send_one(r.in, "k", "msg-3", 5, NULL, NULL);
	dl = assay_test_read_topic(r.dlq, "read_committed", 1, 1000, 90000, &ndl);
	out = assay_test_read_topic(r.out, "read_committed", 3, 1000, 90000, &nout);
	assert_true(metric(r.metrics, "assay_parked_total") >= 1);
	rig_stop(&r);

	assert_int_equal(nout, 3);
	assert_string_equal(out[0].value, "out:msg-0");
	assert_string_equal(out[1].value, "out:msg-1");
	assert_string_equal(out[2].value, "out:msg-3");
	assert_int_equal(ndl, 1);
	assert_true(assay_test_header_equals(&dl[0], "assay.dlq.event.topic", r.out));
	assert_true(assay_test_header_equals(&dl[0], "assay.dlq.value.size", "20004"));
	assert_int_equal(dl[0].value_len, 1024);
	parked(r.url, "value_size", r.in, 2, 0, text, sizeof(text));
	assert_string_equal(text, "20004");
	assay_test_records_free(out, nout);
	assay_test_records_free(dl, ndl);
	free(big);
	assay_test_pg_drop_db(r.url);
}

/* While the relay cannot publish (its topic does not exist yet), /readyz answers 503 after
 * relay.unready.ms with the reason, /healthz says it, retries are counted and the oldest
 * unpublished event's age shows; once the topic exists everything is published once. */
static void test_health_when_relay_cannot_publish(void **state)
{
	struct rig r;
	struct assay_http *http;
	char body[2048], errstr[512];
	struct assay_test_record *out;
	size_t nout = 0;
	int port, status = 0;
	int64_t deadline;
	const char *topics[1];

	(void)state;
	rig_init(&r, "health", NULL, NULL, NULL);
	assay_test_unique(r.out, sizeof(r.out), "out-missing"); /* not created */
	rig_start(&r);
	http = assay_http_start("127.0.0.1", 0, r.metrics, errstr, sizeof(errstr));
	assert_non_null(http);
	port = assay_http_port(http);
	deadline = assay_test_now_ms() + 20000;
	while (assay_test_now_ms() < deadline &&
	       assay_test_http_get(port, "/readyz", body, sizeof(body)) != 200)
		usleep(100 * 1000);
	assert_int_equal(assay_test_http_get(port, "/readyz", body, sizeof(body)), 200);

	send_one(r.in, "k", "msg-0", 5, NULL, NULL);
	send_one(r.in, "k", "msg-1", 5, NULL, NULL);
	deadline = assay_test_now_ms() + 60000;
	while (assay_test_now_ms() < deadline &&
	       ((status = assay_test_http_get(port, "/readyz", body, sizeof(body))) != 503 ||
	        strstr(body, "relay cannot publish") == NULL))
		usleep(200 * 1000);
	assert_int_equal(status, 503);
	assert_non_null(strstr(body, "not ready: relay cannot publish"));
	assert_int_equal(assay_test_http_get(port, "/healthz", body, sizeof(body)), 200);
	assert_non_null(strstr(body, "degraded: relay cannot publish"));
	assert_true(metric(r.metrics, "assay_retries_total") >= 1);
	assert_true(metric(r.metrics, "assay_outbox_oldest_unpublished_seconds") >= 2);

	topics[0] = r.out;
	if (assay_kafka_ensure_topics(assay_test_brokers(), topics, 1, 1, 1, NULL, 30000, errstr,
	                              sizeof(errstr)))
		fail_msg("%s", errstr);
	out = assay_test_read_topic(r.out, "read_committed", 2, 1000, 90000, &nout);
	deadline = assay_test_now_ms() + 30000;
	while (assay_test_now_ms() < deadline &&
	       assay_test_http_get(port, "/readyz", body, sizeof(body)) != 200)
		usleep(200 * 1000);
	assert_int_equal(assay_test_http_get(port, "/readyz", body, sizeof(body)), 200);
	assert_int_equal(assay_test_http_get(port, "/healthz", body, sizeof(body)), 200);
	assert_string_equal(body, "ok\n");
	assay_http_stop(http);
	rig_stop(&r);
	assert_int_equal(nout, 2);
	assert_string_equal(out[0].value, "out:msg-0");
	assert_string_equal(out[1].value, "out:msg-1");
	assay_test_records_free(out, nout);
	assay_test_pg_drop_db(r.url);
}

/* Another consumer joins the loop's group with the loop's group.instance.id: the broker
 * fences the loop's consumer (a fatal consumer error in librdkafka, as after a session lost
 * while the broker was away). The loop makes a new consumer and goes on, exactly once. */
static void test_fenced_static_member_comes_back(void **state)
{
	struct rig r;
	long rows, distinct;
	int64_t deadline;

	(void)state;
	rig_init(&r, "fenced_member", NULL, NULL, NULL);
	rig_start(&r);
	for (int i = 0; i < 20; i++) {
		char v[16];

		snprintf(v, sizeof(v), "msg-%d", i);
		send_one(r.in, "k", v, strlen(v), NULL, NULL);
	}
	assay_test_pg_wait(r.url, "SELECT count(*) FROM loop_rows", 20, 60000);
	{
		const char *conf[] = {
		        "group.id", r.service, "group.instance.id", "one", "session.timeout.ms",
		        "6000",     NULL};
		rd_kafka_t *twin = assay_test_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, NULL);
		rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_t *assigned = NULL;

		rd_kafka_topic_partition_list_add(topics, r.in, RD_KAFKA_PARTITION_UA);
		assert_int_equal(rd_kafka_subscribe(twin, topics), 0);
		deadline = assay_test_now_ms() + 30000;
		while (assay_test_now_ms() < deadline) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(twin, 100);

			if (m)
				rd_kafka_message_destroy(m);
			if (rd_kafka_assignment(twin, &assigned) == 0 && assigned->cnt > 0)
				break;
			rd_kafka_topic_partition_list_destroy(assigned);
			assigned = NULL;
		}
		assert_non_null(assigned);
		rd_kafka_topic_partition_list_destroy(assigned);
		rd_kafka_topic_partition_list_destroy(topics);
		rd_kafka_consumer_close(twin);
		rd_kafka_destroy(twin);
	}
	for (int i = 20; i < 40; i++) {
		char v[16];

		snprintf(v, sizeof(v), "msg-%d", i);
		send_one(r.in, "k", v, strlen(v), NULL, NULL);
	}
	assay_test_pg_wait(r.url, "SELECT count(*) FROM loop_rows", 40, 90000);
	assert_int_equal(r.t.rc, 0); /* the loop did not give up */
	rig_stop(&r);
	assay_test_loop_counts(r.url, &rows, &distinct);
	assert_int_equal(rows, 40);
	assert_int_equal(distinct, 40);
	assay_test_pg_drop_db(r.url);
}

/* Two static members share a two-partition topic with a 45 s session timeout. The first
 * stops and starts again with the same instance id (a rolling restart): it has its partition
 * back within seconds and the other member's assignment never moved (no rebalance). */
static void test_restart_keeps_assignment(void **state)
{
	struct rig a, b;
	int64_t t0, deadline;
	long rows, distinct;
	int settled;

	(void)state;
	rig_init(&a, "rolling", NULL, NULL, NULL);
	assay_test_kafka_topic(a.in, sizeof(a.in), "out-in2", 2);
	b = a;
	a.instance = "a";
	b.instance = "b";
	a.session_ms = b.session_ms = 45000;
	rig_start(&a);
	deadline = assay_test_now_ms() + 30000;
	while (assay_loop_assigned(a.t.loop) < 2 && assay_test_now_ms() < deadline)
		usleep(50 * 1000);
	assert_int_equal(assay_loop_assigned(a.t.loop), 2);
	rig_start(&b);
	deadline = assay_test_now_ms() + 60000;
	while ((assay_loop_assigned(a.t.loop) != 1 || assay_loop_assigned(b.t.loop) != 1) &&
	       assay_test_now_ms() < deadline)
		usleep(50 * 1000);
	assert_int_equal(assay_loop_assigned(b.t.loop), 1);
	usleep(2000 * 1000); /* let the group settle before counting b's assignments */
	settled = b.h.assignments;

	t0 = assay_test_now_ms();
	rig_stop(&a);
	rig_start(&a);
	while (assay_loop_assigned(a.t.loop) < 1 && assay_test_now_ms() - t0 < 60000)
		usleep(50 * 1000);
	print_message("the restarted member had its partition %lld ms after the stop\n",
	              (long long)(assay_test_now_ms() - t0));
	assert_int_equal(assay_loop_assigned(a.t.loop), 1);
	assert_true(assay_test_now_ms() - t0 < 10000);
	assert_int_equal(assay_loop_assigned(b.t.loop), 1);
	assert_int_equal(b.h.assignments, settled); /* no rebalance reached it */
	for (int i = 0; i < 10; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k-%d", i);
		send_one(a.in, key, "msg", 3, NULL, NULL);
	}
	assay_test_pg_wait(a.url, "SELECT count(*) FROM loop_rows", 10, 60000);
	rig_stop(&a);
	rig_stop(&b);
	assay_test_loop_counts(a.url, &rows, &distinct);
	assert_int_equal(rows, 10);
	assay_test_pg_drop_db(a.url);
}

/* assay-plan with the given instance id and metrics port, stderr into fd. */
static pid_t spawn_plan(const char *url, const char *commands, const char *events, const char *dlq,
                        const char *group, const char *instance, int port, int fd)
{
	char v[7][700];
	const char *vars[] = {v[0],
	                      v[1],
	                      v[2],
	                      v[3],
	                      v[4],
	                      v[5],
	                      v[6],
	                      "ASSAY_SESSION_TIMEOUT_MS=45000",
	                      "ASSAY_TOPICS_PARTITIONS=2",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      NULL};

	snprintf(v[0], sizeof(v[0]), "ASSAY_PG_URL=%s", url);
	snprintf(v[1], sizeof(v[1]), "ASSAY_TOPIC_AUDIT_COMMANDS=%s", commands);
	snprintf(v[2], sizeof(v[2]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", events);
	snprintf(v[3], sizeof(v[3]), "ASSAY_DEADLETTER_TOPIC=%s", dlq);
	snprintf(v[4], sizeof(v[4]), "ASSAY_GROUP_ID=%s", group);
	snprintf(v[5], sizeof(v[5]), "ASSAY_INSTANCE_ID=%s", instance);
	snprintf(v[6], sizeof(v[6]), "ASSAY_METRICS_PORT=%d", port);
	return assay_test_service_start("assay-plan", NULL, vars, NULL, fd);
}

static bool wait_ready(int port, int timeout_ms)
{
	int64_t deadline = assay_test_now_ms() + timeout_ms;
	char body[256];

	while (assay_test_now_ms() < deadline) {
		if (assay_test_http_get(port, "/readyz", body, sizeof(body)) == 200)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

/*
 * Static membership: assay-plan with a 45 s session timeout is killed and started again
 * with the same instance id; it takes its partitions back and applies a new message within
 * a few seconds. That message is an empty value: it is dead-lettered as an empty value (not
 * NULL), and the dead-letter log line names its event_id, trace_id and where it went.
 */
static void test_restart_resumes_quickly(void **state)
{
	char url[512], commands[160], events[160], dlq[160], group[128], instance[128];
	char logpath[] = "/tmp/assay-test-outputs-XXXXXX", line[4096];
	struct assay_test_record *dl;
	size_t ndl = 0;
	int port = assay_test_free_port(), fd;
	int64_t t0, resumed_ms = -1;
	bool logged = false;
	FILE *fp;
	pid_t pid;

	(void)state;
	assay_test_pg_fresh_db(url, sizeof(url), "test_outputs_restart");
	assay_test_kafka_topic(commands, sizeof(commands), "out-cmd", 2);
	assay_test_kafka_topic(events, sizeof(events), "out-evt", 2);
	assay_test_kafka_topic(dlq, sizeof(dlq), "out-dlq", 1);
	assay_test_unique(group, sizeof(group), "outputs-plan");
	assay_test_unique(instance, sizeof(instance), "plan-a");
	fd = mkstemp(logpath);
	assert_true(fd >= 0);

	pid = spawn_plan(url, commands, events, dlq, group, instance, port, fd);
	assert_true(wait_ready(port, 60000));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	t0 = assay_test_now_ms();
	pid = spawn_plan(url, commands, events, dlq, group, instance, port, fd);
	send_one(commands, "client-1", "", 0, "ev-empty", "trace-empty");
	while (assay_test_now_ms() - t0 < 40000) {
		if (assay_test_metric(port, "assay_consumed_total") >= 1) {
			resumed_ms = assay_test_now_ms() - t0;
			break;
		}
		usleep(50 * 1000);
	}
	print_message("restarted instance applied its first message after %lld ms\n",
	              (long long)resumed_ms);
	assert_true(resumed_ms >= 0);
	assert_true(resumed_ms < 15000); /* far below the 45 s session timeout */

	dl = assay_test_read_topic(dlq, "read_committed", 1, 500, 30000, &ndl);
	assert_int_equal(ndl, 1);
	assert_false(dl[0].value_null);
	assert_int_equal(dl[0].value_len, 0);
	assay_test_records_free(dl, ndl);
	assert_int_equal(assay_test_service_stop(pid), 0);

	fp = fopen(logpath, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp))
		if (strstr(line, "message dead-lettered") &&
		    strstr(line, "\"event_id\":\"ev-empty\"") &&
		    strstr(line, "\"trace_id\":\"trace-empty\"") && strstr(line, dlq))
			logged = true;
	fclose(fp);
	close(fd);
	unlink(logpath);
	assert_true(logged);
	assay_test_pg_drop_db(url);
}

/* assay-intake on its own database and topics. */
struct intake_rig {
	char url[512], submitted[160], audits[160], accepted[160], rejected[160], dlq[160];
	char instance[128];
	pid_t pid;
};

static void intake_start(struct intake_rig *r)
{
	char v[7][700];
	const char *vars[] = {v[0],
	                      v[1],
	                      v[2],
	                      v[3],
	                      v[4],
	                      v[5],
	                      v[6],
	                      "ASSAY_METRICS_PORT=0",
	                      "ASSAY_TOPICS_PARTITIONS=1",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_LOG_LEVEL=warn",
	                      NULL};

	snprintf(v[0], sizeof(v[0]), "ASSAY_PG_URL=%s", r->url);
	snprintf(v[1], sizeof(v[1]), "ASSAY_TOPIC_EVIDENCE_SUBMITTED=%s", r->submitted);
	snprintf(v[2], sizeof(v[2]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", r->audits);
	snprintf(v[3], sizeof(v[3]), "ASSAY_TOPIC_EVIDENCE_ACCEPTED=%s", r->accepted);
	snprintf(v[4], sizeof(v[4]), "ASSAY_TOPIC_EVIDENCE_REJECTED=%s", r->rejected);
	snprintf(v[5], sizeof(v[5]), "ASSAY_INSTANCE_ID=%s", r->instance);
	snprintf(v[6], sizeof(v[6]), "ASSAY_DEADLETTER_TOPIC=%s", r->dlq);
	r->pid = assay_test_service_start("assay-intake", NULL, vars, NULL, -1);
}

/* An EvidenceSubmitted for audit-0 whose uri has uri_len bytes (framed; caller frees). */
static void *evidence_with_uri(struct assay_codec *codec, const char *id, size_t uri_len,
                               size_t *len)
{
	static const char *const controls[] = {"ISO27001:A.8.15"};
	struct assay_test_evidence_spec spec;
	char sha[65], *uri = malloc(uri_len + 1);
	void *buf;

	assert_non_null(uri);
	memset(uri, 'u', uri_len);
	memcpy(uri, "https://", 8);
	uri[uri_len] = '\0';
	assay_test_evidence_spec_init(&spec, "cb-gen", "audit-0", "client-0", id, sha);
	spec.controls = controls;
	spec.ncontrols = 1;
	spec.uri = uri;
	assay_test_evidence_encode(codec, &spec, &buf, len);
	free(uri);
	return buf;
}

/*
 * The case that once stopped assay-intake for good: a well-formed EvidenceSubmitted with a
 * 1,000,000-byte uri is rejected (STRING_TOO_LONG) and its EvidenceRejected, original bytes
 * included, is published; one of 1,047,900 bytes (just under the input topic's limit), whose
 * rejection could not hold it, is parked and the rejection carries its first bytes, size,
 * hash and where it is. Accepted evidence around them is published.
 */
static void test_intake_rejection_of_large_submission(void **state)
{
	struct intake_rig r;
	struct assay_test_evidence_config gc;
	struct assay_test_evidence *g;
	struct assay_codec *codec;
	struct assay_test_record *acc, *rej;
	size_t nacc = 0, nrej = 0, mid_len = 0, big_len = 0, len;
	void *good, *mid, *big;
	char sha[ASSAY_SHA256_HEX_LEN], text[700];

	(void)state;
	memset(&r, 0, sizeof(r));
	assay_test_pg_fresh_db(r.url, sizeof(r.url), "test_outputs_intake");
	assay_test_pg_migrate(r.url);
	topic_with_limit(r.submitted, sizeof(r.submitted), "out-sub", NULL);
	topic_with_limit(r.audits, sizeof(r.audits), "out-aud", NULL);
	topic_with_limit(r.accepted, sizeof(r.accepted), "out-acc", NULL);
	topic_with_limit(r.rejected, sizeof(r.rejected), "out-rej", NULL);
	topic_with_limit(r.dlq, sizeof(r.dlq), "out-dlq", NULL);
	assay_test_unique(r.instance, sizeof(r.instance), "intake");
	memset(&gc, 0, sizeof(gc));
	gc.pg_url = r.url;
	gc.audit_topic = r.audits;
	gc.evidence_topic = r.submitted;
	gc.clients = 1;
	gc.audits = 1;
	g = assay_test_evidence_new(&gc);
	codec = assay_test_evidence_codec(g);
	assay_test_evidence_audits(g);
	intake_start(&r);

	good = evidence_with_uri(codec, "ev-good-1", 40, &len);
	assay_test_evidence_send(g, r.submitted, "audit-0", good, len);
	free(good);
	mid = evidence_with_uri(codec, "ev-mid", 1000000, &mid_len);
	send_one(r.submitted, "audit-0", mid, mid_len, NULL, NULL);
	big = evidence_with_uri(codec, "ev-big", 1047716, &big_len);
	assert_true(big_len > 1047800 && big_len < 1048300);
	send_one(r.submitted, "audit-0", big, big_len, NULL, NULL);
	good = evidence_with_uri(codec, "ev-good-2", 40, &len);
	assay_test_evidence_send(g, r.submitted, "audit-0", good, len);
	free(good);

	acc = assay_test_read_topic(r.accepted, "read_committed", 2, 1000, 90000, &nacc);
	rej = assay_test_read_topic(r.rejected, "read_committed", 2, 1000, 90000, &nrej);
	assert_int_equal(assay_test_service_stop(r.pid), 0);
	assert_int_equal(nacc, 2);
	assert_int_equal(nrej, 2);
	for (size_t i = 0; i < nrej; i++) {
		struct assay_decoded d;
		const char *reason, *parked_in = NULL, *sha_in = NULL;
		const void *orig;
		size_t orig_len;
		int64_t size = -1;
		char errstr[256];

		assert_int_equal(assay_codec_decode(codec, rej[i].value, rej[i].value_len, &d,
		                                    errstr, sizeof(errstr)),
		                 0);
		assert_int_equal(assay_value_enum(&d.value, "reason", &reason), 0);
		assert_string_equal(reason, "STRING_TOO_LONG");
		assert_int_equal(assay_value_bytes(&d.value, "original_value", &orig, &orig_len),
		                 0);
		assay_value_opt_string(&d.value, "original_parked", &parked_in, NULL);
		assay_value_opt_string(&d.value, "original_sha256", &sha_in, NULL);
		assay_value_long_or(&d.value, "original_size", -1, &size);
		if (i == 0) { /* 1,000,000-byte uri: whole */
			assert_int_equal(orig_len, mid_len);
			assert_memory_equal(orig, mid, mid_len);
			assert_null(parked_in);
		} else { /* too large to travel: parked */
			assert_int_equal(orig_len, 1024);
			assert_memory_equal(orig, big, 1024);
			assert_non_null(parked_in);
			assert_non_null(strstr(parked_in, "seq=-1"));
			assert_int_equal(size, (int64_t)big_len);
			assay_sha256_hex(big, big_len, sha);
			assert_string_equal(sha_in, sha);
		}
		assay_decoded_release(&d);
	}
	snprintf(text, sizeof(text),
	         "SELECT count(*) FROM assay_parked_values WHERE seq = -1 AND value_size = %zu "
	         "AND value_sha256 = '%s' AND octet_length(value) = %zu",
	         big_len, sha, big_len);
	assert_int_equal(assay_test_pg_scalar(r.url, text), 1);
	assay_test_records_free(acc, nacc);
	assay_test_records_free(rej, nrej);
	free(mid);
	free(big);
	assay_test_evidence_destroy(g);
	assay_test_pg_drop_db(r.url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_deadletter_just_under_and_over,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_deadletter_raised_limit,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_event_too_large_for_topic,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_broker_refuses_event, assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_health_when_relay_cannot_publish,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_restart_resumes_quickly,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_fenced_static_member_comes_back,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_restart_keeps_assignment,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_intake_rejection_of_large_submission,
	                                  assay_test_service_teardown),
	};

	if (getenv("ASSAY_TEST_FILTER")) /* one test by name, while working on it */
		cmocka_set_test_filter(getenv("ASSAY_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
