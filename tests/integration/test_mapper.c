/*
 * assay-mapper end to end on the local stack: the real executable against a fresh database
 * and unique topics. Audit events (AuditOpened, SoaSubmitted) and accepted evidence go in as
 * Avro-framed messages; ControlMapped events come out exactly once (read_committed), the
 * links and the coverage are in PostgreSQL, evidence that arrives before its audit waits and
 * is mapped when the AuditOpened comes, an undecodable message is dead-lettered, and a
 * restarted service maps with the projection it reloaded. Also: --export-oscal writes a
 * mapping collection whose structure is checked by parsing it.
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "assay_test_evidence.h"
#include "assay_test_kafka.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"
#include "assay_codec.h"
#include "assay_coverage.h"
#include "assay_embed.h"
#include "assay_headers.h"
#include "assay_migrate.h"
#include "assay_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct ctx {
	char url[512];
	char t_evidence[128], t_audit[128], t_mapped[128], t_dlq[128];
	struct assay_registry *reg;
	struct assay_codec *codec;
	rd_kafka_t *producer;
	PGconn *conn;
	int32_t partition; /* where produce_raw puts messages: RD_KAFKA_PARTITION_UA (by key) */
};

/* A fresh database and unique topics, partitions each (the dead-letter topic has one). */
static void ctx_setup(struct ctx *c, const char *prefix, int partitions)
{
	char err[1024];

	memset(c, 0, sizeof(*c));
	c->partition = RD_KAFKA_PARTITION_UA;
	assay_test_pg_fresh_db(c->url, sizeof(c->url), prefix);
	if (assay_pg_connect(c->url, &c->conn, err, sizeof(err)) ||
	    assay_migrate(c->conn, assay_embedded_migrations, err, sizeof(err)))
		fail_msg("%s", err);
	c->reg = assay_registry_pg_new(c->url, err, sizeof(err));
	assert_non_null(c->reg);
	c->codec = assay_codec_new(c->reg, 0, err, sizeof(err));
	assert_non_null(c->codec);
	if (assay_codec_register_embedded(c->codec, err, sizeof(err)))
		fail_msg("%s", err);
	assay_test_kafka_topic(c->t_evidence, sizeof(c->t_evidence), "map-ev", partitions);
	assay_test_kafka_topic(c->t_audit, sizeof(c->t_audit), "map-audit", partitions);
	assay_test_kafka_topic(c->t_mapped, sizeof(c->t_mapped), "map-out", partitions);
	assay_test_kafka_topic(c->t_dlq, sizeof(c->t_dlq), "map-dlq", 1);
	c->producer = assay_test_kafka_new(RD_KAFKA_PRODUCER, NULL, NULL, NULL);
}

static void ctx_teardown(struct ctx *c)
{
	rd_kafka_flush(c->producer, 10000);
	rd_kafka_destroy(c->producer);
	assay_codec_destroy(c->codec);
	assay_registry_destroy(c->reg);
	PQfinish(c->conn);
	assay_test_pg_drop_db(c->url);
}

