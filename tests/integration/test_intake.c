/*
 * assay-intake end to end: the real executable on a fresh database and unique topics. Audit
 * events first (three audits, one SoA missing, one audit closed), then a mixed stream of good,
 * replayed, conflicting, unknown-control, out-of-scope, excluded, no-SoA, future-dated, stale,
 * oversized, bad-hash, wrong-tenant, wrong-client, closed-audit, unknown-audit, too-many-
 * attributes, too-long, empty-field, no-controls, invalid-UTF-8 and undecodable events ends with
 * exactly the expected accepted events, rejected events (reason, ids, controls, stored hash,
 * original bytes), dead letters and rows; evidence for an audit not yet known is accepted when
 * resubmitted after the audit opened. Then the service is restarted (its de-duplication set is
 * rebuilt from the database) and the whole evidence stream is produced again: no new row, no
 * new accepted event, the same rejections once more.
 */
#include "assay_test.h"
#include "assay_test_evidence.h"
#include "assay_test_kafka.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"

#include "assay_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TENANT "cb-1"

/* The environment of one service run. */
struct env {
	char url[512], submitted[128], audits[128], accepted[128], rejected[128], dlq[128];
	char instance[128];
	char v[7][700];
};

static pid_t spawn_intake(struct env *e)
{
	const char *vars[] = {e->v[0],
	                      e->v[1],
	                      e->v[2],
	                      e->v[3],
	                      e->v[4],
	                      e->v[5],
	                      e->v[6],
	                      "ASSAY_METRICS_PORT=0",
	                      "ASSAY_TOPICS_PARTITIONS=2",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_INTAKE_MAX_SIZE_BYTES=1000000",
	                      "ASSAY_INTAKE_MAX_ATTRIBUTES=4",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};

	snprintf(e->v[0], sizeof(e->v[0]), "ASSAY_PG_URL=%s", e->url);
	snprintf(e->v[1], sizeof(e->v[1]), "ASSAY_TOPIC_EVIDENCE_SUBMITTED=%s", e->submitted);
	snprintf(e->v[2], sizeof(e->v[2]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", e->audits);
	snprintf(e->v[3], sizeof(e->v[3]), "ASSAY_TOPIC_EVIDENCE_ACCEPTED=%s", e->accepted);
	snprintf(e->v[4], sizeof(e->v[4]), "ASSAY_TOPIC_EVIDENCE_REJECTED=%s", e->rejected);
	snprintf(e->v[5], sizeof(e->v[5]), "ASSAY_INSTANCE_ID=%s", e->instance);
	snprintf(e->v[6], sizeof(e->v[6]), "ASSAY_DEADLETTER_TOPIC=%s", e->dlq);
	return assay_test_service_start("assay-intake", NULL, vars, NULL, -1);
}

static void query_text(const char *url, const char *sql, char *out, size_t size)
{
	char errstr[512];
	PGconn *conn;
	PGresult *res;

	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("%s", errstr);
	snprintf(out, size, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	PQfinish(conn);
}

/* Every evidence message sent, for the replay. */
struct sent {
	char key[64];
	void *value;
	size_t len;
};

struct stream {
	struct assay_test_evidence *g;
	const char *topic;
	struct sent msgs[64];
	size_t n;
};

static void send_raw(struct stream *s, const char *key, void *value, size_t len)
{
	assert_true(s->n < 64);
	snprintf(s->msgs[s->n].key, sizeof(s->msgs[s->n].key), "%s", key);
	s->msgs[s->n].value = value; /* taken over */
	s->msgs[s->n].len = len;
	s->n++;
	assay_test_evidence_send(s->g, s->topic, key, value, len);
}

static void send_spec(struct stream *s, const struct assay_test_evidence_spec *spec)
{
	void *buf;
	size_t len;

	assay_test_evidence_encode(assay_test_evidence_codec(s->g), spec, &buf, &len);
	send_raw(s, spec->audit_id, buf, len);
}

static void send_audit_event(struct assay_test_evidence *g, const char *topic, const char *key,
                             void *buf, size_t len)
{
	assay_test_evidence_send(g, topic, key, buf, len);
	free(buf);
}

/* A decoded EvidenceRejected / EvidenceAccepted of interest. */
struct outcome {
	char evidence_id[64];
	char reason[32];
	char stored[80];
	char controls[256];
	bool ids_null;
	bool value_matches; /* original_value equals a message we sent */
};

static void decode_outcomes(struct assay_codec *codec, struct assay_test_record *recs, size_t n,
                            struct stream *s, struct outcome *out)
{
	for (size_t i = 0; i < n; i++) {
		struct assay_decoded d;
		char errstr[512];
		const char *str = NULL;
		const void *bytes;
		size_t len = 0, nctl = 0;
		avro_value_t arr, elem;

		memset(&out[i], 0, sizeof(out[i]));
		if (assay_codec_decode(codec, recs[i].value, recs[i].value_len, &d, errstr,
		                       sizeof(errstr)))
			fail_msg("decode output: %s", errstr);
		assert_int_equal(assay_value_opt_string(&d.value, "evidence_id", &str, NULL), 0);
		out[i].ids_null = str == NULL;
		snprintf(out[i].evidence_id, sizeof(out[i].evidence_id), "%s", str ? str : "");
		if (strcmp(d.schema->full_name, "org.assay.v1.EvidenceRejected") == 0) {
			assert_int_equal(assay_value_enum(&d.value, "reason", &str), 0);
			snprintf(out[i].reason, sizeof(out[i].reason), "%s", str);
			assert_int_equal(
			        assay_value_opt_string(&d.value, "stored_sha256", &str, NULL), 0);
			snprintf(out[i].stored, sizeof(out[i].stored), "%s", str ? str : "");
			assert_int_equal(assay_value_array(&d.value, "controls", &arr, &nctl), 0);
			for (size_t k = 0; k < nctl; k++) {
				assert_int_equal(assay_value_array_get(&arr, k, &elem), 0);
				assert_int_equal(assay_value_as_string(&elem, &str, NULL), 0);
				snprintf(out[i].controls + strlen(out[i].controls),
				         sizeof(out[i].controls) - strlen(out[i].controls), "%s%s",
				         k ? "," : "", str);
			}
			assert_int_equal(
			        assay_value_bytes(&d.value, "original_value", &bytes, &len), 0);
			for (size_t k = 0; k < s->n; k++)
				if (s->msgs[k].len == len &&
				    memcmp(s->msgs[k].value, bytes, len) == 0)
					out[i].value_matches = true;
		} else {
			/* accepted: resolved controls "STANDARD:ID" */
			assert_int_equal(
			        assay_value_array(&d.value, "claimed_controls", &arr, &nctl), 0);
			for (size_t k = 0; k < nctl; k++) {
				const char *std, *id;

				assert_int_equal(assay_value_array_get(&arr, k, &elem), 0);
				assert_int_equal(assay_value_enum(&elem, "standard", &std), 0);
				assert_int_equal(assay_value_string(&elem, "control_id", &id, NULL),
				                 0);
				snprintf(out[i].controls + strlen(out[i].controls),
				         sizeof(out[i].controls) - strlen(out[i].controls),
				         "%s%s:%s", k ? "," : "", std, id);
			}
		}
		assay_decoded_release(&d);
	}
}

/* How many outcomes have this reason (and, when evidence_id is not NULL, this id). */
static int count_reason(const struct outcome *o, size_t n, const char *reason,
                        const char *evidence_id)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(o[i].reason, reason) == 0 &&
		    (evidence_id == NULL || strcmp(o[i].evidence_id, evidence_id) == 0))
			c++;
	return c;
}

static const struct outcome *find_reason(const struct outcome *o, size_t n, const char *reason)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(o[i].reason, reason) == 0)
			return &o[i];
	return NULL;
}

