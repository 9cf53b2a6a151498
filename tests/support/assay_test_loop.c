/*
 * The copy handler and helpers shared by the loop tests and the loop benchmarks
 * (see assay_test_loop.h).
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_test_loop.h"
#include "assay_embed.h"
#include "assay_kafka.h"
#include "assay_migrate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void assay_test_copy_handler_init(struct assay_test_copy_handler *h, const char *instance,
                                  const char *out_topic)
{
	h->instance = instance;
	h->out_topic = out_topic;
	assay_copybuf_init(&h->rows);
}

void assay_test_copy_handler_release(struct assay_test_copy_handler *h)
{
	assay_copybuf_release(&h->rows);
}

static int copy_handle(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size)
{
	struct assay_test_copy_handler *h = ctx;

	assay_copybuf_reset(&h->rows);
	for (size_t i = 0; i < assay_batch_count(batch); i++) {
		struct assay_msg *m = assay_batch_msg(batch, i);
		char *out;
		int n, err;

		if (m->dead)
			continue;
		if (m->value_len >= 6 && memcmp(m->value, "poison", 6) == 0) {
			err = assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, "poison message");
			if (err)
				return err;
			continue;
		}
		out = malloc(m->value_len + 5);
		if (out == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		memcpy(out, "out:", 4);
		if (m->value_len)
			memcpy(out + 4, m->value, m->value_len);
		n = (int)m->value_len + 4;
		err = assay_batch_emit(batch, i, h->out_topic, m->key, m->key_len, out, (size_t)n,
		                       NULL);
		free(out);
		if (err)
			return assay_errf(err, errstr, errstr_size, "emit failed");
		assay_copybuf_str(&h->rows, m->topic);
		assay_copybuf_int64(&h->rows, m->partition);
		assay_copybuf_int64(&h->rows, m->offset);
		assay_copybuf_text(&h->rows, m->key, m->key_len);
		assay_copybuf_text(&h->rows, m->value, m->value_len);
		assay_copybuf_str(&h->rows, h->instance);
		assay_copybuf_end_row(&h->rows);
	}
	return 0;
}

static int copy_write(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr,
                      size_t errstr_size)
{
	struct assay_test_copy_handler *h = ctx;

	if (assay_copybuf_rows(&h->rows) == 0)
		return 0;
	return assay_pg_copy(conn,
	                     "COPY loop_rows (topic, partition, \"offset\", key, value, instance) "
	                     "FROM STDIN",
	                     &h->rows, errstr, errstr_size);
}

static int copy_assigned(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *parts,
                         char *errstr, size_t errstr_size)
{
	struct assay_test_copy_handler *h = ctx;

	h->assignments++;
	h->partitions = parts->cnt;
	return 0;
}

struct assay_handler assay_test_copy_handler(struct assay_test_copy_handler *h)
{
	struct assay_handler handler = {
	        .stage = "loop-test",
	        .decode = false,
	        .handle = copy_handle,
	        .write = copy_write,
	        .assigned = copy_assigned,
	        .ctx = h,
	};
	return handler;
}

void assay_test_loop_schema(const char *url)
{
	char errstr[512];
	PGconn *conn = NULL;

	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)))
		fail_msg("connect: %s", errstr);
	if (assay_migrate(conn, assay_embedded_migrations, errstr, sizeof(errstr)))
		fail_msg("migrate: %s", errstr);
	if (assay_pg_exec(conn,
	                  "CREATE TABLE loop_rows (topic text NOT NULL, partition int NOT NULL, "
	                  "\"offset\" bigint NOT NULL, key text, value text NOT NULL "
	                  "CHECK (value <> 'dbreject'), instance text NOT NULL)",
	                  errstr, sizeof(errstr)))
		fail_msg("create loop_rows: %s", errstr);
	PQfinish(conn);
}

void assay_test_loop_config(struct assay_loop_config *cfg, const char *service,
                            const char *instance, const char *pg_url, const char **topic,
                            const char *deadletter_topic, const volatile sig_atomic_t *stop)
{
	static const char *const props[] = {
	        "consumer.session.timeout.ms",        "6000",
	        "consumer.heartbeat.interval.ms",     "500",
	        "topic.metadata.refresh.interval.ms", "2000",
	};

	assay_loop_config_init(cfg, NULL); /* the settings table's defaults */
	cfg->service = service;
	cfg->instance_id = instance;
	cfg->brokers = assay_test_brokers();
	cfg->pg_url = pg_url;
	cfg->topics = topic;
	cfg->ntopics = 1;
	if (deadletter_topic != NULL)
		cfg->deadletter_topic = deadletter_topic;
	/* tighter than production: tests see retries and expiry sooner */
	cfg->transaction_timeout_ms = 10000;
	cfg->retry_backoff_ms = 50;
	cfg->retry_backoff_max_ms = 1000;
	cfg->kafka_props = props;
	cfg->nkafka_props = sizeof(props) / sizeof(props[0]) / 2;
	cfg->stop = stop;
}