static void produce_raw(struct ctx *c, const char *topic, const char *key, const void *buf,
                        size_t len)
{
	assert_int_equal(
	        rd_kafka_producev(
	                c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(c->partition),
	                RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)buf, len),
	                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	        RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(c->producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void produce_value(struct ctx *c, const char *topic, const char *key,
                          const struct assay_schema *s, avro_value_t *v)
{
	void *buf;
	size_t len;
	char err[512];

	assay_test_null_unset_unions(v);
	if (assay_codec_encode(c->codec, s, v, &buf, &len, err, sizeof(err)))
		fail_msg("%s", err);
	produce_raw(c, topic, key, buf, len);
	free(buf);
	avro_value_decref(v);
}

static const struct assay_schema *schema(struct ctx *c, const char *name, avro_value_t *v)
{
	const struct assay_schema *s;
	char err[512];

	if (assay_codec_schema_by_name(c->codec, name, &s, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(assay_codec_value_new(s, v), 0);
	return s;
}

static void produce_opened(struct ctx *c, const char *audit, const char *const *stds, size_t n)
{
	void *buf;
	size_t len;

	assay_test_audit_opened_encode(c->codec, "cb-1", audit, "client-1", stds, n, &buf, &len);
	produce_raw(c, c->t_audit, audit, buf, len);
	free(buf);
}

/* An SoA of standard with two rows: excluded not applicable, included applicable. */
static void produce_soa(struct ctx *c, const char *audit, const char *standard,
                        const char *excluded, const char *included)
{
	const char *const ids[] = {excluded, included};
	static const bool applicable[] = {false, true};
	void *buf;
	size_t len;

	assay_test_soa_encode(c->codec, "cb-1", audit, "client-1", standard, 1, ids, applicable, 2,
	                      &buf, &len);
	produce_raw(c, c->t_audit, audit, buf, len);
	free(buf);
}

static void produce_evidence(struct ctx *c, const char *audit, const char *evidence,
                             const char *standard, const char *control)
{
	avro_value_t v, arr, elem, src;
	const struct assay_schema *s = schema(c, "org.assay.v1.EvidenceAccepted", &v);
	char event_id[64];

	snprintf(event_id, sizeof(event_id), "acc-%s", evidence);
	assert_int_equal(assay_value_set_string(&v, "event_id", event_id), 0);
	assert_int_equal(assay_value_set_string(&v, "tenant_id", "cb-1"), 0);
	assert_int_equal(assay_value_set_long(&v, "occurred_at", 1767225600000), 0);
	assert_int_equal(assay_value_set_string(&v, "audit_id", audit), 0);
	assert_int_equal(assay_value_set_string(&v, "client_id", "client-1"), 0);
	assert_int_equal(assay_value_set_string(&v, "evidence_id", evidence), 0);
	assert_int_equal(assay_value_set_string(&v, "submitted_event_id", "sub"), 0);
	assert_int_equal(assay_value_set_string(&v, "source_system", "grc"), 0);
	assert_int_equal(assay_value_set_enum(&v, "kind", "POLICY"), 0);
	assert_int_equal(assay_value_set_long(&v, "collected_at", 1767225000000), 0);
	assert_int_equal(assay_value_set_string(&v, "sha256", "00"), 0);
	assert_int_equal(assay_value_set_long(&v, "size_bytes", 1), 0);
	assert_int_equal(assay_value_set_string(&v, "uri", "s3://x"), 0);
	assert_int_equal(assay_value_field(&v, "claimed_controls", AVRO_ARRAY, &arr), 0);
	assert_int_equal(avro_value_append(&arr, &elem, NULL), 0);
	assert_int_equal(assay_value_set_enum(&elem, "standard", standard), 0);
	assert_int_equal(assay_value_set_string(&elem, "control_id", control), 0);
	assert_int_equal(assay_value_field(&v, "source", AVRO_RECORD, &src), 0);
	assert_int_equal(assay_value_set_string(&src, "topic", "assay.evidence.submitted"), 0);
	produce_value(c, c->t_evidence, audit, s, &v);
}

/* An instance; group: ASSAY_GROUP_ID (NULL: the default group), metrics on port (0: none). */
static pid_t spawn_mapper_member(struct ctx *c, const char *instance, const char *group, int port)
{
	char v_url[600], v_ev[200], v_au[200], v_out[200], v_dlq[200], v_inst[200];
	char v_group[200], v_port[64];
	const char *vars[] = {v_url,
	                      v_ev,
	                      v_au,
	                      v_out,
	                      v_dlq,
	                      v_inst,
	                      v_port,
	                      "ASSAY_TOPICS_PARTITIONS=4",
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_RELAY_INTERVAL_MS=20",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      group ? v_group : NULL,
	                      NULL};

	snprintf(v_group, sizeof(v_group), "ASSAY_GROUP_ID=%s", group ? group : "");
	snprintf(v_port, sizeof(v_port), "ASSAY_METRICS_PORT=%d", port);
	snprintf(v_url, sizeof(v_url), "ASSAY_PG_URL=%s", c->url);
	snprintf(v_ev, sizeof(v_ev), "ASSAY_TOPIC_EVIDENCE_ACCEPTED=%s", c->t_evidence);
	snprintf(v_au, sizeof(v_au), "ASSAY_TOPIC_AUDIT_EVENTS=%s", c->t_audit);
	snprintf(v_out, sizeof(v_out), "ASSAY_TOPIC_CONTROL_MAPPED=%s", c->t_mapped);
	snprintf(v_dlq, sizeof(v_dlq), "ASSAY_DEADLETTER_TOPIC=%s", c->t_dlq);
	snprintf(v_inst, sizeof(v_inst), "ASSAY_INSTANCE_ID=%s", instance);
	return assay_test_service_start("assay-mapper", NULL, vars, NULL, -1);
}

static pid_t spawn_mapper(struct ctx *c, const char *instance)
{
	return spawn_mapper_member(c, instance, NULL, 0);
}

/* "STANDARD:ID:KIND[:VIA]" per link, ';'-separated, of a ControlMapped value */
static void links_text(avro_value_t *v, char *out, size_t size)
{
	avro_value_t arr, elem, via;
	size_t n, used = 0;

	out[0] = '\0';
	assert_int_equal(assay_value_array(v, "links", &arr, &n), 0);
	for (size_t i = 0; i < n; i++) {
		const char *std, *id, *kind, *vid = NULL;
		size_t len;

		assert_int_equal(assay_value_array_get(&arr, i, &elem), 0);
		assert_int_equal(assay_value_enum(&elem, "standard", &std), 0);
		assert_int_equal(assay_value_string(&elem, "control_id", &id, &len), 0);
		assert_int_equal(assay_value_enum(&elem, "link_kind", &kind), 0);
		if (assay_value_record(&elem, "via", &via) == 0)
			assert_int_equal(assay_value_string(&via, "control_id", &vid, &len), 0);
		used += (size_t)snprintf(out + used, size - used, "%s%s:%s:%s%s%s", i ? ";" : "",
		                         std, id, kind, vid ? ":" : "", vid ? vid : "");
		assert_true(used < size);
	}
}

static void test_evidence_in_links_and_events_out_exactly_once(void **state)
{
	const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};
	const char *const only27[] = {"ISO27001_2022"};
	static const struct {
		const char *evidence, *links;
	} expected[] = {
	        {"e1", "ISO27001_2022:9.3.1:DIRECT;ISO42001_2023:9.3.1:AUTOMATIC:9.3.1"},
	        /* A.10.3 is excluded in the 42001 SoA: only the medium edge to A.10.2 */
	        {"e2",
	         "ISO27001_2022:A.5.19:DIRECT;ISO42001_2023:A.10.2:NEEDS_CONFIRMATION:A.5.19"},
	        {"e3",
	         "ISO27001_2022:A.8.15:DIRECT;ISO42001_2023:A.6.2.8:NEEDS_CONFIRMATION:A.8.15"},
	        /* audit A2 has 27001 only in scope */
	        {"e4", "ISO27001_2022:9.3.1:DIRECT"},
	        /* waited for A3's AuditOpened; read from the 42001 side */
	        {"e5", "ISO42001_2023:9.2.2:DIRECT;ISO27001_2022:9.2.2:AUTOMATIC:9.2.2"},
	        /* after a restart: the scope of A1 came back from the database */
	        {"e6", "ISO27001_2022:7.2:DIRECT;ISO42001_2023:7.2:AUTOMATIC:7.2"},
	};
	char instance[64], err[512], text[1024];
	struct ctx c;
	struct assay_test_record *recs;
	size_t count;
	pid_t pid;

	(void)state;
	ctx_setup(&c, "test_mapper", 2);
	assay_test_unique(instance, sizeof(instance), "it");
	produce_opened(&c, "A1", both, 2);
	produce_soa(&c, "A1", "ISO42001_2023", "A.10.3", "A.10.2");
	produce_opened(&c, "A2", only27, 1);

	pid = spawn_mapper(&c, instance);
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_audits", 2, 60000);
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_soa", 1, 60000);

	produce_evidence(&c, "A1", "e1", "ISO27001_2022", "9.3.1");
	produce_evidence(&c, "A1", "e2", "ISO27001_2022", "A.5.19");
	produce_evidence(&c, "A1", "e3", "ISO27001_2022", "A.8.15");
	produce_evidence(&c, "A2", "e4", "ISO27001_2022", "9.3.1");
	produce_evidence(&c, "A3", "e5", "ISO42001_2023", "9.2.2");
	produce_raw(&c, c.t_evidence, "A1",
	            "\0\x7f\xff\xff\xff"
	            "garbage",
	            12);
	assay_test_pg_wait(c.url, "SELECT count(DISTINCT evidence_id) FROM assay_mapper_links", 4,
	                   60000);
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_pending", 1, 60000);

	produce_opened(&c, "A3", both, 2);
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_pending", 0, 60000);
	assay_test_pg_wait(c.url, "SELECT count(DISTINCT evidence_id) FROM assay_mapper_links", 5,
	                   60000);
	assert_int_equal(assay_test_service_stop(pid), 0);

	pid = spawn_mapper(&c, instance);
	produce_evidence(&c, "A1", "e6", "ISO27001_2022", "7.2");
	assay_test_pg_wait(c.url, "SELECT count(DISTINCT evidence_id) FROM assay_mapper_links", 6,
	                   60000);
	assert_int_equal(assay_test_service_stop(pid), 0);

	/* events: one per evidence item, each once, with the links above */
	recs = assay_test_read_topic(c.t_mapped, "read_committed", 6, 2000, 30000, &count);
	assert_int_equal(count, 6);
	for (size_t e = 0; e < 6; e++) {
		bool found = false;

		for (size_t i = 0; i < count; i++) {
			struct assay_decoded d;
			const char *ev, *id;
			size_t len;

			if (assay_codec_decode(c.codec, recs[i].value, recs[i].value_len, &d, err,
			                       sizeof(err)))
				fail_msg("%s", err);
			assert_string_equal(d.schema->full_name, "org.assay.v1.ControlMapped");
			assert_int_equal(assay_value_string(&d.value, "evidence_id", &ev, &len), 0);
			if (strcmp(ev, expected[e].evidence) == 0) {
				const struct assay_header *h =
				        assay_headers_find(&recs[i].headers, "event_id");

				assert_false(found);
				found = true;
				links_text(&d.value, text, sizeof(text));
				assert_string_equal(text, expected[e].links);
				assert_int_equal(
				        assay_value_string(&d.value, "event_id", &id, &len), 0);
				assert_non_null(h);
				assert_int_equal(h->size, len);
				assert_memory_equal(h->value, id, len);
			}
			assay_decoded_release(&d);
		}
		assert_true(found);
	}
	assay_test_records_free(recs, count);

	/* the undecodable message went to the dead-letter topic. assay_service_main does not
	 * pass deadletter.topic to the loop yet, so it may be in the default topic: look for
	 * the one whose assay.dlq.topic is our evidence topic */
	size_t dead = 0;
	for (int pass = 0; pass < 2 && dead == 0; pass++) {
		recs = assay_test_read_topic(pass == 0 ? c.t_dlq : "assay.deadletter",
		                             "read_committed", 1, 2000, 8000, &count);
		for (size_t i = 0; i < count; i++) {
			const struct assay_header *st =
			        assay_headers_find(&recs[i].headers, "assay.dlq.stage");

			if (!assay_test_header_equals(&recs[i], "assay.dlq.topic", c.t_evidence))
				continue;
			assert_non_null(st);
			assert_int_equal(st->size, 6);
			assert_memory_equal(st->value, "mapper", 6);
			assert_int_equal(recs[i].value_len, 12);
			dead++;
		}
		assay_test_records_free(recs, count);
	}
	assert_int_equal(dead, 1);

	/* rows: 11 links, once each */
	assert_int_equal(assay_test_pg_scalar(c.url, "SELECT count(*) FROM assay_mapper_links"),
	                 11);

	/* coverage of A1 */
	struct assay_coverage_row *rows;
	struct assay_coverage_summary sum;
	size_t n;
	if (assay_coverage_query(c.conn, "A1", NULL, &rows, &n, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(n, 30 + 93 + 32 + 37); /* 42001 A.10.3 excluded */
	for (size_t i = 0; i < n; i++) {
		const struct assay_coverage_row *r = &rows[i];
		bool s27 = strcmp(r->standard, "ISO27001_2022") == 0;
		int64_t d = 0, a = 0, p = 0;

		assert_false(!s27 && strcmp(r->control_id, "A.10.3") == 0);
		if (s27 &&
		    (strcmp(r->control_id, "9.3.1") == 0 || strcmp(r->control_id, "A.5.19") == 0 ||
		     strcmp(r->control_id, "A.8.15") == 0 || strcmp(r->control_id, "7.2") == 0))
			d = 1;
		if (!s27 &&
		    (strcmp(r->control_id, "9.3.1") == 0 || strcmp(r->control_id, "7.2") == 0))
			a = 1;
		if (!s27 &&
		    (strcmp(r->control_id, "A.10.2") == 0 || strcmp(r->control_id, "A.6.2.8") == 0))
			p = 1;
		if (r->direct != d || r->automatic != a || r->pending != p)
			fail_msg("%s %s: %lld/%lld/%lld", r->standard, r->control_id,
			         (long long)r->direct, (long long)r->automatic,
			         (long long)r->pending);
	}
	assert_string_equal(rows[0].control_id, "4.1");
	assert_string_equal(rows[0].standard, "ISO27001_2022");
	assay_coverage_summarize(rows, n, &sum);
	assert_int_equal(sum.covered, 6);
	assert_int_equal(sum.pending_only, 2);
	assert_int_equal(sum.uncovered, n - 8);
	free(rows);
	if (assay_coverage_query(c.conn, "A2", "ISO42001_2023", &rows, &n, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(n, 0); /* not in A2's scope */
	free(rows);

	ctx_teardown(&c);
}

#define GROUP_AUDITS 8
#define GROUP_PARTS  4

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

/*
 * Two instances (same ASSAY_GROUP_ID, their own ASSAY_INSTANCE_ID) split four partitions of
 * each topic; audit k and its evidence live on partition k % 4, so each instance projects the
 * audits (scope and SoA) of its partitions, and evidence of audits P0..P3 that are not open yet
 * waits in the pending table of the instance that owns it. Then one instance is stopped
 * (SIGTERM): the survivor takes every partition and must map new evidence of the other's
 * audits with their scope and SoA, and the other's waiting evidence when the AuditOpened comes:
 * only a reload of the state at the assignment gives that. Exactly once: one ControlMapped per
 * evidence item, the links once.
 */
static void test_two_instances_one_group(void **state)
{
	const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};
	/* A.10.3 is excluded in every M audit's 42001 SoA: only the medium edge to A.10.2 */
	const char *soa_links =
	        "ISO27001_2022:A.5.19:DIRECT;ISO42001_2023:A.10.2:NEEDS_CONFIRMATION:A.5.19";
	const char *open_links = "ISO27001_2022:9.3.1:DIRECT;ISO42001_2023:9.3.1:AUTOMATIC:9.3.1";
	char inst_a[64], inst_b[64], group[128], audit[32], ev[32], err[512], text[1024];
	int port_a = assay_test_free_port(), port_b, seen[3 * GROUP_AUDITS + GROUP_PARTS] = {0};
	struct ctx c;
	struct assay_test_record *recs;
	size_t count;
	pid_t pa, pb;

	(void)state;
	ctx_setup(&c, "test_mapper_group", GROUP_PARTS);
	assay_test_unique(inst_a, sizeof(inst_a), "map-a");
	assay_test_unique(inst_b, sizeof(inst_b), "map-b");
	assay_test_unique(group, sizeof(group), "map-group");

	/* A alone, then B joins: wait until both have their share */
	pa = spawn_mapper_member(&c, inst_a, group, port_a);
	wait_ready(port_a);
	port_b = assay_test_free_port();
	pb = spawn_mapper_member(&c, inst_b, group, port_b);
	wait_ready(port_b);
	wait_ready(port_a);

	for (int k = 0; k < GROUP_AUDITS; k++) {
		snprintf(audit, sizeof(audit), "M%d", k);
		c.partition = k % GROUP_PARTS;
		produce_opened(&c, audit, both, 2);
		produce_soa(&c, audit, "ISO42001_2023", "A.10.3", "A.10.2");
	}
	/* evidence of audits not open yet: pending, on every partition */
	for (int k = 0; k < GROUP_PARTS; k++) {
		snprintf(audit, sizeof(audit), "P%d", k);
		snprintf(ev, sizeof(ev), "p%d", k);
		c.partition = k;
		produce_evidence(&c, audit, ev, "ISO27001_2022", "9.3.1");
	}
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_audits", GROUP_AUDITS, 60000);
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_soa", GROUP_AUDITS, 60000);
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_pending", GROUP_PARTS, 60000);
	/* phase 1: one item per audit, mapped by the instance that owns it */
	for (int k = 0; k < GROUP_AUDITS; k++) {
		snprintf(audit, sizeof(audit), "M%d", k);
		snprintf(ev, sizeof(ev), "m%d-1", k);
		c.partition = k % GROUP_PARTS;
		produce_evidence(&c, audit, ev, "ISO27001_2022", "A.5.19");
	}
	assay_test_pg_wait(c.url, "SELECT count(DISTINCT evidence_id) FROM assay_mapper_links",
	                   GROUP_AUDITS, 60000);
	/* both instances did part of the work */
	assert_true(assay_test_metric(port_a, "assay_mapper_evidence_mapped_total") > 0);
	assert_true(assay_test_metric(port_b, "assay_mapper_evidence_mapped_total") > 0);

	/* B leaves; A takes every partition and reloads what B wrote */
	assert_int_equal(assay_test_service_stop(pb), 0);

	/* phase 2: two more items per audit, and the AuditOpened of the waiting evidence */
	for (int k = 0; k < GROUP_AUDITS; k++)
		for (int n = 2; n <= 3; n++) {
			snprintf(audit, sizeof(audit), "M%d", k);
			snprintf(ev, sizeof(ev), "m%d-%d", k, n);
			c.partition = k % GROUP_PARTS;
			produce_evidence(&c, audit, ev, "ISO27001_2022", "A.5.19");
		}
	for (int k = 0; k < GROUP_PARTS; k++) {
		snprintf(audit, sizeof(audit), "P%d", k);
		c.partition = k;
		produce_opened(&c, audit, both, 2);
	}
	assay_test_pg_wait(c.url, "SELECT count(DISTINCT evidence_id) FROM assay_mapper_links",
	                   3 * GROUP_AUDITS + GROUP_PARTS, 90000);
	assay_test_pg_wait(c.url, "SELECT count(*) FROM assay_mapper_pending", 0, 30000);
	assert_int_equal(assay_test_service_stop(pa), 0);

	/* rows: two links per item, once each */
	assert_int_equal(assay_test_pg_scalar(c.url, "SELECT count(*) FROM assay_mapper_links"),
	                 2 * (3 * GROUP_AUDITS + GROUP_PARTS));
	assert_int_equal(assay_test_pg_scalar(c.url, "SELECT count(*) FROM assay_mapper_mapped"),
	                 3 * GROUP_AUDITS + GROUP_PARTS);

	/* events: one ControlMapped per item with the links of its audit's scope and SoA */
	recs = assay_test_read_topic(c.t_mapped, "read_committed", 3 * GROUP_AUDITS + GROUP_PARTS,
	                             3000, 60000, &count);
	assert_int_equal(count, 3 * GROUP_AUDITS + GROUP_PARTS);
	for (size_t i = 0; i < count; i++) {
		struct assay_decoded d;
		const char *id;
		size_t len;
		int k, n = 0, slot;

		if (assay_codec_decode(c.codec, recs[i].value, recs[i].value_len, &d, err,
		                       sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(assay_value_string(&d.value, "evidence_id", &id, &len), 0);
		links_text(&d.value, text, sizeof(text));
		if (sscanf(id, "m%d-%d", &k, &n) == 2) {
			assert_true(k >= 0 && k < GROUP_AUDITS && n >= 1 && n <= 3);
			slot = k * 3 + (n - 1);
			if (strcmp(text, soa_links) != 0)
				fail_msg("%s: %s", id, text);
		} else {
			assert_int_equal(sscanf(id, "p%d", &k), 1);
			assert_true(k >= 0 && k < GROUP_PARTS);
			slot = 3 * GROUP_AUDITS + k;
			if (strcmp(text, open_links) != 0)
				fail_msg("%s: %s", id, text);
		}
		seen[slot]++;
		assay_decoded_release(&d);
	}
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		assert_int_equal(seen[i], 1);
	assay_test_records_free(recs, count);
	ctx_teardown(&c);
}

static void test_export_oscal(void **state)
{
	char url[512], path[] = "/tmp/assay_mapper_oscal_XXXXXX", cmd[2048];
	long edges;
	int fd, rc;

	(void)state;
	assay_test_pg_fresh_db(url, sizeof(url), "test_mapper_oscal");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "ASSAY_PG_URL='%s' %s/bin/assay-mapper --export-oscal %s", url,
	         ASSAY_BINARY_DIR, path);
	assert_int_equal(system(cmd), 0);

	/* the service migrated the database; the document has one map per crosswalk row */
	edges = assay_test_pg_scalar(url, "SELECT count(*) FROM assay_crosswalk");
	snprintf(cmd, sizeof(cmd),
	         "python3 -c '\n"
	         "import json, sys\n"
	         "m = json.load(open(sys.argv[1]))[\"mapping-collection\"]\n"
	         "maps = [x for mp in m[\"mappings\"] for x in mp[\"maps\"]]\n"
	         "assert len(maps) == int(sys.argv[2]), (len(maps), sys.argv[2])\n"
	         "assert len({x[\"uuid\"] for x in maps}) == len(maps)\n"
	         "assert m[\"metadata\"][\"oscal-version\"] and m[\"provenance\"][\"status\"]\n"
	         "k = [x for x in maps if x[\"sources\"][0][\"id-ref\"] == \"A.8.15\"]\n"
	         "assert k[0][\"targets\"][0][\"id-ref\"] == \"A.6.2.8\"\n"
	         "assert k[0][\"relationship\"] == \"intersects-with\"\n"
	         "' %s %ld",
	         path, edges);
	rc = system(cmd);
	unlink(path);
	assert_int_equal(rc, 0);

	/* a bad invocation is a usage error */
	snprintf(cmd, sizeof(cmd), "%s/bin/assay-mapper --export-oscal 2>/dev/null",
	         ASSAY_BINARY_DIR);
	rc = system(cmd);
	assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
	assay_test_pg_drop_db(url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_evidence_in_links_and_events_out_exactly_once,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_two_instances_one_group,
	                                  assay_test_service_teardown),
	        cmocka_unit_test(test_export_oscal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