static size_t count_dlq(const char *dlq, const char *topic)
{
	size_t n = 0, c = 0;
	struct assay_test_record *r =
	        assay_test_read_topic(dlq, "read_committed", 0, 3000, 20000, &n);

	for (size_t i = 0; i < n; i++)
		c += assay_test_header_equals(&r[i], "assay.dlq.topic", topic);
	assay_test_records_free(r, n);
	return c;
}

static const char *const reasons_phase1[] = {
        "HASH_CONFLICT",   "UNKNOWN_CONTROL", "OUT_OF_SCOPE",
        "EXCLUDED_IN_SOA", "NO_SOA",          "FUTURE_DATED",
        "STALE",           "TOO_LARGE",       "BAD_HASH",
        "WRONG_TENANT",    "INVALID_UTF8",    "AUDIT_CLOSED",
        "UNKNOWN_AUDIT",   "WRONG_CLIENT",    "TOO_MANY_ATTRIBUTES",
        "STRING_TOO_LONG", "EMPTY_FIELD",     "NO_CONTROLS",
        "UNKNOWN_AUDIT",
};
#define NREJECTED 19
#define NACCEPTED 5

static void test_intake_mixed_stream_and_replay(void **state)
{
	static const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};
	static const char *const only27[] = {"ISO27001_2022"};
	struct env e;
	struct assay_test_evidence_config gc = {0};
	struct assay_test_evidence *g;
	struct stream s = {0};
	struct assay_test_evidence_spec sp;
	char sha[65], sha_other[65], errstr[512], long_id[2001], text[1024];
	const char *ids27[] = {"A.5.1", "A.5.15", "A.8.15", "A.8.16"};
	const bool app27[] = {false, true, true, true};
	void *buf;
	size_t len, nacc, nrej;
	struct assay_test_record *acc, *rej;
	struct outcome *oacc, *orej;
	pid_t pid;
	PGconn *conn;

	(void)state;
	memset(&e, 0, sizeof(e));
	assay_test_pg_fresh_db(e.url, sizeof(e.url), "test_intake");
	assay_test_pg_migrate(e.url);
	assay_test_unique(e.submitted, sizeof(e.submitted), "intake-submitted");
	assay_test_unique(e.audits, sizeof(e.audits), "intake-audits");
	assay_test_unique(e.accepted, sizeof(e.accepted), "intake-accepted");
	assay_test_unique(e.rejected, sizeof(e.rejected), "intake-rejected");
	assay_test_unique(e.dlq, sizeof(e.dlq), "intake-dlq");
	assay_test_unique(e.instance, sizeof(e.instance), "intake-test");
	gc.pg_url = e.url;
	gc.audit_topic = e.audits;
	gc.evidence_topic = e.submitted;
	g = assay_test_evidence_new(&gc);
	s.g = g;
	s.topic = e.submitted;

	/* the service creates its topics; audits first, applied before any evidence */
	pid = spawn_intake(&e);
	/* assigned (offset rows exist) once its topics exist */
	assay_test_pg_wait(e.url, "SELECT count(*) FROM assay_offsets", 4, 60000);
	assay_test_audit_opened_encode(assay_test_evidence_codec(g), TENANT, "audit-1", "client-1",
	                               both, 2, &buf, &len);
	send_audit_event(g, e.audits, "audit-1", buf, len);
	assay_test_soa_encode(assay_test_evidence_codec(g), TENANT, "audit-1", "client-1",
	                      "ISO27001_2022", 1, ids27, app27, 4, &buf, &len);
	send_audit_event(g, e.audits, "audit-1", buf, len);
	/* audit-2: 27001 only, then completed (closed) */
	assay_test_audit_opened_encode(assay_test_evidence_codec(g), TENANT, "audit-2", "client-2",
	                               only27, 1, &buf, &len);
	send_audit_event(g, e.audits, "audit-2", buf, len);
	assay_test_stage_completed_encode(assay_test_evidence_codec(g), TENANT, "audit-2",
	                                  "client-2", only27, 1, &buf, &len);
	send_audit_event(g, e.audits, "audit-2", buf, len);
	/* audit-3: 27001 only, open, with an SoA */
	assay_test_audit_opened_encode(assay_test_evidence_codec(g), TENANT, "audit-3", "client-3",
	                               only27, 1, &buf, &len);
	send_audit_event(g, e.audits, "audit-3", buf, len);
	assay_test_soa_encode(assay_test_evidence_codec(g), TENANT, "audit-3", "client-3",
	                      "ISO27001_2022", 1, ids27, app27, 4, &buf, &len);
	send_audit_event(g, e.audits, "audit-3", buf, len);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM intake_audits", 3, 60000);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM intake_audits WHERE closed", 1, 60000);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM intake_soa", 2, 60000);

	/* the mixed stream */
	{
		const char *c_good1[] = {"ISO27001:A.8.15", "ISO42001:6.1.4"};
		const char *c_good2[] = {"ISO27001:A.8.16"};
		const char *c_good4[] = {"ISO27001_2022:A.5.15"};
		const char *c_unknown[] = {"ISO27001:A.8.15", "ISO27001:A.99.1"};
		const char *c_42clause[] = {"ISO42001:6.1.4"};
		const char *c_excluded[] = {"ISO27001:A.5.1"};
		const char *c_nosoa[] = {"ISO42001:A.6.2.8"};
		const char *c_clause[] = {"ISO27001:9.1"};
		const char *keys5[] = {"a", "b", "c", "d", "e"},
		           *vals5[] = {"1", "2", "3", "4", "5"};
		const char *keys1[] = {"host"}, *vals1[] = {"db \"1\"\tx"};
		char sha1[65];

#define SPEC(audit, client, id)                                                           \
	do {                                                                              \
		assay_test_evidence_spec_init(&sp, TENANT, (audit), (client), (id), sha); \
		sp.controls = c_good2;                                                    \
		sp.ncontrols = 1;                                                         \
	} while (0)

		SPEC("audit-1", "client-1", "ev-good1");
		sp.controls = c_good1;
		sp.ncontrols = 2;
		sp.attr_keys = keys1;
		sp.attr_values = vals1;
		sp.nattrs = 1;
		memcpy(sha1, sha, sizeof(sha1));
		send_spec(&s, &sp);
		send_spec(&s, &sp); /* replay: another event id, same evidence and hash */
		assay_test_sha256_hex("something else", sha_other);
		sp.sha256 = sha_other;
		send_spec(&s, &sp); /* HASH_CONFLICT */
		SPEC("audit-1", "client-1", "ev-good2");
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-unknown-control");
		sp.controls = c_unknown;
		sp.ncontrols = 2;
		send_spec(&s, &sp);
		SPEC("audit-3", "client-3", "ev-out-of-scope");
		sp.controls = c_42clause;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-excluded");
		sp.controls = c_excluded;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-no-soa");
		sp.controls = c_nosoa;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-future");
		sp.collected_at_ms = (int64_t)time(NULL) * 1000 + 3600 * 1000;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-stale");
		sp.collected_at_ms = (int64_t)time(NULL) * 1000 - 400LL * 86400000;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-oversized");
		sp.size_bytes = 2000000;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-bad-hash");
		sha[3] = 'F';
		send_spec(&s, &sp);
		assay_test_evidence_spec_init(&sp, "cb-2", "audit-1", "client-1", "ev-wrong-tenant",
		                              sha);
		sp.controls = c_good2;
		sp.ncontrols = 1;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-utf8");
		sp.uri = "s3://evidence/UTF8XX";
		assay_test_evidence_encode(assay_test_evidence_codec(g), &sp, &buf, &len);
		{
			char *p = NULL;

			for (size_t k = 0; k + 6 <= len && p == NULL; k++)
				if (memcmp((char *)buf + k, "UTF8XX", 6) == 0)
					p = (char *)buf + k;
			assert_non_null(p);
			memcpy(p, "\xff\xfe\xfd\xfc\xc3\x28", 6);
		}
		send_raw(&s, "audit-1", buf, len);
		SPEC("audit-2", "client-2", "ev-closed");
		send_spec(&s, &sp);
		SPEC("audit-9", "client-1", "ev-unknown-audit");
		send_spec(&s, &sp);
		SPEC("audit-1", "client-2", "ev-wrong-client");
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-many-attributes");
		sp.attr_keys = keys5;
		sp.attr_values = vals5;
		sp.nattrs = 5;
		send_spec(&s, &sp);
		memset(long_id, 'x', sizeof(long_id) - 1);
		long_id[sizeof(long_id) - 1] = '\0';
		SPEC("audit-1", "client-1", long_id);
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-empty-field");
		sp.source_system = "";
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-no-controls");
		sp.ncontrols = 0;
		send_spec(&s, &sp);
		buf = strdup("this is not an avro frame");
		send_raw(&s, "audit-1", buf, strlen(buf)); /* dead letter */
		SPEC("audit-3", "client-3", "ev-good3");
		sp.controls = c_good2;
		sp.attr_keys = keys1;
		sp.attr_values = vals1;
		sp.nattrs = 1;
		send_spec(&s, &sp);
		SPEC("audit-1", "client-1", "ev-good4");
		sp.controls = c_good4;
		send_spec(&s, &sp);
		/* evidence for an audit intake does not know yet: UNKNOWN_AUDIT, then the audit
		 * opens and the producer resubmits the same event: accepted */
		SPEC("audit-4", "client-4", "ev-early");
		sp.controls = c_clause; /* a clause: no SoA needed */
		send_spec(&s, &sp);
	}
	/* every evidence message applied: offsets cover all of them */
	{
		char sql[512];

		snprintf(sql, sizeof(sql),
		         "SELECT sum(next_offset) FROM assay_offsets WHERE topic = '%s'",
		         e.submitted);
		assay_test_pg_wait(e.url, sql, (long)s.n, 60000);
	}
	assay_test_audit_opened_encode(assay_test_evidence_codec(g), TENANT, "audit-4", "client-4",
	                               only27, 1, &buf, &len);
	send_audit_event(g, e.audits, "audit-4", buf, len);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM intake_audits", 4, 60000);
	assay_test_evidence_send(g, e.submitted, "audit-4", s.msgs[s.n - 1].value,
	                         s.msgs[s.n - 1].len);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM intake_evidence", NACCEPTED, 60000);

	/* outcomes */
	acc = assay_test_read_topic(e.accepted, "read_committed", NACCEPTED, 2000, 60000, &nacc);
	rej = assay_test_read_topic(e.rejected, "read_committed", NREJECTED, 2000, 60000, &nrej);
	assert_int_equal(nacc, NACCEPTED);
	assert_int_equal(nrej, NREJECTED);
	oacc = calloc(nacc, sizeof(*oacc));
	orej = calloc(nrej, sizeof(*orej));
	decode_outcomes(assay_test_evidence_codec(g), acc, nacc, &s, oacc);
	decode_outcomes(assay_test_evidence_codec(g), rej, nrej, &s, orej);
	for (size_t i = 0; i < sizeof(reasons_phase1) / sizeof(reasons_phase1[0]); i++) {
		int want = strcmp(reasons_phase1[i], "UNKNOWN_AUDIT") == 0 ? 2 : 1;

		if (count_reason(orej, nrej, reasons_phase1[i], NULL) != want)
			fail_msg("reason %s: %d, expected %d", reasons_phase1[i],
			         count_reason(orej, nrej, reasons_phase1[i], NULL), want);
	}
	for (size_t i = 0; i < nrej; i++)
		assert_true(orej[i].value_matches); /* the original bytes, unchanged */
	assert_string_equal(find_reason(orej, nrej, "HASH_CONFLICT")->evidence_id, "ev-good1");
	{
		char sha_good1[65];

		assay_test_sha256_hex("ev-good1", sha_good1);
		assert_string_equal(find_reason(orej, nrej, "HASH_CONFLICT")->stored, sha_good1);
	}
	assert_string_equal(find_reason(orej, nrej, "UNKNOWN_CONTROL")->controls,
	                    "ISO27001:A.99.1");
	assert_string_equal(find_reason(orej, nrej, "OUT_OF_SCOPE")->controls, "ISO42001:6.1.4");
	assert_string_equal(find_reason(orej, nrej, "EXCLUDED_IN_SOA")->controls, "ISO27001:A.5.1");
	assert_string_equal(find_reason(orej, nrej, "NO_SOA")->controls, "ISO42001:A.6.2.8");
	assert_true(find_reason(orej, nrej, "INVALID_UTF8")->ids_null);
	assert_true(find_reason(orej, nrej, "STRING_TOO_LONG")->ids_null);
	assert_false(find_reason(orej, nrej, "WRONG_TENANT")->ids_null);
	assert_int_equal(count_reason(orej, nrej, "UNKNOWN_AUDIT", "ev-early"), 1);
	{
		static const char *const want[] = {"ev-good1", "ev-good2", "ev-good3", "ev-good4",
		                                   "ev-early"};

		for (size_t k = 0; k < 5; k++) {
			bool found = false;

			for (size_t i = 0; i < nacc; i++)
				found = found || strcmp(oacc[i].evidence_id, want[k]) == 0;
			if (!found)
				fail_msg("no EvidenceAccepted for %s", want[k]);
		}
		for (size_t i = 0; i < nacc; i++)
			if (strcmp(oacc[i].evidence_id, "ev-good1") == 0)
				assert_string_equal(oacc[i].controls,
				                    "ISO27001_2022:A.8.15,ISO42001_2023:6.1.4");
	}
	assert_int_equal(count_dlq(e.dlq, e.submitted), 1);

	/* rows: the original of ev-good1 stays, with its source position */
	query_text(e.url,
	           "SELECT sha256 || ' ' || array_to_string(controls, ',') || ' ' || "
	           "(attributes->>'host') || ' ' || src_partition::text || ' ' || "
	           "src_offset::text FROM intake_evidence WHERE evidence_id = 'ev-good1'",
	           text, sizeof(text));
	{
		char sha_good1[65], want[512];

		assay_test_sha256_hex("ev-good1", sha_good1);
		snprintf(want, sizeof(want),
		         "%s ISO27001_2022:A.8.15,ISO42001_2023:6.1.4 db \"1\"\tx", sha_good1);
		assert_memory_equal(text, want, strlen(want));
	}
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT count(DISTINCT (src_topic, src_partition, "
	                                      "src_offset)) FROM intake_evidence"),
	                 NACCEPTED);
	/* append-only */
	if (assay_pg_connect(e.url, &conn, errstr, sizeof(errstr)))
		fail_msg("%s", errstr);
	assert_int_not_equal(
	        assay_pg_exec(conn, "UPDATE intake_evidence SET uri = 'x'", errstr, sizeof(errstr)),
	        0);
	assert_int_not_equal(
	        assay_pg_exec(conn, "DELETE FROM intake_evidence", errstr, sizeof(errstr)), 0);
	PQfinish(conn);
	assay_test_records_free(acc, nacc);
	assay_test_records_free(rej, nrej);
	free(oacc);
	free(orej);

	/* restart (the set is rebuilt from the table), then the whole stream again */
	assert_int_equal(assay_test_service_stop(pid), 0);
	pid = spawn_intake(&e);
	for (size_t i = 0; i < s.n; i++)
		assay_test_evidence_send(g, e.submitted, s.msgs[i].key, s.msgs[i].value,
		                         s.msgs[i].len);
	{
		char sql[512];

		snprintf(sql, sizeof(sql),
		         "SELECT sum(next_offset) FROM assay_offsets WHERE topic = '%s'",
		         e.submitted);
		assay_test_pg_wait(e.url, sql, (long)(2 * s.n + 1), 60000);
	}
	assert_int_equal(assay_test_service_stop(pid), 0);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM intake_evidence"),
	                 NACCEPTED);
	acc = assay_test_read_topic(e.accepted, "read_committed", NACCEPTED, 3000, 30000, &nacc);
	assert_int_equal(nacc, NACCEPTED);
	/* every rejection again except ev-early, which is now a replay of accepted evidence */
	rej = assay_test_read_topic(e.rejected, "read_committed", 2 * NREJECTED - 1, 3000, 60000,
	                            &nrej);
	assert_int_equal(nrej, 2 * NREJECTED - 1);
	orej = calloc(nrej, sizeof(*orej));
	decode_outcomes(assay_test_evidence_codec(g), rej, nrej, &s, orej);
	assert_int_equal(count_reason(orej, nrej, "HASH_CONFLICT", "ev-good1"), 2);
	assert_int_equal(count_reason(orej, nrej, "UNKNOWN_AUDIT", "ev-early"), 1);
	assert_int_equal(count_dlq(e.dlq, e.submitted), 2);
	assay_test_records_free(acc, nacc);
	assay_test_records_free(rej, nrej);
	free(orej);

	for (size_t i = 0; i < s.n; i++)
		free(s.msgs[i].value);
	assay_test_evidence_destroy(g);
	assay_test_pg_drop_db(e.url);
}

