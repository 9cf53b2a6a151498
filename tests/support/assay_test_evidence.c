/*
 * Evidence for tests and benchmarks: Avro builders for EvidenceSubmitted and the audit events
 * intake follows, and a generator that opens audits with their SoAs from the real control
 * catalog and streams evidence at a chosen rate with a chosen share of invalid events.
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "assay_test_evidence.h"
#include "assay_test_kafka.h"

#include "assay_catalog.h"
#include "assay_pg.h"
#include "assay_registry.h"
#include "assay_uuid.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NSTANDARDS 2
static const char *const standards[NSTANDARDS] = {"ISO27001_2022", "ISO42001_2023"};
static const char *const families[NSTANDARDS] = {"ISO27001", "ISO42001"};

struct assay_test_evidence {
	struct assay_test_evidence_config cfg;
	char tenant[64];
	struct assay_registry *reg;
	struct assay_codec *codec;
	struct assay_catalog *catalog;
	/* Annex A controls per standard, and their "FAMILY:ID" refs */
	const char **ids[NSTANDARDS];
	char **refs[NSTANDARDS];
	size_t nids[NSTANDARDS];
	const struct assay_schema *s_submitted;
	avro_value_t v_submitted;
	rd_kafka_t *rk;
	long delivered, failed;
	char *attr_values;
};

void assay_test_sha256_hex(const char *text, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)text, strlen(text), md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void assay_test_evidence_spec_init(struct assay_test_evidence_spec *s, const char *tenant_id,
                                   const char *audit_id, const char *client_id,
                                   const char *evidence_id, char sha_buf[65])
{
	memset(s, 0, sizeof(*s));
	s->tenant_id = tenant_id;
	s->audit_id = audit_id;
	s->client_id = client_id;
	s->evidence_id = evidence_id;
	s->source_system = "scanner";
	s->kind = "CONFIGURATION_SCAN";
	assay_test_sha256_hex(evidence_id, sha_buf);
	s->sha256 = sha_buf;
	s->uri = "s3://evidence/artefact";
	s->collected_at_ms = assay_test_wall_ms() - 3600 * 1000;
	s->size_bytes = 4096;
}

static void check(int rc, const char *what)
{
	if (rc != 0)
		fail_msg("%s failed (%d)", what, rc);
}

static void fill_evidence(avro_value_t *v, const struct assay_test_evidence_spec *s)
{
	char id[ASSAY_UUID_LEN];
	avro_value_t arr, map, elem;

	avro_value_reset(v);
	if (s->event_id == NULL)
		check(assay_uuid_random(id), "uuid");
	check(assay_value_set_string(v, "event_id", s->event_id ? s->event_id : id), "event_id");
	check(assay_value_set_string(v, "tenant_id", s->tenant_id), "tenant_id");
	check(assay_value_set_long(v, "occurred_at", assay_test_wall_ms()), "occurred_at");
	check(assay_value_set_string(v, "audit_id", s->audit_id), "audit_id");
	check(assay_value_set_string(v, "client_id", s->client_id), "client_id");
	check(assay_value_set_string(v, "evidence_id", s->evidence_id), "evidence_id");
	check(assay_value_set_string(v, "source_system", s->source_system), "source_system");
	check(assay_value_set_enum(v, "kind", s->kind ? s->kind : "OTHER"), "kind");
	check(assay_value_set_long(v, "collected_at", s->collected_at_ms), "collected_at");
	check(assay_value_set_string(v, "sha256", s->sha256), "sha256");
	check(assay_value_set_long(v, "size_bytes", s->size_bytes), "size_bytes");
	check(assay_value_set_string(v, "uri", s->uri), "uri");
	check(assay_value_field(v, "claimed_controls", AVRO_ARRAY, &arr), "claimed_controls");
	for (size_t i = 0; i < s->ncontrols; i++) {
		check(avro_value_append(&arr, &elem, NULL), "append");
		check(avro_value_set_string(&elem, s->controls[i]), "control");
	}
	check(assay_value_field(v, "attributes", AVRO_MAP, &map), "attributes");
	for (size_t i = 0; i < s->nattrs; i++) {
		check(avro_value_add(&map, s->attr_keys[i], &elem, NULL, NULL), "map add");
		check(avro_value_set_string(&elem, s->attr_values[i]), "attribute");
	}
}

