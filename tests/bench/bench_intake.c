/*
 * Evidence events per second through assay-intake (the real executable of this build, on the
 * local stack), its submission-to-acceptance latency, its peak resident memory, and a plain
 * COPY of the same rows in the same run.
 *
 *   bench_intake [events]      (default 1000000, after 20000 warm-up events)
 *
 * 1. Throughput: 1,000 audits (100 clients, SoAs from the catalog) are applied, the service is
 *    stopped, warm-up + N evidence events (1 % invalid: rejected) are produced, the service is
 *    started again (its state loaded from the database) and the time from the warm-up's end to
 *    the last event published (assay_produced_total on /metrics) gives events/s.
 * 2. Latency: evidence at 10,000/s (N/10, at least 2,000, at most 50,000 events); latency =
 *    the moment a read_committed consumer in this process receives the EvidenceAccepted minus
 *    the submitted record's timestamp (set by the producer when it hands the record over).
 * 3. Peak RSS: VmHWM of the service process after both phases.
 * 4. Plain COPY: the rows the service stored (intake_evidence, streamed back out) plus one
 *    outbox row per event (the bytes of a real EvidenceAccepted) COPY'd into tables of the
 *    same shape, 1,000 events per transaction; only COPY and COMMIT are timed.
 * BENCH_INTAKE_WRAP="valgrind --tool=callgrind" runs the service under that command (profiling).
 * Last line: BENCH intake events_per_s=... copy_rows_per_s=... ratio=... p99_ms=... rss_mb=...
 */
#include "assay_test.h"
#include "assay_test_evidence.h"
#include "assay_test_kafka.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"

#include "assay_kafka.h"
#include "assay_loop_int.h" /* the outbox row format, for the plain COPY baseline */
#include "assay_pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WARMUP     20000
#define AUDITS     1000
#define CLIENTS    100
#define PARTITIONS 4
#define LAT_RATE   10000.0

/* The whole /metrics text into stderr (where the time went). */
static void dump_metrics(int port)
{
	size_t size = 1 << 20;
	char *body = malloc(size);

	assert_non_null(body);
	if (assay_test_http_get(port, "/metrics", body, size) == 200)
		fputs(body, stderr);
	free(body);
}

struct svc {
	char url[512], submitted[128], audits[128], accepted[128], rejected[128], instance[128];
	int port;
	pid_t pid;
};