/* ---- two instances in one consumer group ---- */

#define GROUP_AUDITS 8
#define GROUP_PARTS  4

/* One instance of a shared group: the topics of e, group and metrics port of its own. */
static pid_t spawn_intake_member(struct env *e, const char *group, int port)
{
	char v_group[200], v_port[64];
	const char *vars[] = {e->v[0],
	                      e->v[1],
	                      e->v[2],
	                      e->v[3],
	                      e->v[4],
	                      e->v[5],
	                      e->v[6],
	                      v_group,
	                      v_port,
	                      "ASSAY_TOPICS_PARTITIONS=4",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_RELAY_INTERVAL_MS=20",
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};

	snprintf(e->v[0], sizeof(e->v[0]), "ASSAY_PG_URL=%s", e->url);
	snprintf(e->v[1], sizeof(e->v[1]), "ASSAY_TOPIC_EVIDENCE_SUBMITTED=%s", e->submitted);
	snprintf(e->v[2], sizeof(e->v[2]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", e->audits);
	snprintf(e->v[3], sizeof(e->v[3]), "ASSAY_TOPIC_EVIDENCE_ACCEPTED=%s", e->accepted);
	snprintf(e->v[4], sizeof(e->v[4]), "ASSAY_TOPIC_EVIDENCE_REJECTED=%s", e->rejected);
	snprintf(e->v[5], sizeof(e->v[5]), "ASSAY_INSTANCE_ID=%s", e->instance);
	snprintf(e->v[6], sizeof(e->v[6]), "ASSAY_DEADLETTER_TOPIC=%s", e->dlq);
	snprintf(v_group, sizeof(v_group), "ASSAY_GROUP_ID=%s", group);
	snprintf(v_port, sizeof(v_port), "ASSAY_METRICS_PORT=%d", port);
	return assay_test_service_start("assay-intake", NULL, vars, NULL, -1);
}

/* Waits until the instance on port reports itself ready (partitions assigned). */
static void wait_ready(int port)
{
	int64_t deadline = assay_test_now_ms() + 60000;

	while (assay_test_metric(port, "assay_ready") != 1) {
		if (assay_test_now_ms() > deadline)
			fail_msg("instance on port %d not ready after 60 s", port);
		usleep(100000);
	}
}

/* Produces value to topic's partition (explicit, so the test knows which member owns it). */
static void produce_to(rd_kafka_t *rk, const char *topic, int32_t partition, const char *key,
                       void *value, size_t len)
{
	assert_int_equal(
	        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
	                          RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(value, len),
	                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	        RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	free(value);
}

static void produce_evidence_to(rd_kafka_t *rk, struct assay_codec *codec, const char *topic, int k,
                                const char *evidence_id, const char *sha_text, const char *control)
{
	struct assay_test_evidence_spec sp;
	char audit[32], client[32], sha[65];
	const char *controls[] = {control};
	void *buf;
	size_t len;

	snprintf(audit, sizeof(audit), "g-audit-%d", k);
	snprintf(client, sizeof(client), "g-client-%d", k);
	assay_test_evidence_spec_init(&sp, TENANT, audit, client, evidence_id, sha);
	if (sha_text)
		assay_test_sha256_hex(sha_text, sha);
	sp.controls = controls;
	sp.ncontrols = 1;
	assay_test_evidence_encode(codec, &sp, &buf, &len);
	produce_to(rk, topic, k % GROUP_PARTS, audit, buf, len);
}

/*
 * Two instances (same ASSAY_GROUP_ID, their own ASSAY_INSTANCE_ID) split four partitions of
 * each topic; every audit k lives on partition k % 4 of both topics, so each instance projects
 * the audits of its partitions. Then one instance is stopped (SIGTERM): the survivor takes
 * every partition, and evidence of the audits the other one projected must find those audits,
 * their SoAs and the evidence already stored (replay and HASH_CONFLICT, not a second row):
 * only a reload of the state at the assignment gives that. Exactly once: every accepted and
 * rejected event once, one row per evidence id, no dead letter.
 */
static void test_intake_two_instances_one_group(void **state)
{
	static const char *const only27[] = {"ISO27001_2022"};
	const char *ids27[] = {"A.5.1", "A.5.15", "A.8.15", "A.8.16"};
	const bool app27[] = {false, true, true, true};
	struct env ea, eb;
	struct assay_test_evidence_config gc = {0};
	struct assay_test_evidence *g;
	struct assay_codec *codec;
	struct assay_test_record *acc, *rej, *dead;
	size_t nacc, nrej, ndead;
	char group[128], id[64];
	int port_a = assay_test_free_port(), port_b;
	pid_t pa, pb;
	rd_kafka_t *rk;
	void *buf;
	size_t len;

	(void)state;
	memset(&ea, 0, sizeof(ea));
	assay_test_pg_fresh_db(ea.url, sizeof(ea.url), "test_intake_group");
	assay_test_pg_migrate(ea.url);
	assay_test_kafka_topic(ea.submitted, sizeof(ea.submitted), "intake-g-submitted",
	                       GROUP_PARTS);
	assay_test_kafka_topic(ea.audits, sizeof(ea.audits), "intake-g-audits", GROUP_PARTS);
	assay_test_kafka_topic(ea.accepted, sizeof(ea.accepted), "intake-g-accepted", GROUP_PARTS);
	assay_test_kafka_topic(ea.rejected, sizeof(ea.rejected), "intake-g-rejected", GROUP_PARTS);
	assay_test_kafka_topic(ea.dlq, sizeof(ea.dlq), "intake-g-dlq", 1);
	assay_test_unique(group, sizeof(group), "intake-group");
	eb = ea;
	assay_test_unique(ea.instance, sizeof(ea.instance), "intake-a");
	assay_test_unique(eb.instance, sizeof(eb.instance), "intake-b");
	gc.pg_url = ea.url;
	gc.audit_topic = ea.audits;
	gc.evidence_topic = ea.submitted;
	g = assay_test_evidence_new(&gc);
	codec = assay_test_evidence_codec(g);
	rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, NULL, NULL, NULL);

	/* A alone, then B joins: wait until both have their share */
	pa = spawn_intake_member(&ea, group, port_a);
	wait_ready(port_a);
	port_b = assay_test_free_port();
	pb = spawn_intake_member(&eb, group, port_b);
	wait_ready(port_b);
	wait_ready(port_a);

	/* audits on every partition, each with an SoA that excludes A.5.1 */
	for (int k = 0; k < GROUP_AUDITS; k++) {
		char audit[32], client[32];

		snprintf(audit, sizeof(audit), "g-audit-%d", k);
		snprintf(client, sizeof(client), "g-client-%d", k);
		assay_test_audit_opened_encode(codec, TENANT, audit, client, only27, 1, &buf, &len);
		produce_to(rk, ea.audits, k % GROUP_PARTS, audit, buf, len);
		assay_test_soa_encode(codec, TENANT, audit, client, "ISO27001_2022", 1, ids27,
		                      app27, 4, &buf, &len);
		produce_to(rk, ea.audits, k % GROUP_PARTS, audit, buf, len);
	}
	assay_test_pg_wait(ea.url, "SELECT count(*) FROM intake_audits", GROUP_AUDITS, 60000);
	assay_test_pg_wait(ea.url, "SELECT count(*) FROM intake_soa", GROUP_AUDITS, 60000);
	/* both instances projected audits (each owns two partitions of the audit topic) */
	assert_true(assay_test_metric(port_a, "assay_consumed_total") > 0);
	assert_true(assay_test_metric(port_b, "assay_consumed_total") > 0);

	/* phase 1: one good item per audit, each accepted by the instance that owns it */
	for (int k = 0; k < GROUP_AUDITS; k++) {
		snprintf(id, sizeof(id), "g-ev-%d-1", k);
		produce_evidence_to(rk, codec, ea.submitted, k, id, NULL, "ISO27001:A.8.16");
	}
	assay_test_pg_wait(ea.url, "SELECT count(*) FROM intake_evidence", GROUP_AUDITS, 60000);
	assert_true(assay_test_metric(port_a, "assay_intake_accepted_total") > 0);
	assert_true(assay_test_metric(port_b, "assay_intake_accepted_total") > 0);

	/* B leaves; A takes every partition and reloads what B wrote */
	assert_int_equal(assay_test_service_stop(pb), 0);

	/* phase 2, per audit: a new good item, a replay of phase 1's item (same hash), the same
	 * id with another hash, and a claim of the control the SoA excludes */
	for (int k = 0; k < GROUP_AUDITS; k++) {
		snprintf(id, sizeof(id), "g-ev-%d-2", k);
		produce_evidence_to(rk, codec, ea.submitted, k, id, NULL, "ISO27001:A.8.15");
		snprintf(id, sizeof(id), "g-ev-%d-1", k);
		produce_evidence_to(rk, codec, ea.submitted, k, id, NULL, "ISO27001:A.8.16");
		produce_evidence_to(rk, codec, ea.submitted, k, id, "other", "ISO27001:A.8.16");
		snprintf(id, sizeof(id), "g-ev-%d-3", k);
		produce_evidence_to(rk, codec, ea.submitted, k, id, NULL, "ISO27001:A.5.1");
	}
	{
		char sql[512];

		snprintf(sql, sizeof(sql),
		         "SELECT sum(next_offset) FROM assay_offsets WHERE topic = '%s'",
		         ea.submitted);
		assay_test_pg_wait(ea.url, sql, 5 * GROUP_AUDITS, 90000);
	}
	assert_int_equal(assay_test_service_stop(pa), 0);

	/* rows: phase 1 and phase 2's new items, once each, the originals' hashes kept */
	assert_int_equal(assay_test_pg_scalar(ea.url, "SELECT count(*) FROM intake_evidence"),
	                 2 * GROUP_AUDITS);
	assert_int_equal(assay_test_pg_scalar(ea.url, "SELECT count(DISTINCT evidence_id) FROM "
	                                              "intake_evidence"),
	                 2 * GROUP_AUDITS);
	assert_int_equal(assay_test_pg_scalar(ea.url, "SELECT count(*) FROM intake_evidence WHERE "
	                                              "evidence_id LIKE 'g-ev-%-3'"),
	                 0);

	/* events: 16 accepted, each id once; 16 rejected: 8 HASH_CONFLICT, 8 EXCLUDED_IN_SOA */
	acc = assay_test_read_topic(ea.accepted, "read_committed", 2 * GROUP_AUDITS, 3000, 60000,
	                            &nacc);
	rej = assay_test_read_topic(ea.rejected, "read_committed", 2 * GROUP_AUDITS, 3000, 60000,
	                            &nrej);
	assert_int_equal(nacc, 2 * GROUP_AUDITS);
	assert_int_equal(nrej, 2 * GROUP_AUDITS);
	{
		struct stream none = {0};
		struct outcome *oacc = calloc(nacc, sizeof(*oacc));
		struct outcome *orej = calloc(nrej, sizeof(*orej));

		assert_non_null(oacc);
		assert_non_null(orej);
		decode_outcomes(codec, acc, nacc, &none, oacc);
		decode_outcomes(codec, rej, nrej, &none, orej);
		for (int k = 0; k < GROUP_AUDITS; k++)
			for (int n = 1; n <= 2; n++) {
				int c = 0;

				snprintf(id, sizeof(id), "g-ev-%d-%d", k, n);
				for (size_t i = 0; i < nacc; i++)
					c += strcmp(oacc[i].evidence_id, id) == 0;
				assert_int_equal(c, 1);
			}
		for (int k = 0; k < GROUP_AUDITS; k++) {
			snprintf(id, sizeof(id), "g-ev-%d-1", k);
			assert_int_equal(count_reason(orej, nrej, "HASH_CONFLICT", id), 1);
			snprintf(id, sizeof(id), "g-ev-%d-3", k);
			assert_int_equal(count_reason(orej, nrej, "EXCLUDED_IN_SOA", id), 1);
		}
		free(oacc);
		free(orej);
	}
	assay_test_records_free(acc, nacc);
	assay_test_records_free(rej, nrej);
	/* nothing dead-lettered (a row the projection missed would have been refused) */
	dead = assay_test_read_topic(ea.dlq, "read_committed", 0, 2000, 10000, &ndead);
	assert_int_equal(ndead, 0);
	assay_test_records_free(dead, ndead);

	rd_kafka_destroy(rk);
	assay_test_evidence_destroy(g);
	assay_test_pg_drop_db(ea.url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_intake_mixed_stream_and_replay,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_intake_two_instances_one_group,
	                                  assay_test_service_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