static void encode(struct assay_codec *codec, const struct assay_schema *s, avro_value_t *v,
                   void **buf, size_t *len)
{
	char errstr[512];

	if (assay_codec_encode(codec, s, v, buf, len, errstr, sizeof(errstr)) != 0)
		fail_msg("encode %s: %s", s->full_name, errstr);
}

static const struct assay_schema *schema(struct assay_codec *codec, const char *name)
{
	const struct assay_schema *s;
	char errstr[512];

	if (assay_codec_schema_by_name(codec, name, &s, errstr, sizeof(errstr)) != 0)
		fail_msg("schema %s: %s", name, errstr);
	return s;
}

void assay_test_evidence_encode(struct assay_codec *codec, const struct assay_test_evidence_spec *s,
                                void **buf, size_t *len)
{
	const struct assay_schema *sc = schema(codec, "org.assay.v1.EvidenceSubmitted");
	avro_value_t v;

	check(assay_codec_value_new(sc, &v), "value");
	fill_evidence(&v, s);
	encode(codec, sc, &v, buf, len);
	avro_value_decref(&v);
}

/* Common head of the audit events. */
static void audit_head(avro_value_t *v, const char *tenant_id, const char *audit_id,
                       const char *client_id)
{
	char id[ASSAY_UUID_LEN], cmd[ASSAY_UUID_LEN];

	check(assay_uuid_random(id), "uuid");
	check(assay_uuid_random(cmd), "uuid");
	check(assay_value_set_string(v, "event_id", id), "event_id");
	check(assay_value_set_string(v, "tenant_id", tenant_id), "tenant_id");
	check(assay_value_set_long(v, "occurred_at", assay_test_wall_ms()), "occurred_at");
	check(assay_value_set_string(v, "command_id", cmd), "command_id");
	check(assay_value_set_string(v, "audit_id", audit_id), "audit_id");
	check(assay_value_set_string(v, "client_id", client_id), "client_id");
}

void assay_test_audit_opened_encode(struct assay_codec *codec, const char *tenant_id,
                                    const char *audit_id, const char *client_id,
                                    const char *const *stds, size_t nstandards, void **buf,
                                    size_t *len)
{
	const struct assay_schema *sc = schema(codec, "org.assay.v1.AuditOpened");
	avro_value_t v, arr, elem, rec;
	int32_t today = (int32_t)(assay_test_wall_ms() / 86400000);

	check(assay_codec_value_new(sc, &v), "value");
	audit_head(&v, tenant_id, audit_id, client_id);
	check(assay_value_set_enum(&v, "audit_type", "STAGE_2"), "audit_type");
	check(assay_value_field(&v, "standards", AVRO_ARRAY, &arr), "standards");
	for (size_t i = 0; i < nstandards; i++) {
		check(avro_value_append(&arr, &elem, NULL), "append");
		check(assay_value_set_enum(&elem, "standard", stds[i]), "standard");
		check(assay_value_set_null_or_string(&elem, "cycle_id", "cycle-1"), "cycle_id");
		check(assay_value_set_string(&elem, "scope_statement", "everything"), "scope");
	}
	check(assay_value_set_int(&v, "planned_start", today), "planned_start");
	check(assay_value_set_int(&v, "planned_end", today + 2), "planned_end");
	check(assay_value_field(&v, "integration", AVRO_RECORD, &rec), "integration");
	/* site_ids, ai_systems and audit_time keep their zero values: empty arrays, zeros and
	 * the null branch of every optional field (whatever fields the schema has today) */
	assay_test_null_unset_unions(&v);
	encode(codec, sc, &v, buf, len);
	avro_value_decref(&v);
}

