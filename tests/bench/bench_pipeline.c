/*
 * The evidence pipeline end to end: the REAL executables assay-intake, assay-mapper and
 * assay-risk (from this build's bin/) on the local stack, one fresh database and fresh topics
 * per run. Audits are set up by producing AuditOpened and SoaSubmitted directly to the audit
 * events topic (tests/support/assay_test_evidence.h), then generated EvidenceSubmitted
 * events go in.
 *
 * Run 1 (throughput): `events` evidence events as fast as the generator produces them;
 * events/s = events / (time from the first submission until assay-risk has applied the
 * ControlMapped of every one of them), read from the services' /metrics counters.
 *
 * Run 2 (latency): after a 5 s warm-up at the same rate (not measured: the new producers'
 * and groups' first transactions take about a second), evidence at a fixed 10,000 events/s
 * (min(events, 300,000) of them), with probes beside it: 50/s evidence items, each the first
 * evidence of one control of a probe audit, so each changes that control's score; latency = the
 * moment the RiskScored carrying that control (direct_links > 0) is read (read_committed) minus the
 * moment the EvidenceSubmitted was produced. p99 over the probes.
 *
 * Peak RSS: VmHWM of each service at the end of each run; CPU seconds per service and the
 * loop's batch/relay time sums are printed to show where the time goes.
 *
 *   bench_pipeline [events]       (default 1000000)
 * Last line: BENCH pipeline events_per_s=... p99_ms_at_10k=... rss_mb_max=...
 */
#include "assay_test.h"
#include "assay_test_evidence.h"
#include "assay_test_kafka.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"
#include "assay_codec.h"
#include "assay_pg.h"
#include "assay_registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AUDITS        100
#define PROBE_AUDITS  20
#define PROBE_RATE    50
#define NSVC          3
#define WARMUP_EVENTS 50000 /* latency run: 5 s at 10,000/s before measuring */

static const char *const svc_names[NSVC] = {"intake", "mapper", "risk"};

struct svc {
	pid_t pid;
	int port;
	long hwm_kb;
	double cpu_s;
	double batch_s, relay_s, batches;
};

struct run {
	char url[512];
	char t_audit[128], t_submitted[128], t_accepted[128], t_rejected[128], t_mapped[128];
	char t_scored[128], t_dlq[128];
	struct svc svc[NSVC];
	struct assay_test_evidence *gen;
	long audit_events; /* on the audit topic, read by all three */
	/* probes */
	struct assay_codec *probe_codec;
	struct assay_registry *probe_reg;
	char **ctl_ids; /* 27001 Annex A ids applicable in every SoA */
	size_t nctl;
	int64_t *probe_sent, *probe_recv;
	long nprobes, probes_sent;
	long warmup; /* evidence events sent before the measured ones */
	volatile int producing, reading;
};