static void svc_start(struct svc *s)
{
	/* settings of the bench run itself that go through to the service */
	static const char *const inherit[] = {"ASSAY_KAFKA_PROPERTIES=", "ASSAY_BATCH_",
	                                      "ASSAY_RELAY_", NULL};
	const char *wrap = getenv("BENCH_INTAKE_WRAP"); /* e.g. a valgrind command */
	char v[7][700], cmd[1024];
	const char *vars[] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], "ASSAY_LOG_LEVEL=warn",
	                      NULL};
	const char *sh[] = {"sh", "-c", cmd, NULL};

	snprintf(v[0], sizeof(v[0]), "ASSAY_PG_URL=%s", s->url);
	snprintf(v[1], sizeof(v[1]), "ASSAY_TOPIC_EVIDENCE_SUBMITTED=%s", s->submitted);
	snprintf(v[2], sizeof(v[2]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", s->audits);
	snprintf(v[3], sizeof(v[3]), "ASSAY_TOPIC_EVIDENCE_ACCEPTED=%s", s->accepted);
	snprintf(v[4], sizeof(v[4]), "ASSAY_TOPIC_EVIDENCE_REJECTED=%s", s->rejected);
	snprintf(v[5], sizeof(v[5]), "ASSAY_INSTANCE_ID=%s", s->instance);
	snprintf(v[6], sizeof(v[6]), "ASSAY_METRICS_PORT=%d", s->port);
	if (wrap && *wrap) {
		snprintf(cmd, sizeof(cmd), "exec %s %s", wrap,
		         ASSAY_BINARY_DIR "/bin/assay-intake");
		s->pid = assay_test_service_start("/bin/sh", sh, vars, inherit, -1);
	} else {
		s->pid = assay_test_service_start("assay-intake", NULL, vars, inherit, -1);
	}
}

static void svc_stop(struct svc *s)
{
	assert_int_equal(assay_test_service_stop(s->pid), 0);
	s->pid = -1;
}

static void wait_metric(struct svc *s, const char *name, double want, int timeout_s)
{
	int64_t deadline = assay_test_wall_ms() + (int64_t)timeout_s * 1000;
	double v;

	while ((v = assay_test_metric(s->port, name)) < want && assay_test_wall_ms() < deadline)
		usleep(50 * 1000);
	if (v < want)
		fail_msg("%s: %.0f, expected %.0f", name, v, want);
}

/* ---- latency reader ---- */

struct reader {
	const char *topic;
	long first, count;   /* evidence numbers measured */
	const int64_t *sent; /* their record timestamps */
	double *lat;         /* latencies of the accepted ones */
	long nlat, want;
	volatile int stop;
	void *sample; /* one EvidenceAccepted value, for the COPY baseline */
	size_t sample_len;
	rd_kafka_topic_partition_list_t *from;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	const char *conf[] = {"group.id",
	                      "bench-intake-latency",
	                      "isolation.level",
	                      "read_committed",
	                      "enable.auto.commit",
	                      "false",
	                      NULL};
	rd_kafka_t *rk = assay_test_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, NULL);

	assert_int_equal(rd_kafka_assign(rk, r->from), 0);
	while (!r->stop && r->nlat < r->want) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		rd_kafka_headers_t *h;
		const void *v;
		size_t len;

		if (m == NULL)
			continue;
		if (m->err == 0 && rd_kafka_message_headers(m, &h) == 0 &&
		    rd_kafka_header_get_last(h, "trace_id", &v, &len) == 0 && len > 4 &&
		    memcmp(v, "gen-", 4) == 0) {
			char num[32];
			long seq;

			snprintf(num, sizeof(num), "%.*s", (int)(len - 4), (const char *)v + 4);
			seq = strtol(num, NULL, 10);
			if (seq >= r->first && seq < r->first + r->count) {
				r->lat[r->nlat++] =
				        (double)(assay_test_wall_ms() - r->sent[seq - r->first]);
				if (r->sample == NULL && (r->sample = malloc(m->len)) != NULL) {
					memcpy(r->sample, m->payload, m->len);
					r->sample_len = m->len;
				}
			}
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ---- plain COPY of the same rows ---- */

static double copy_same_rows_per_s(const char *url, const void *sample, size_t sample_len,
                                   const char *topic, long *rows_out)
{
	static const char *cols =
	        "tenant_id, evidence_id, sha256, audit_id, client_id, "
	        "submitted_event_id, source_system, kind, collected_at, "
	        "size_bytes, uri, controls, attributes, src_topic, src_partition, "
	        "src_offset";
	struct assay_copybin outbox;
	struct out_event ev = {.topic = (char *)topic, .key = "audit-0", .key_len = 7};
	char errstr[512], sql[1024];
	size_t at = 0;
	PGconn *out = NULL, *in = NULL;
	PGresult *res;
	char *chunk = NULL, *line;
	size_t clen = 0, ccap = 0;
	long rows = 0, in_chunk = 0;
	double timed = 0;
	int n;
	bool done = false;

	if (assay_pg_connect(url, &out, errstr, sizeof(errstr)) ||
	    assay_pg_connect(url, &in, errstr, sizeof(errstr)) ||
	    assay_pg_exec(in,
	                  "CREATE TABLE copy_evidence (LIKE intake_evidence INCLUDING ALL);"
	                  "CREATE TABLE copy_outbox (LIKE assay_outbox INCLUDING ALL)",
	                  errstr, sizeof(errstr)))
		fail_msg("%s", errstr);
	snprintf(sql, sizeof(sql), "COPY (SELECT %s FROM intake_evidence) TO STDOUT", cols);
	res = PQexec(out, sql);
	assert_int_equal(PQresultStatus(res), PGRES_COPY_OUT);
	PQclear(res);
	assay_copybin_init(&outbox);
	ev.value = (void *)sample;
	ev.value_len = sample_len;
	while (!done) {
		n = PQgetCopyData(out, &line, 0);
		if (n > 0) {
			if (clen + (size_t)n > ccap) {
				ccap = (clen + (size_t)n) * 2;
				chunk = realloc(chunk, ccap);
				assert_non_null(chunk);
			}
			memcpy(chunk + clen, line, (size_t)n);
			clen += (size_t)n;
			PQfreemem(line);
			/* the event as the service writes it into the chunk's outbox row */
			if (in_chunk == 0) {
				assay_copybin_reset(&outbox);
				assay_copybin_row(&outbox, 4);
				assay_copybin_int32(&outbox, 1);
				assay_copybin_int64(&outbox, rows);
				assay_copybin_int64(&outbox, rows + 1000);
				at = assay_copybin_bytes_open(&outbox);
			}
			assay_outbox_put(&outbox, rows, &ev, "\0\0\0\0", 4);
			in_chunk++;
			rows++;
		} else {
			done = true;
		}
		if (in_chunk == 1000 || (done && in_chunk > 0)) {
			int64_t t0 = assay_test_now_ms();
			PGresult *r;

			snprintf(sql, sizeof(sql), "COPY copy_evidence (%s) FROM STDIN", cols);
			if (assay_pg_exec(in, "BEGIN", errstr, sizeof(errstr)))
				fail_msg("%s", errstr);
			r = PQexec(in, sql);
			assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
			PQclear(r);
			assert_int_equal(PQputCopyData(in, chunk, (int)clen), 1);
			assert_int_equal(PQputCopyEnd(in, NULL), 1);
			r = PQgetResult(in);
			if (PQresultStatus(r) != PGRES_COMMAND_OK)
				fail_msg("copy: %s", PQerrorMessage(in));
			PQclear(r);
			while ((r = PQgetResult(in)) != NULL)
				PQclear(r);
			assay_copybin_bytes_close(&outbox, at);
			if (assay_pg_copy_binary(
			            in,
			            "COPY copy_outbox (stream, first_offset, next_offset, events) "
			            "FROM STDIN (FORMAT binary)",
			            &outbox, errstr, sizeof(errstr)) ||
			    assay_pg_exec(in, "COMMIT", errstr, sizeof(errstr)))
				fail_msg("%s", errstr);
			timed += (double)(assay_test_now_ms() - t0);
			clen = 0;
			in_chunk = 0;
		}
	}
	while ((res = PQgetResult(out)) != NULL)
		PQclear(res);
	assay_copybin_release(&outbox);
	free(chunk);
	PQfinish(out);
	PQfinish(in);
	*rows_out = rows;
	return (double)rows * 1000.0 / (timed > 0 ? timed : 1);
}

static void bench(long n)
{
	struct svc s = {0};
	struct assay_test_evidence_config gc = {0};
	struct assay_test_evidence *g;
	struct reader r = {0};
	pthread_t thread;
	int64_t t0, t1, tp0, tp1;
	long invalid, lat_n = n / 10, copy_rows = 0;
	double rate, copy_rate, p50 = 0, p99 = 0, rss;
	int64_t *sent;

	if (lat_n < 2000)
		lat_n = 2000;
	if (lat_n > 50000)
		lat_n = 50000;
	assay_test_pg_fresh_db(s.url, sizeof(s.url), "bench_intake");
	assay_test_pg_migrate(s.url);
	assay_test_kafka_topic(s.submitted, sizeof(s.submitted), "bench-evidence", PARTITIONS);
	assay_test_kafka_topic(s.audits, sizeof(s.audits), "bench-audits", PARTITIONS);
	assay_test_kafka_topic(s.accepted, sizeof(s.accepted), "bench-accepted", PARTITIONS);
	assay_test_kafka_topic(s.rejected, sizeof(s.rejected), "bench-rejected", PARTITIONS);
	assay_test_unique(s.instance, sizeof(s.instance), "bench");
	s.port = assay_test_free_port();
	gc.pg_url = s.url;
	gc.audit_topic = s.audits;
	gc.evidence_topic = s.submitted;
	gc.tenant_id = "cb-bench";
	gc.clients = CLIENTS;
	gc.audits = AUDITS;
	gc.invalid_share = 0.01;
	g = assay_test_evidence_new(&gc);

	/* audits in, service stopped, evidence produced, service started */
	svc_start(&s);
	assay_test_evidence_audits(g);
	wait_metric(&s, "assay_intake_audits", AUDITS, 120);
	svc_stop(&s);
	tp0 = assay_test_now_ms();
	invalid = assay_test_evidence_produce(g, 0, WARMUP + n, NULL);
	tp1 = assay_test_now_ms();
	fprintf(stderr, "produced %ld evidence events (%ld invalid) in %.1f s\n", WARMUP + n,
	        invalid, (double)(tp1 - tp0) / 1000.0);
	svc_start(&s);
	wait_metric(&s, "assay_produced_total", WARMUP, 300);
	t0 = assay_test_now_ms();
	wait_metric(&s, "assay_produced_total", (double)(WARMUP + n), 3600);
	t1 = assay_test_now_ms();
	rate = (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1);
	fprintf(stderr, "throughput: %ld events in %.2f s: %.0f events/s; accepted %.0f\n", n,
	        (double)(t1 - t0) / 1000.0, rate,
	        assay_test_metric(s.port, "assay_intake_accepted_total"));
	dump_metrics(s.port);

	/* latency at a steady rate */
	{
		rd_kafka_t *rk;
		const char *conf[] = {"group.id", "bench-intake-wm", NULL};
		struct assay_test_evidence_config lc = gc;
		struct assay_test_evidence *lg;

		r.from = rd_kafka_topic_partition_list_new(PARTITIONS);
		rk = assay_test_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, NULL);
		for (int p = 0; p < PARTITIONS; p++) {
			int64_t lo, hi;

			assert_int_equal(rd_kafka_query_watermark_offsets(rk, s.accepted, p, &lo,
			                                                  &hi, 10000),
			                 0);
			rd_kafka_topic_partition_list_add(r.from, s.accepted, p)->offset = hi;
		}
		rd_kafka_destroy(rk);
		lc.invalid_share = 0;
		lc.rate = LAT_RATE;
		lg = assay_test_evidence_new(&lc);
		sent = calloc((size_t)lat_n, sizeof(*sent));
		r.lat = calloc((size_t)lat_n, sizeof(*r.lat));
		assert_non_null(sent);
		assert_non_null(r.lat);
		r.first = 10000000;
		r.count = lat_n;
		r.sent = sent;
		r.want = lat_n;
		r.topic = s.accepted;
		assert_int_equal(pthread_create(&thread, NULL, reader_main, &r), 0);
		usleep(500 * 1000); /* the reader's assignment */
		assay_test_evidence_produce(lg, r.first, lat_n, sent);
		{
			int64_t deadline = assay_test_wall_ms() + 60000;

			while (r.nlat < r.want && assay_test_wall_ms() < deadline)
				usleep(50 * 1000);
		}
		r.stop = 1;
		pthread_join(thread, NULL);
		rd_kafka_topic_partition_list_destroy(r.from);
		assay_test_evidence_destroy(lg);
		if (r.nlat < lat_n)
			fail_msg("latency: %ld of %ld accepted events seen", r.nlat, lat_n);
		qsort(r.lat, (size_t)r.nlat, sizeof(double), cmp_double);
		p50 = r.lat[r.nlat / 2];
		p99 = r.lat[(r.nlat * 99) / 100];
	}
	rss = (double)assay_test_peak_rss_kb(s.pid) / 1024.0;
	svc_stop(&s);
	assay_test_evidence_destroy(g);

	copy_rate = copy_same_rows_per_s(s.url, r.sample, r.sample_len, s.accepted, &copy_rows);
	assay_test_pg_drop_db(s.url);
	printf("intake: %ld events (1%% invalid) in %.2f s after %d warm-up\n", n,
	       (double)(t1 - t0) / 1000.0, WARMUP);
	printf("latency at %.0f events/s (%ld events), record timestamp -> read_committed "
	       "EvidenceAccepted seen: p50 %.0f ms, p99 %.0f ms\n",
	       LAT_RATE, lat_n, p50, p99);
	printf("service peak RSS (VmHWM): %.1f MB\n", rss);
	printf("plain COPY of the rows of %ld events (evidence row + outbox row per event): %.0f "
	       "events/s\n",
	       copy_rows, copy_rate);
	printf("BENCH intake events_per_s=%.0f copy_rows_per_s=%.0f ratio=%.2f p99_ms=%.0f "
	       "rss_mb=%.1f p50_ms=%.0f events=%ld\n",
	       rate, copy_rate, rate / copy_rate, p99, rss, p50, n);
	free(sent);
	free(r.lat);
	free(r.sample);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;

	if (n <= 0) {
		fprintf(stderr, "usage: bench_intake [events]\n");
		return 2;
	}
	/* run directly, not under cmocka's runner, so the BENCH line is the last one */
	bench(n);
	return 0;
}