void assay_test_soa_encode(struct assay_codec *codec, const char *tenant_id, const char *audit_id,
                           const char *client_id, const char *standard, int revision,
                           const char *const *ids, const bool *applicable, size_t n, void **buf,
                           size_t *len)
{
	const struct assay_schema *sc = schema(codec, "org.assay.v1.SoaSubmitted");
	avro_value_t v, arr, elem;
	int napp = 0;

	check(assay_codec_value_new(sc, &v), "value");
	audit_head(&v, tenant_id, audit_id, client_id);
	check(assay_value_set_enum(&v, "standard", standard), "standard");
	check(assay_value_set_string(&v, "soa_version", "v1"), "soa_version");
	check(assay_value_set_int(&v, "revision", revision), "revision");
	check(assay_value_field(&v, "rows", AVRO_ARRAY, &arr), "rows");
	for (size_t i = 0; i < n; i++) {
		check(avro_value_append(&arr, &elem, NULL), "append");
		check(assay_value_set_string(&elem, "control_id", ids[i]), "control_id");
		check(assay_value_set_bool(&elem, "applicable", applicable[i]), "applicable");
		check(assay_value_set_string(&elem, "justification", "risk assessment"), "just");
		napp += applicable[i];
	}
	check(assay_value_set_int(&v, "applicable_count", napp), "applicable_count");
	check(assay_value_set_int(&v, "excluded_count", (int)n - napp), "excluded_count");
	encode(codec, sc, &v, buf, len);
	avro_value_decref(&v);
}

void assay_test_stage_completed_encode(struct assay_codec *codec, const char *tenant_id,
                                       const char *audit_id, const char *client_id,
                                       const char *const *stds, size_t nstandards, void **buf,
                                       size_t *len)
{
	const struct assay_schema *sc = schema(codec, "org.assay.v1.StageCompleted");
	avro_value_t v, arr, elem;
	avro_schema_t es;

	check(assay_codec_value_new(sc, &v), "value");
	audit_head(&v, tenant_id, audit_id, client_id);
	check(assay_value_set_enum(&v, "stage", "STAGE_2"), "stage");
	check(assay_value_set_int(&v, "last_day", (int32_t)(assay_test_wall_ms() / 86400000)),
	      "last_day");
	check(assay_value_field(&v, "standards", AVRO_ARRAY, &arr), "standards");
	es = avro_schema_array_items(avro_value_get_schema(&arr));
	for (size_t i = 0; i < nstandards; i++) {
		check(avro_value_append(&arr, &elem, NULL), "append");
		check(avro_value_set_enum(&elem, avro_schema_enum_get_by_name(es, stds[i])),
		      "standard");
	}
	encode(codec, sc, &v, buf, len);
	avro_value_decref(&v);
}