static pid_t spawn(struct run *r, int i, long batch_max)
{
	char v[10][640];
	/* settings of the bench run itself that go through to the services */
	static const char *const inherit[] = {"ASSAY_RELAY_", "ASSAY_BATCH_MAX_MS=", "ASSAY_RISK_",
	                                      NULL};
	const char *vars[] = {v[0],
	                      v[1],
	                      v[2],
	                      v[3],
	                      v[4],
	                      v[5],
	                      v[6],
	                      v[7],
	                      v[8],
	                      v[9],
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_TOPICS_PARTITIONS=4",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};
	char bin[64];

	snprintf(bin, sizeof(bin), "assay-%s", svc_names[i]);
	snprintf(v[0], sizeof(v[0]), "ASSAY_PG_URL=%s", r->url);
	snprintf(v[1], sizeof(v[0]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", r->t_audit);
	snprintf(v[2], sizeof(v[0]), "ASSAY_TOPIC_EVIDENCE_SUBMITTED=%s", r->t_submitted);
	snprintf(v[3], sizeof(v[0]), "ASSAY_TOPIC_EVIDENCE_ACCEPTED=%s", r->t_accepted);
	snprintf(v[4], sizeof(v[0]), "ASSAY_TOPIC_EVIDENCE_REJECTED=%s", r->t_rejected);
	snprintf(v[5], sizeof(v[0]), "ASSAY_TOPIC_CONTROL_MAPPED=%s", r->t_mapped);
	snprintf(v[6], sizeof(v[0]), "ASSAY_TOPIC_RISK_SCORED=%s", r->t_scored);
	snprintf(v[7], sizeof(v[0]), "ASSAY_DEADLETTER_TOPIC=%s", r->t_dlq);
	snprintf(v[8], sizeof(v[0]), "ASSAY_METRICS_PORT=%d", r->svc[i].port);
	snprintf(v[9], sizeof(v[0]), "ASSAY_BATCH_MAX_MESSAGES=%ld", batch_max);
	return assay_test_service_start(bin, NULL, vars, inherit, -1);
}

static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	p = strrchr(buf, ')');
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
	 * stime (fields 3..15) */
	if (p == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* consumed (messages applied) and produced (events published) of service i */
static double consumed(struct run *r, int i)
{
	return assay_test_metric(r->svc[i].port, "assay_consumed_total");
}

static double produced(struct run *r, int i)
{
	return assay_test_metric(r->svc[i].port, "assay_produced_total");
}

/* Waits until every service has applied want_in evidence events end to end (intake consumed
 * them, mapper consumed what intake published, risk consumed what mapper published, each
 * with the relays caught up). Returns the time it first held, or -1 after timeout_ms. */
static int64_t wait_done(struct run *r, long want_in, int timeout_ms)
{
	int64_t deadline = assay_test_wall_ms() + timeout_ms, last_log = 0;

	while (assay_test_wall_ms() < deadline) {
		double ic = consumed(r, 0), ip = produced(r, 0), mc = consumed(r, 1),
		       mp = produced(r, 1), rc = consumed(r, 2);
		double a = (double)r->audit_events;

		if (ic - a == want_in && ip == ic - a && mc - a == ip && mp == mc - a &&
		    rc - a == mp)
			return assay_test_wall_ms();
		if (assay_test_wall_ms() - last_log > 5000) {
			fprintf(stderr,
			        "  waiting: intake %.0f/%.0f mapper %.0f/%.0f risk %.0f (of %ld)\n",
			        ic - a, ip, mc - a, mp, rc - a, want_in);
			last_log = assay_test_wall_ms();
		}
		usleep(100000);
	}
	return -1;
}

static void load_controls(struct run *r)
{
	char errstr[512];
	PGconn *conn = NULL;
	PGresult *res = NULL;

	if (assay_pg_connect(r->url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_query(conn,
	                   "SELECT id FROM assay_catalog_controls WHERE standard = 'ISO27001_2022' "
	                   "AND annex_a",
	                   0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("catalog: %s", errstr);
	r->nctl = (size_t)PQntuples(res);
	r->ctl_ids = calloc(r->nctl, sizeof(*r->ctl_ids));
	for (size_t i = 0; i < r->nctl; i++)
		r->ctl_ids[i] = strdup(PQgetvalue(res, (int)i, 0));
	PQclear(res);
	PQfinish(conn);
}

/* The probe audits: opened over both standards, every Annex A control applicable. */
static void probe_audits(struct run *r)
{
	static const char *const stds[] = {"ISO27001_2022", "ISO42001_2023"};
	char errstr[512], audit[32];
	PGconn *conn = NULL;
	PGresult *res = NULL;

	r->probe_reg = assay_registry_pg_new(r->url, errstr, sizeof(errstr));
	r->probe_codec = assay_codec_new(r->probe_reg, 0, errstr, sizeof(errstr));
	if (r->probe_codec == NULL ||
	    assay_codec_register_embedded(r->probe_codec, errstr, sizeof(errstr)))
		fail_msg("probe codec: %s", errstr);
	if (assay_pg_connect(r->url, &conn, errstr, sizeof(errstr)))
		fail_msg("connect: %s", errstr);
	for (int k = 0; k < PROBE_AUDITS; k++) {
		void *buf;
		size_t len;

		snprintf(audit, sizeof(audit), "probe-%d", k);
		assay_test_audit_opened_encode(r->probe_codec, "cb-gen", audit, "client-probe",
		                               stds, 2, &buf, &len);
		assay_test_evidence_send(r->gen, r->t_audit, audit, buf, len);
		free(buf);
		for (int s = 0; s < 2; s++) {
			char sql[160];
			const char **ids;
			bool *app;
			int n;

			snprintf(sql, sizeof(sql),
			         "SELECT id FROM assay_catalog_controls WHERE standard = '%s' AND "
			         "annex_a",
			         stds[s]);
			if (assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)))
				fail_msg("catalog: %s", errstr);
			n = PQntuples(res);
			ids = calloc((size_t)n, sizeof(*ids));
			app = calloc((size_t)n, sizeof(*app));
			for (int i = 0; i < n; i++) {
				ids[i] = PQgetvalue(res, i, 0);
				app[i] = true;
			}
			assay_test_soa_encode(r->probe_codec, "cb-gen", audit, "client-probe",
			                      stds[s], 1, ids, app, (size_t)n, &buf, &len);
			assay_test_evidence_send(r->gen, r->t_audit, audit, buf, len);
			free(buf);
			free(ids);
			free(app);
			PQclear(res);
		}
	}
	PQfinish(conn);
	r->audit_events += PROBE_AUDITS * 3;
	r->nprobes = (long)(PROBE_AUDITS * r->nctl);
	r->probe_sent = calloc((size_t)r->nprobes, sizeof(*r->probe_sent));
	r->probe_recv = calloc((size_t)r->nprobes, sizeof(*r->probe_recv));
}

/* Sends probes at PROBE_RATE while the main thread produces. */
static void *probe_thread(void *arg)
{
	struct run *r = arg;
	static const char *const conf[] = {"linger.ms", "0", NULL};
	rd_kafka_t *rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, NULL, NULL);
	int64_t t0 = assay_test_wall_ms();

	for (long i = 0; i < r->nprobes && r->producing; i++) {
		struct assay_test_evidence_spec s;
		char audit[32], evidence[48], sha[65], ref[64];
		const char *controls[1];
		int64_t due = t0 + i * 1000 / PROBE_RATE, now;
		void *buf;
		size_t len;

		while ((now = assay_test_wall_ms()) < due && r->producing) {
			rd_kafka_poll(rk, 0);
			usleep(2000);
		}
		snprintf(audit, sizeof(audit), "probe-%ld", i / (long)r->nctl);
		snprintf(evidence, sizeof(evidence), "probe-ev-%ld", i);
		snprintf(ref, sizeof(ref), "ISO27001:%s", r->ctl_ids[i % (long)r->nctl]);
		assay_test_evidence_spec_init(&s, "cb-gen", audit, "client-probe", evidence, sha);
		controls[0] = ref;
		s.controls = controls;
		s.ncontrols = 1;
		s.source_system = "probe";
		assay_test_evidence_encode(r->probe_codec, &s, &buf, &len);
		r->probe_sent[i] = assay_test_wall_ms();
		if (rd_kafka_producev(
		            rk, RD_KAFKA_V_TOPIC(r->t_submitted),
		            RD_KAFKA_V_KEY(audit, strlen(audit)), RD_KAFKA_V_VALUE(buf, len),
		            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) != 0)
			fail_msg("probe produce failed");
		free(buf);
		r->probes_sent = i + 1;
	}
	rd_kafka_flush(rk, 30000);
	rd_kafka_destroy(rk);
	return NULL;
}

/* Reads RiskScored and stamps the first score of each probed control. */
static void *reader_thread(void *arg)
{
	struct run *r = arg;
	char errstr[512];
	struct assay_registry *reg = assay_registry_pg_new(r->url, errstr, sizeof(errstr));
	struct assay_codec *codec = reg ? assay_codec_new(reg, 0, errstr, sizeof(errstr)) : NULL;
	rd_kafka_t *rk;

	if (codec == NULL || assay_codec_register_embedded(codec, errstr, sizeof(errstr)))
		fail_msg("reader codec: %s", errstr);
	rk = assay_test_kafka_reader(r->t_scored, "read_committed");
	while (r->reading) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		int64_t now = assay_test_wall_ms();
		struct assay_decoded d;
		const char *audit;

		if (m == NULL)
			continue;
		if (m->err == 0 && m->key_len > 6 && memcmp(m->key, "probe-", 6) == 0 &&
		    assay_codec_decode(codec, m->payload, m->len, &d, errstr, sizeof(errstr)) ==
		            0) {
			avro_value_t arr, el;
			size_t n;
			const char *std;

			if (assay_value_string(&d.value, "audit_id", &audit, NULL) == 0 &&
			    assay_value_enum(&d.value, "standard", &std) == 0 &&
			    strcmp(std, "ISO27001_2022") == 0 &&
			    assay_value_array(&d.value, "controls", &arr, &n) == 0) {
				long k = strtol(audit + 6, NULL, 10);

				for (size_t i = 0; i < n; i++) {
					const char *cid;
					int32_t direct = 0;

					if (assay_value_array_get(&arr, i, &el) ||
					    assay_value_string(&el, "control_id", &cid, NULL) ||
					    assay_value_int(&el, "direct_links", &direct) ||
					    direct < 1)
						continue;
					for (size_t c = 0; c < r->nctl; c++)
						if (strcmp(r->ctl_ids[c], cid) == 0) {
							long p = k * (long)r->nctl + (long)c;

							if (p < r->nprobes && r->probe_recv[p] == 0)
								r->probe_recv[p] = now;
							break;
						}
				}
			}
			assay_decoded_release(&d);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	assay_codec_destroy(codec);
	assay_registry_destroy(reg);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* One run: returns events/s; *p99 (latency run) and max RSS. */
static double run(long events, double rate, bool latency, double *p99_ms, double *rss_mb)
{
	struct run r;
	struct assay_test_evidence_config gc;
	pthread_t probe_tid, reader_tid;
	int64_t t0, t_done;
	double eps;

	memset(&r, 0, sizeof(r));
	assay_test_pg_fresh_db(r.url, sizeof(r.url), "bench_pipeline");
	assay_test_pg_migrate(r.url);
	assay_test_kafka_topic(r.t_audit, sizeof(r.t_audit), "bp-audit", 4);
	assay_test_kafka_topic(r.t_submitted, sizeof(r.t_submitted), "bp-submitted", 4);
	assay_test_unique(r.t_accepted, sizeof(r.t_accepted), "bp-accepted");
	assay_test_unique(r.t_rejected, sizeof(r.t_rejected), "bp-rejected");
	assay_test_unique(r.t_mapped, sizeof(r.t_mapped), "bp-mapped");
	assay_test_unique(r.t_scored, sizeof(r.t_scored), "bp-scored");
	assay_test_unique(r.t_dlq, sizeof(r.t_dlq), "bp-dlq");
	memset(&gc, 0, sizeof(gc));
	gc.pg_url = r.url;
	gc.audit_topic = r.t_audit;
	gc.evidence_topic = r.t_submitted;
	gc.clients = 20;
	gc.audits = AUDITS;
	gc.invalid_share = 0;
	gc.rate = rate;
	r.gen = assay_test_evidence_new(&gc);
	assay_test_evidence_audits(r.gen);
	r.audit_events = AUDITS * 3;
	if (latency) {
		load_controls(&r);
		probe_audits(&r);
	}
	for (int i = 0; i < NSVC; i++) {
		r.svc[i].port = assay_test_free_port();
		r.svc[i].pid = spawn(&r, i, 1000);
	}
	/* ready: every service has applied the audit events */
	for (int i = 0; i < NSVC; i++) {
		int64_t deadline = assay_test_wall_ms() + 120000;

		while (consumed(&r, i) < (double)r.audit_events && assay_test_wall_ms() < deadline)
			usleep(100000);
		if (consumed(&r, i) < (double)r.audit_events)
			fail_msg("assay-%s did not start (or apply the audit events)",
			         svc_names[i]);
	}
	if (latency) {
		/* warm-up at the same rate, not measured: the first Kafka transactions of the
		 * new producers and groups (coordinator look-ups) and the first fetches */
		int64_t w0 = assay_test_wall_ms();

		assay_test_evidence_produce(r.gen, 0, WARMUP_EVENTS, NULL);
		if (wait_done(&r, WARMUP_EVENTS, 120000) < 0)
			fail_msg("the pipeline did not take the warm-up events");
		fprintf(stderr, "warm-up: %d evidence events at 10,000/s, through in %.1f s\n",
		        WARMUP_EVENTS, (double)(assay_test_wall_ms() - w0) / 1000.0);
		r.warmup = WARMUP_EVENTS;
	}
	fprintf(stderr, "%s run: %ld evidence events%s\n", latency ? "latency" : "throughput",
	        events, latency ? " at 10,000/s with probes" : " as fast as produced");
	if (latency) {
		r.producing = 1;
		r.reading = 1;
		pthread_create(&reader_tid, NULL, reader_thread, &r);
		pthread_create(&probe_tid, NULL, probe_thread, &r);
	}
	t0 = assay_test_wall_ms();
	assay_test_evidence_produce(r.gen, r.warmup, events, NULL);
	fprintf(stderr, "  produced in %.1f s\n", (double)(assay_test_wall_ms() - t0) / 1000.0);
	if (latency) {
		r.producing = 0;
		pthread_join(probe_tid, NULL);
	}
	t_done = wait_done(&r, r.warmup + events + r.probes_sent, 1800000);
	if (t_done < 0)
		fail_msg("the pipeline did not finish within 30 minutes");
	eps = (double)events * 1000.0 / (double)(t_done - t0);
	if (latency) {
		int64_t deadline = assay_test_wall_ms() + 10000, *lat;
		long got = 0;

		/* the last scores may still be on their way through the relay */
		for (;;) {
			got = 0;
			for (long i = 0; i < r.probes_sent; i++)
				got += r.probe_recv[i] != 0;
			if (got == r.probes_sent || assay_test_wall_ms() > deadline)
				break;
			usleep(100000);
		}
		r.reading = 0;
		pthread_join(reader_tid, NULL);
		lat = calloc((size_t)got + 1, sizeof(*lat));
		got = 0;
		for (long i = 0; i < r.probes_sent; i++)
			if (r.probe_recv[i])
				lat[got++] = r.probe_recv[i] - r.probe_sent[i];
		qsort(lat, (size_t)got, sizeof(*lat), cmp_i64);
		*p99_ms = got ? (double)lat[(size_t)((double)(got - 1) * 0.99)] : -1;
		fprintf(stderr,
		        "  probes: %ld sent, %ld scored; latency ms p50 %lld p90 %lld p99 %lld max "
		        "%lld\n",
		        r.probes_sent, got, got ? (long long)lat[(got - 1) / 2] : -1,
		        got ? (long long)lat[(size_t)((double)(got - 1) * 0.9)] : -1,
		        got ? (long long)lat[(size_t)((double)(got - 1) * 0.99)] : -1,
		        got ? (long long)lat[got - 1] : -1);
		/* the same per 5 s of sending time: whether the tail is a start-up effect or comes
		 * back during the run */
		for (int64_t w = 0;; w++) {
			int64_t from = t0 + w * 5000, to = from + 5000;
			long n = 0;

			if (from > t_done)
				break;
			for (long i = 0; i < r.probes_sent; i++)
				if (r.probe_recv[i] && r.probe_sent[i] >= from &&
				    r.probe_sent[i] < to)
					lat[n++] = r.probe_recv[i] - r.probe_sent[i];
			if (n == 0)
				continue;
			qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
			fprintf(stderr,
			        "    sent %3lld-%3lld s: %4ld probes, p50 %lld p99 %lld ms\n",
			        (long long)(w * 5), (long long)(w * 5 + 5), n,
			        (long long)lat[(n - 1) / 2],
			        (long long)lat[(size_t)((double)(n - 1) * 0.99)]);
		}
		free(lat);
	}
	*rss_mb = 0;
	for (int i = 0; i < NSVC; i++) {
		struct svc *s = &r.svc[i];

		s->hwm_kb = assay_test_peak_rss_kb(s->pid);
		s->cpu_s = cpu_seconds(s->pid);
		s->batch_s = assay_test_metric(s->port, "assay_batch_seconds_sum");
		s->batches = assay_test_metric(s->port, "assay_batch_seconds_count");
		s->relay_s = assay_test_metric(s->port, "assay_relay_seconds_sum");
		if (s->hwm_kb / 1024.0 > *rss_mb)
			*rss_mb = s->hwm_kb / 1024.0;
		fprintf(stderr,
		        "  assay-%-6s rss_peak %.1f MB, cpu %.1f s, %.0f batches (%.0f "
		        "msgs/batch), "
		        "apply in PostgreSQL %.1f s, relay %.1f s\n",
		        svc_names[i], s->hwm_kb / 1024.0, s->cpu_s, s->batches,
		        s->batches > 0 ? consumed(&r, i) / s->batches : 0, s->batch_s, s->relay_s);
	}
	fprintf(stderr, "  %.0f events/s end to end (%.1f s)\n", eps,
	        (double)(t_done - t0) / 1000.0);
	for (int i = 0; i < NSVC; i++)
		assay_test_service_stop(r.svc[i].pid);
	assay_test_evidence_destroy(r.gen);
	assay_codec_destroy(r.probe_codec);
	assay_registry_destroy(r.probe_reg);
	for (size_t i = 0; i < r.nctl; i++)
		free(r.ctl_ids[i]);
	free(r.ctl_ids);
	free(r.probe_sent);
	free(r.probe_recv);
	assay_test_pg_drop_db(r.url);
	return eps;
}

int main(int argc, char **argv)
{
	long events = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
	long lat_events;
	double eps, p99 = -1, rss1 = 0, rss2 = 0, unused;

	if (events < 1000)
		events = 1000;
	lat_events = events < 300000 ? events : 300000;
	/* a failed check (fail_msg) outside a cmocka test ends the process non-zero */
	eps = run(events, 0, false, &unused, &rss1);
	run(lat_events, 10000, true, &p99, &rss2);
	fflush(stderr);
	printf("BENCH pipeline events_per_s=%.0f p99_ms_at_10k=%.0f rss_mb_max=%.1f events=%ld\n",
	       eps, p99, rss1 > rss2 ? rss1 : rss2, events);
	return 0;
}
