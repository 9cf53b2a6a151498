/*
 * Messages per second through the batch loop (consume, apply in PostgreSQL with the outbox
 * and offsets, relay in a Kafka transaction) with 1,000-message batches, next to a plain
 * COPY of the same rows (the handler's row and the outbox row of each message) into tables
 * of the same shape in the same run.
 *
 *   bench_core_loop [messages]      (default 200000, after 20000 warm-up messages)
 * Last line: BENCH core_loop msgs_per_s=... copy_rows_per_s=... ratio=...
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_test_loop.h"
#include "assay_test_pg.h"

#include "assay_loop_int.h" /* the outbox row format, for the plain COPY baseline */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WARMUP 20000

static volatile sig_atomic_t stop;

/*
 * Plain COPY of the rows the loop writes for n messages, 1,000 messages per transaction:
 * per message one handler row and one outbox row (the same columns and bytes), no Kafka, no
 * offsets. Returns messages per second.
 */
static double copy_same_rows_per_s(const char *url, const char *out_topic, long n)
{
	struct assay_copybuf rows;
	struct assay_copybin outbox;
	char errstr[512], value[64], key[32], event[64];
	PGconn *conn = NULL;
	int64_t t0;

	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_exec(conn,
	                  "CREATE TABLE copy_rows (LIKE loop_rows INCLUDING ALL);"
	                  "CREATE TABLE copy_outbox (LIKE assay_outbox INCLUDING ALL)",
	                  errstr, sizeof(errstr)))
		fail_msg("%s", errstr);
	assay_copybuf_init(&rows);
	assay_copybin_init(&outbox);
	t0 = assay_test_now_ms();
	for (long first = 0; first < n; first += 1000) {
		assay_copybuf_reset(&rows);
		assay_copybin_reset(&outbox);
		for (long i = first; i < first + 1000 && i < n; i++) {
			snprintf(key, sizeof(key), "k-%ld", i);
			snprintf(value, sizeof(value), "msg-%ld", i);
			assay_copybuf_str(&rows, "bench-topic");
			assay_copybuf_int64(&rows, i % 4);
			assay_copybuf_int64(&rows, i / 4);
			assay_copybuf_str(&rows, key);
			assay_copybuf_str(&rows, value);
			assay_copybuf_str(&rows, "copy");
			assay_copybuf_end_row(&rows);
		}
		/* the events as the loop writes them: one outbox row per partition */
		for (int p = 0; p < 4; p++) {
			long end = first + 1000 < n ? first + 1000 : n;
			size_t at;

			assay_copybin_row(&outbox, 4);
			assay_copybin_int32(&outbox, p);
			assay_copybin_int64(&outbox, first / 4);
			assay_copybin_int64(&outbox, (end + 3) / 4);
			at = assay_copybin_bytes_open(&outbox);
			for (long i = first + p; i < end; i += 4) {
				struct out_event ev = {
				        .topic = (char *)out_topic, .key = key, .value = event};

				ev.key_len = (size_t)snprintf(key, sizeof(key), "k-%ld", i);
				ev.value_len =
				        (size_t)snprintf(event, sizeof(event), "out:msg-%ld", i);
				assay_outbox_put(&outbox, i / 4, &ev, NULL, 0);
			}
			assay_copybin_bytes_close(&outbox, at);
		}
		if (assay_pg_exec(conn, "BEGIN", errstr, sizeof(errstr)) ||
		    assay_pg_copy(conn,
		                  "COPY copy_rows (topic, partition, \"offset\", key, value, "
		                  "instance) FROM STDIN",
		                  &rows, errstr, sizeof(errstr)) ||
		    assay_pg_copy_binary(
		            conn,
		            "COPY copy_outbox (stream, first_offset, next_offset, events) "
		            "FROM STDIN (FORMAT binary)",
		            &outbox, errstr, sizeof(errstr)) ||
		    assay_pg_exec(conn, "COMMIT", errstr, sizeof(errstr)))
			fail_msg("%s", errstr);
	}
	t0 = assay_test_now_ms() - t0;
	assay_copybuf_release(&rows);
	assay_copybin_release(&outbox);
	PQfinish(conn);
	return (double)n * 1000.0 / (double)(t0 ? t0 : 1);
}

static void bench(void **state)
{
	long n = *(long *)*state;
	char url[512], in[128], out[128], dlq[128], service[128];
	const char *topics[1];
	struct assay_loop_config cfg;
	struct assay_test_copy_handler h;
	struct assay_handler handler;
	struct assay_metrics *m = assay_metrics_new("bench");
	struct assay_counter *produced;
	struct assay_test_loop_thread r;
	int64_t t0, t1;
	double loop_rate, copy_rate;

	assay_test_pg_fresh_db(url, sizeof(url), "bench_core_loop");
	assay_test_loop_schema(url);
	assay_test_kafka_topic(in, sizeof(in), "bench-in", 4);
	assay_test_kafka_topic(out, sizeof(out), "bench-out", 4);
	assay_test_kafka_topic(dlq, sizeof(dlq), "bench-dlq", 1);
	assay_test_unique(service, sizeof(service), "bench-svc");
	/* a warm-up share first: the measured part is the steady state, not the first
	 * transaction's coordinator look-ups */
	assay_test_produce(in, 0, (int)(WARMUP + n), NULL, NULL);

	topics[0] = in;
	assay_test_copy_handler_init(&h, "loop", out);
	handler = assay_test_copy_handler(&h);
	assay_test_loop_config(&cfg, service, "bench", url, topics, dlq, &stop);
	cfg.metrics = m;
	produced = assay_metrics_counter(m, "assay_produced_total", "", NULL);
	assay_test_loop_thread_start(&r, &cfg, &handler);
	assay_test_loop_thread_wait(&r, produced, WARMUP);
	t0 = assay_test_now_ms();
	assay_test_loop_thread_wait(&r, produced, (uint64_t)(WARMUP + n));
	t1 = assay_test_now_ms();
	stop = 1;
	assert_int_equal(assay_test_loop_thread_join(&r), 0);
	assay_test_copy_handler_release(&h);
	{
		char *text;
		size_t len;

		if (assay_metrics_render(m, &text, &len) == 0) {
			fprintf(stderr, "%s", text); /* where the time went: batch and relay sums */
			free(text);
		}
	}
	assay_metrics_destroy(m);
	loop_rate = (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1);

	copy_rate = copy_same_rows_per_s(url, out, n);
	assay_test_pg_drop_db(url);
	printf("loop: %ld messages applied and relayed in %.2f s\n", n, (t1 - t0) / 1000.0);
	printf("plain COPY of the same rows (handler row + outbox row per message): %.0f msgs/s\n",
	       copy_rate);
	printf("BENCH core_loop msgs_per_s=%.0f copy_rows_per_s=%.0f ratio=%.2f batch=1000 "
	       "messages=%ld\n",
	       loop_rate, copy_rate, loop_rate / copy_rate, n);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
	void *state = &n;

	/* run directly, not under cmocka's runner, so the BENCH line is the last one */
	bench(&state);
	return 0;
}