/* ---- the generator ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct assay_test_evidence *g = opaque;

	(void)rk;
	if (m->err)
		g->failed++;
	else
		g->delivered++;
}

struct assay_test_evidence *assay_test_evidence_new(const struct assay_test_evidence_config *cfg)
{
	static const char *const conf[] = {"linger.ms",
	                                   "10",
	                                   "enable.idempotence",
	                                   "true",
	                                   "queue.buffering.max.messages",
	                                   "200000",
	                                   "batch.num.messages",
	                                   "10000",
	                                   NULL};
	struct assay_test_evidence *g = calloc(1, sizeof(*g));
	char errstr[512];
	PGconn *conn = NULL;

	assert_non_null(g);
	g->cfg = *cfg;
	if (g->cfg.clients < 1)
		g->cfg.clients = 1;
	if (g->cfg.audits < 1)
		g->cfg.audits = 1;
	if (g->cfg.attributes <= 0)
		g->cfg.attributes = 2;
	snprintf(g->tenant, sizeof(g->tenant), "%s", cfg->tenant_id ? cfg->tenant_id : "cb-gen");
	g->reg = assay_registry_pg_new(cfg->pg_url, errstr, sizeof(errstr));
	if (g->reg == NULL)
		fail_msg("registry: %s", errstr);
	g->codec = assay_codec_new(g->reg, 0, errstr, sizeof(errstr));
	if (g->codec == NULL || assay_codec_register_embedded(g->codec, errstr, sizeof(errstr)))
		fail_msg("codec: %s", errstr);
	if (assay_pg_connect(cfg->pg_url, &conn, errstr, sizeof(errstr)) ||
	    assay_catalog_load(conn, &g->catalog, errstr, sizeof(errstr)))
		fail_msg("catalog: %s", errstr);
	PQfinish(conn);
	for (int s = 0; s < NSTANDARDS; s++) {
		size_t n = assay_catalog_count(g->catalog, standards[s], true);

		assert_true(n >= 3);
		g->ids[s] = calloc(n, sizeof(*g->ids[s]));
		g->refs[s] = calloc(n, sizeof(*g->refs[s]));
		assert_non_null(g->ids[s]);
		assert_non_null(g->refs[s]);
		for (size_t i = 0; i < n; i++) {
			const struct assay_control *c =
			        assay_catalog_at(g->catalog, standards[s], true, i);
			size_t len = strlen(families[s]) + strlen(c->id) + 2;

			g->ids[s][i] = c->id;
			g->refs[s][i] = malloc(len);
			assert_non_null(g->refs[s][i]);
			snprintf(g->refs[s][i], len, "%s:%s", families[s], c->id);
		}
		g->nids[s] = n;
	}
	g->s_submitted = schema(g->codec, "org.assay.v1.EvidenceSubmitted");
	check(assay_codec_value_new(g->s_submitted, &g->v_submitted), "value");
	g->rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, g, on_delivery);
	return g;
}

void assay_test_evidence_destroy(struct assay_test_evidence *g)
{
	if (g == NULL)
		return;
	rd_kafka_flush(g->rk, 30000);
	rd_kafka_destroy(g->rk);
	avro_value_decref(&g->v_submitted);
	for (int s = 0; s < NSTANDARDS; s++) {
		for (size_t i = 0; i < g->nids[s]; i++)
			free(g->refs[s][i]);
		free(g->refs[s]);
		free(g->ids[s]);
	}
	assay_catalog_destroy(g->catalog);
	assay_codec_destroy(g->codec);
	assay_registry_destroy(g->reg);
	free(g);
}

struct assay_codec *assay_test_evidence_codec(struct assay_test_evidence *g)
{
	return g->codec;
}

static void produce(struct assay_test_evidence *g, const char *topic, const char *key,
                    const void *value, size_t len, int64_t ts, const char *trace)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		if (trace)
			err = rd_kafka_producev(
			        g->rk, RD_KAFKA_V_TOPIC(topic),
			        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
			        RD_KAFKA_V_VALUE((void *)value, len),
			        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
			        RD_KAFKA_V_HEADER("trace_id", trace, -1), RD_KAFKA_V_END);
		else
			err = rd_kafka_producev(g->rk, RD_KAFKA_V_TOPIC(topic),
			                        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
			                        RD_KAFKA_V_VALUE((void *)value, len),
			                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			                        RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(g->rk, 5);
	}
	if (err)
		fail_msg("produce to %s: %s", topic, rd_kafka_err2str(err));
	rd_kafka_poll(g->rk, 0);
}

static void wait_delivered(struct assay_test_evidence *g)
{
	if (rd_kafka_flush(g->rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		fail_msg("flush timed out");
	if (g->failed)
		fail_msg("%ld messages not delivered", g->failed);
}

void assay_test_evidence_send(struct assay_test_evidence *g, const char *topic, const char *key,
                              const void *value, size_t len)
{
	produce(g, topic, key, value, len, assay_test_wall_ms(), NULL);
	wait_delivered(g);
}

void assay_test_evidence_audits(struct assay_test_evidence *g)
{
	for (int k = 0; k < g->cfg.audits; k++) {
		char audit[32], client[32];
		void *buf;
		size_t len;

		snprintf(audit, sizeof(audit), "audit-%d", k);
		snprintf(client, sizeof(client), "client-%d", k % g->cfg.clients);
		assay_test_audit_opened_encode(g->codec, g->tenant, audit, client, standards,
		                               NSTANDARDS, &buf, &len);
		produce(g, g->cfg.audit_topic, audit, buf, len, assay_test_wall_ms(), NULL);
		free(buf);
		for (int s = 0; s < NSTANDARDS; s++) {
			bool *app = calloc(g->nids[s], sizeof(*app));

			assert_non_null(app);
			for (size_t i = 0; i + 1 < g->nids[s]; i++)
				app[i] = true; /* the last control is excluded */
			assay_test_soa_encode(g->codec, g->tenant, audit, client, standards[s], 1,
			                      g->ids[s], app, g->nids[s], &buf, &len);
			produce(g, g->cfg.audit_topic, audit, buf, len, assay_test_wall_ms(), NULL);
			free(buf);
			free(app);
		}
	}
	wait_delivered(g);
}