static bool listed(const int *list, int i)
{
	for (; list && *list >= 0; list++)
		if (*list == i)
			return true;
	return false;
}

static void count_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	int *failed = opaque;

	if (msg->err)
		(*failed)++;
}

void assay_test_produce(const char *topic, int first, int n, const int *poison, const int *dbreject)
{
	static const char *const conf[] = {"enable.idempotence", "true", "linger.ms", "5", NULL};
	int failed = 0;
	rd_kafka_t *rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, &failed, count_delivery);

	for (int i = first; i < first + n; i++) {
		char key[32], value[32];
		rd_kafka_resp_err_t err;

		snprintf(key, sizeof(key), "k-%d", i);
		if (listed(poison, i))
			snprintf(value, sizeof(value), "poison");
		else if (listed(dbreject, i))
			snprintf(value, sizeof(value), "dbreject");
		else
			snprintf(value, sizeof(value), "msg-%d", i);
		do {
			err = rd_kafka_producev(
			        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
			        RD_KAFKA_V_VALUE(value, strlen(value)),
			        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(rk, 50);
		} while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
		assert_int_equal(err, 0);
	}
	assert_int_equal(rd_kafka_flush(rk, 30000), 0);
	assert_int_equal(failed, 0);
	rd_kafka_destroy(rk);
}

void assay_test_loop_counts(const char *url, long *rows, long *distinct)
{
	char errstr[512];
	PGconn *conn = NULL;
	PGresult *res = NULL;

	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)))
		fail_msg("connect: %s", errstr);
	if (assay_pg_query(conn,
	                   "SELECT count(*), count(DISTINCT (topic, partition, \"offset\")) "
	                   "FROM loop_rows",
	                   0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("count: %s", errstr);
	*rows = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	*distinct = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	PQfinish(conn);
}

static void *loop_thread_main(void *arg)
{
	struct assay_test_loop_thread *t = arg;

	t->rc = assay_loop_run(t->loop, t->errstr, sizeof(t->errstr));
	return NULL;
}

void assay_test_loop_thread_start(struct assay_test_loop_thread *t,
                                  const struct assay_loop_config *cfg,
                                  const struct assay_handler *handler)
{
	memset(t, 0, sizeof(*t));
	t->loop = assay_loop_new(cfg, handler, t->errstr, sizeof(t->errstr));
	if (t->loop == NULL)
		fail_msg("loop: %s", t->errstr);
	assert_int_equal(pthread_create(&t->thread, NULL, loop_thread_main, t), 0);
}

void assay_test_loop_thread_wait(const struct assay_test_loop_thread *t,
                                 const struct assay_counter *counter, uint64_t want)
{
	while (assay_counter_value(counter) < want && t->rc == 0)
		usleep(1000);
}

int assay_test_loop_thread_join(struct assay_test_loop_thread *t)
{
	pthread_join(t->thread, NULL);
	assay_loop_destroy(t->loop);
	t->loop = NULL;
	return t->rc;
}