static long invalid_period(const struct assay_test_evidence *g)
{
	if (g->cfg.invalid_share <= 0)
		return 0;
	if (g->cfg.invalid_share >= 1)
		return 1;
	return (long)(1.0 / g->cfg.invalid_share + 0.5);
}

bool assay_test_evidence_is_invalid(const struct assay_test_evidence *g, long seq)
{
	long p = invalid_period(g);

	return p > 0 && seq % p == p - 1;
}

long assay_test_evidence_produce(struct assay_test_evidence *g, long first, long count,
                                 int64_t *sent_ms)
{
	static const char *const keys[] = {
	        "host", "scanner_version", "region", "owner", "ticket", "env", "os", "zone"};
	const char *values[8] = {"db-17.internal", "4.2.1", "eu-west-1", "secops",
	                         "CHG-1042",       "prod",  "linux",     "a"};
	long p = invalid_period(g), invalid = 0;
	int64_t t0 = assay_test_wall_ms();
	size_t nattrs = (size_t)(g->cfg.attributes > 8 ? 8 : g->cfg.attributes);

	for (long i = 0; i < count; i++) {
		long seq = first + i;
		char audit[32], client[32], evidence[32], sha[65], trace[40], uri[128];
		const char *controls[3];
		struct assay_test_evidence_spec s;
		size_t n27 = g->nids[0] - 1, n42 = g->nids[1] - 1; /* the last is excluded */
		size_t a = (size_t)seq % n27, b = (a + 1 + (size_t)seq % (n27 - 1)) % n27;
		int k = (int)(seq % g->cfg.audits);
		int64_t now;
		void *buf;
		size_t len;

		snprintf(audit, sizeof(audit), "audit-%d", k);
		snprintf(client, sizeof(client), "client-%d", k % g->cfg.clients);
		snprintf(evidence, sizeof(evidence), "ev-%ld", seq);
		snprintf(trace, sizeof(trace), "gen-%ld", seq);
		snprintf(uri, sizeof(uri), "s3://evidence/%s/ev-%ld", g->tenant, seq);
		assay_test_evidence_spec_init(&s, g->tenant, audit, client, evidence, sha);
		s.event_id = NULL;
		s.uri = uri;
		s.size_bytes = 1000 + seq % 100000;
		controls[0] = g->refs[0][a];
		controls[1] = g->refs[0][b];
		controls[2] = g->refs[1][(size_t)seq % n42];
		s.controls = controls;
		s.ncontrols = 3;
		s.attr_keys = keys;
		s.attr_values = values;
		s.nattrs = nattrs;
		if (p > 0 && seq % p == p - 1) {
			switch ((seq / p) % 5) {
			case 0:
				sha[0] = 'G'; /* BAD_HASH */
				break;
			case 1:
				s.collected_at_ms =
				        assay_test_wall_ms() + 86400000; /* FUTURE_DATED */
				break;
			case 2:
				controls[1] = "ISO27001:A.99.9"; /* UNKNOWN_CONTROL */
				break;
			case 3:
				s.audit_id = "audit-unknown"; /* UNKNOWN_AUDIT */
				break;
			default:
				controls[0] = g->refs[0][n27]; /* EXCLUDED_IN_SOA */
				break;
			}
			invalid++;
		}
		if (g->cfg.rate > 0) {
			int64_t due = t0 + (int64_t)((double)i * 1000.0 / g->cfg.rate);

			while ((now = assay_test_wall_ms()) < due) {
				rd_kafka_poll(g->rk, 0);
				usleep((useconds_t)((due - now) * 1000 > 2000
				                            ? 2000
				                            : (due - now) * 1000));
			}
		}
		fill_evidence(&g->v_submitted, &s);
		encode(g->codec, g->s_submitted, &g->v_submitted, &buf, &len);
		now = assay_test_wall_ms();
		if (sent_ms)
			sent_ms[i] = now;
		produce(g, g->cfg.evidence_topic, s.audit_id, buf, len, now, trace);
		free(buf);
	}
	wait_delivered(g);
	return invalid;
}
