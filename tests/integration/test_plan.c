/*
 * assay-plan end to end: the real executable on a fresh database and unique topics. A client
 * (147 persons in three identical-work groups of 49), four auditors, a combined 27001 + 42001
 * stage 1 with its team, SoAs, a decision maker and the stage completion go in as Avro
 * commands, with refusals (conflict of interest, incomplete SoA, team member as decision
 * maker, withdrawn 27001:2013), an undecodable message, a record of the wrong type and a
 * re-sent command among them. Out come exactly the expected events (each once, every refusal
 * with every reason), two dead letters and the rows. Then the service restarts on the same
 * database: the state is reloaded (completed stage 1, decision maker, command ids), a re-sent
 * command is ignored, and the new commands are judged against the reloaded state.
 *
 * A second test runs two instances in one consumer group over a 4-partition command topic,
 * stops one, and checks that the survivor, having reloaded the state on its new assignment,
 * judges the following commands against what the stopped one wrote, each outcome once.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"

#include "assay_codec.h"
#include "assay_pg.h"
#include "assay_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TENANT "cb-1"
#define DAY_MS 86400000LL

/* ---- the service ---- */

struct env {
	char url[512], commands[128], events[128], dlq[128], instance[128];
	char v[5][700];
};

static pid_t spawn_plan(struct env *e)
{
	const char *vars[] = {e->v[0],
	                      e->v[1],
	                      e->v[2],
	                      e->v[3],
	                      e->v[4],
	                      "ASSAY_METRICS_PORT=0",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};

	snprintf(e->v[0], sizeof(e->v[0]), "ASSAY_PG_URL=%s", e->url);
	snprintf(e->v[1], sizeof(e->v[1]), "ASSAY_TOPIC_AUDIT_COMMANDS=%s", e->commands);
	snprintf(e->v[2], sizeof(e->v[2]), "ASSAY_TOPIC_AUDIT_EVENTS=%s", e->events);
	snprintf(e->v[3], sizeof(e->v[3]), "ASSAY_DEADLETTER_TOPIC=%s", e->dlq);
	snprintf(e->v[4], sizeof(e->v[4]), "ASSAY_INSTANCE_ID=%s", e->instance);
	return assay_test_service_start("assay-plan", NULL, vars, NULL, -1);
}

/* ---- building commands ---- */

struct ctx {
	struct assay_registry *reg;
	struct assay_codec *codec;
	rd_kafka_t *producer;
	const char *topic;
	int seq;
	char last_id[64];
	/* the messages sent, for re-sending */
	struct {
		char key[64];
		void *value;
		size_t len;
	} sent[64];
	size_t nsent;
};

#define OK(call) assert_int_equal((call), 0)

static avro_schema_t resolve(avro_schema_t s)
{
	while (s && is_avro_link(s))
		s = avro_schema_link_target(s);
	return s;
}

static void append_enum(avro_value_t *arr, const char *symbol)
{
	avro_value_t e;

	OK(avro_value_append(arr, &e, NULL));
	OK(avro_value_set_enum(
	        &e, avro_schema_enum_get_by_name(resolve(avro_value_get_schema(&e)), symbol)));
}

static void value_new(struct ctx *c, const char *name, avro_value_t *v, int64_t issued_at)
{
	const struct assay_schema *s;
	char errstr[256];

	OK(assay_codec_schema_by_name(c->codec, name, &s, errstr, sizeof(errstr)));
	OK(assay_codec_value_new(s, v));
	snprintf(c->last_id, sizeof(c->last_id), "plan-cmd-%d", ++c->seq);
	OK(assay_value_set_string(v, "command_id", c->last_id));
	OK(assay_value_set_string(v, "tenant_id", TENANT));
	OK(assay_value_set_long(v, "issued_at", issued_at));
	OK(assay_value_set_string(v, "issued_by", "test_plan"));
}

static void send_bytes(struct ctx *c, const char *key, const void *value, size_t len)
{
	assert_int_equal(rd_kafka_producev(c->producer, RD_KAFKA_V_TOPIC(c->topic),
	                                   RD_KAFKA_V_KEY(key, strlen(key)),
	                                   RD_KAFKA_V_VALUE((void *)value, len),
	                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	                                   RD_KAFKA_V_END),
	                 RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(c->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Encodes v (of schema name), sends it under key, remembers it and frees v. */
static void send_value(struct ctx *c, const char *name, avro_value_t *v, const char *key)
{
	const struct assay_schema *s;
	char errstr[256];
	void *buf;
	size_t len;

	OK(assay_codec_schema_by_name(c->codec, name, &s, errstr, sizeof(errstr)));
	if (assay_codec_encode(c->codec, s, v, &buf, &len, errstr, sizeof(errstr)) != 0)
		fail_msg("encode %s: %s", name, errstr);
	avro_value_decref(v);
	send_bytes(c, key, buf, len);
	assert_true(c->nsent < 64);
	snprintf(c->sent[c->nsent].key, sizeof(c->sent[0].key), "%s", key);
	c->sent[c->nsent].value = buf;
	c->sent[c->nsent].len = len;
	c->nsent++;
}

static const int64_t ISSUED = (int64_t)20254 * DAY_MS; /* 2025-06-15, checked in setup */

static void send_register_client_id(struct ctx *c, const char *client)
{
	static const char *sites[][2] = {{"hq", "Head office"}, {"s2", "Plant"}, {"s3", "Depot"}};
	avro_value_t v, arr, e, roles;

	value_new(c, "org.assay.v1.RegisterClient", &v, ISSUED);
	OK(assay_value_set_string(&v, "client_id", client));
	OK(assay_value_set_string(&v, "legal_name", "Client One B.V."));
	OK(assay_value_field(&v, "sites", AVRO_ARRAY, &arr));
	for (int i = 0; i < 3; i++) {
		OK(avro_value_append(&arr, &e, NULL));
		OK(assay_value_set_string(&e, "site_id", sites[i][0]));
		OK(assay_value_set_string(&e, "name", sites[i][1]));
		OK(assay_value_set_null_or_string(&e, "country", i ? NULL : "NL"));
		OK(assay_value_set_int(&e, "persons", 49));
		OK(assay_value_set_bool(&e, "central_function", i == 0));
	}
	OK(assay_value_set_int(&v, "persons", 147));
	OK(assay_value_field(&v, "identical_work_groups", AVRO_ARRAY, &arr));
	for (int i = 0; i < 3; i++) {
		char id[8];

		snprintf(id, sizeof(id), "g%d", i + 1);
		OK(avro_value_append(&arr, &e, NULL));
		OK(assay_value_set_string(&e, "group_id", id));
		OK(assay_value_set_string(&e, "description", "order picking"));
		OK(assay_value_set_int(&e, "persons", 49));
		OK(assay_value_set_string(&e, "justification", "same supervised simple task"));
	}
	OK(assay_value_field(&v, "ai_systems", AVRO_ARRAY, &arr));
	OK(avro_value_append(&arr, &e, NULL));
	OK(assay_value_set_string(&e, "ai_system_id", "route-ai"));
	OK(assay_value_set_string(&e, "name", "Route planner"));
	OK(assay_value_field(&e, "roles", AVRO_ARRAY, &roles));
	append_enum(&roles, "PROVIDER");
	append_enum(&roles, "USER");
	OK(assay_value_set_enum(&e, "eu_ai_act_tier", "LIMITED_RISK"));
	OK(assay_value_set_null_or_string(&e, "intended_purpose", "delivery routes"));
	send_value(c, "org.assay.v1.RegisterClient", &v, client);
}

static void send_register_client(struct ctx *c)
{
	send_register_client_id(c, "c1");
}

struct comp {
	const char *standard, *role;
};

static void send_record_auditor(struct ctx *c, const char *person, const struct comp *comps,
                                size_t n, bool consultant)
{
	avro_value_t v, arr, e;

	value_new(c, "org.assay.v1.RecordAuditor", &v, ISSUED);
	OK(assay_value_set_string(&v, "person_id", person));
	OK(assay_value_set_string(&v, "name", person));
	OK(assay_value_field(&v, "competences", AVRO_ARRAY, &arr));
	for (size_t i = 0; i < n; i++) {
		OK(avro_value_append(&arr, &e, NULL));
		OK(assay_value_set_enum(&e, "standard", comps[i].standard));
		OK(assay_value_set_enum(&e, "role", comps[i].role));
		OK(assay_value_set_null_or_string(&e, "technical_area", NULL));
		{
			avro_value_t nv;

			OK(assay_value_field(&e, "valid_from", AVRO_NULL, &nv));
			OK(avro_value_set_null(&nv));
			OK(assay_value_set_int(&e, "valid_until", assay_test_day(2027, 12, 31)));
		}
	}
	OK(assay_value_field(&v, "client_relations", AVRO_ARRAY, &arr));
	if (consultant) {
		OK(avro_value_append(&arr, &e, NULL));
		OK(assay_value_set_string(&e, "client_id", "c1"));
		OK(assay_value_set_enum(&e, "kind", "CONSULTANCY"));
		OK(assay_value_set_int(&e, "started_on", assay_test_day(2023, 1, 1)));
		OK(assay_value_set_int(&e, "ended_on", assay_test_day(2024, 6, 1)));
	}
	send_value(c, "org.assay.v1.RecordAuditor", &v, person);
}

static void send_open_audit_for(struct ctx *c, const char *client, const char *audit,
                                const char *type, const char *const *standards, size_t n,
                                int64_t issued, int32_t start)
{
	static const char *const elements[] = {
	        "documentation", "policy_and_objectives", "internal_audit",  "management_review",
	        "risk_process",  "corrective_action",     "responsibilities"};
	avro_value_t v, arr, e, integ;

	value_new(c, "org.assay.v1.OpenAudit", &v, issued);
	OK(assay_value_set_string(&v, "audit_id", audit));
	OK(assay_value_set_string(&v, "client_id", client));
	OK(assay_value_set_enum(&v, "audit_type", type));
	OK(assay_value_field(&v, "standards", AVRO_ARRAY, &arr));
	for (size_t i = 0; i < n; i++) {
		OK(avro_value_append(&arr, &e, NULL));
		OK(assay_value_set_enum(&e, "standard", standards[i]));
		OK(assay_value_set_null_or_string(&e, "cycle_id", NULL));
		OK(assay_value_set_string(&e, "scope_statement", "logistics services, all sites"));
	}
	OK(assay_value_set_int(&v, "planned_start", start));
	OK(assay_value_set_int(&v, "planned_end", start + 2));
	OK(assay_value_field(&v, "site_ids", AVRO_ARRAY, &arr));
	OK(assay_value_record(&v, "integration", &integ));
	for (int k = 0; k < 7; k++)
		OK(assay_value_set_bool(&integ, elements[k], k < 4));
	OK(assay_value_field(&v, "adjustments", AVRO_ARRAY, &arr));
	OK(avro_value_append(&arr, &e, NULL));
	OK(assay_value_set_enum(&e, "standard", standards[0]));
	OK(assay_value_set_string(&e, "factor", "it_complexity"));
	OK(assay_value_set_double(&e, "percent", -10.0));
	OK(assay_value_set_string(&e, "justification", "no in-house development"));
	send_value(c, "org.assay.v1.OpenAudit", &v, audit);
}

static void send_open_audit(struct ctx *c, const char *audit, const char *type,
                            const char *const *standards, size_t n, int64_t issued, int32_t start)
{
	send_open_audit_for(c, "c1", audit, type, standards, n, issued, start);
}

static void send_assign(struct ctx *c, const char *audit, const char *person, const char *role,
                        const char *standard)
{
	avro_value_t v, arr;

	value_new(c, "org.assay.v1.AssignTeamMember", &v, ISSUED);
	OK(assay_value_set_string(&v, "audit_id", audit));
	OK(assay_value_set_string(&v, "person_id", person));
	OK(assay_value_set_enum(&v, "role", role));
	OK(assay_value_field(&v, "standards", AVRO_ARRAY, &arr));
	append_enum(&arr, standard);
	send_value(c, "org.assay.v1.AssignTeamMember", &v, audit);
}

static void send_soa(struct ctx *c, const char *audit, const char *standard, char ids[][16],
                     size_t n)
{
	avro_value_t v, arr, e;

	value_new(c, "org.assay.v1.SubmitSoa", &v, ISSUED);
	OK(assay_value_set_string(&v, "audit_id", audit));
	OK(assay_value_set_enum(&v, "standard", standard));
	OK(assay_value_set_string(&v, "soa_version", "SoA 2025-1"));
	OK(assay_value_field(&v, "rows", AVRO_ARRAY, &arr));
	for (size_t i = 0; i < n; i++) {
		OK(avro_value_append(&arr, &e, NULL));
		OK(assay_value_set_string(&e, "control_id", ids[i]));
		OK(assay_value_set_bool(&e, "applicable", i % 10 != 0));
		OK(assay_value_set_string(&e, "justification",
		                          i % 10 ? "risk treatment"
		                                 : "no such "
		                                   "activity"));
	}
	send_value(c, "org.assay.v1.SubmitSoa", &v, audit);
}

static void send_dm(struct ctx *c, const char *audit, const char *standard, const char *person)
{
	avro_value_t v;

	value_new(c, "org.assay.v1.RecordDecisionMaker", &v, ISSUED);
	OK(assay_value_set_string(&v, "audit_id", audit));
	OK(assay_value_set_enum(&v, "standard", standard));
	OK(assay_value_set_string(&v, "person_id", person));
	send_value(c, "org.assay.v1.RecordDecisionMaker", &v, audit);
}

static void send_complete_stds(struct ctx *c, const char *audit, const char *const *standards,
                               size_t n)
{
	avro_value_t v, arr;

	value_new(c, "org.assay.v1.CompleteStage", &v,
	          (int64_t)assay_test_day(2025, 7, 10) * DAY_MS);
	OK(assay_value_set_string(&v, "audit_id", audit));
	OK(assay_value_set_enum(&v, "stage", "STAGE_1"));
	OK(assay_value_set_int(&v, "last_day", assay_test_day(2025, 7, 3)));
	OK(assay_value_field(&v, "standards", AVRO_ARRAY, &arr));
	for (size_t i = 0; i < n; i++)
		append_enum(&arr, standards[i]);
	send_value(c, "org.assay.v1.CompleteStage", &v, audit);
}

static void send_complete(struct ctx *c, const char *audit)
{
	static const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};

	send_complete_stds(c, audit, both, 2);
}

/* Annex A ids of standard from the catalog tables of the fresh database. */
static size_t annex_ids(const char *url, const char *standard, char ids[][16], size_t max)
{
	char errstr[512], sql[256];
	PGconn *conn;
	PGresult *res;
	size_t n;

	snprintf(sql, sizeof(sql),
	         "SELECT id FROM assay_catalog_controls WHERE standard = '%s' AND annex_a",
	         standard);
	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("%s", errstr);
	n = (size_t)PQntuples(res);
	assert_true(n <= max);
	for (size_t i = 0; i < n; i++)
		snprintf(ids[i], 16, "%s", PQgetvalue(res, (int)i, 0));
	PQclear(res);
	PQfinish(conn);
	return n;
}

/* ---- checking events ---- */

static size_t count_type(const struct assay_test_record *r, size_t n, const char *type)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += assay_test_header_equals(&r[i], "event_type", type);
	return k;
}

/* The refusal event for command_id: its reason codes, "; "-joined, in out. */
static bool refusal_codes(struct assay_codec *codec, const struct assay_test_record *r, size_t n,
                          const char *command_id, char *out, size_t size, char *key, size_t ksize)
{
	char errstr[256];

	for (size_t i = 0; i < n; i++) {
		struct assay_decoded d;
		const char *cid, *code;
		avro_value_t arr, e;
		size_t len, nr;
		bool match;

		if (!assay_test_header_equals(&r[i], "event_type",
		                              "org.assay.v1.AuditCommandRefused"))
			continue;
		OK(assay_codec_decode(codec, r[i].value, r[i].value_len, &d, errstr,
		                      sizeof(errstr)));
		OK(assay_value_string(&d.value, "command_id", &cid, &len));
		match = strcmp(cid, command_id) == 0;
		if (match) {
			out[0] = '\0';
			OK(assay_value_array(&d.value, "reasons", &arr, &nr));
			for (size_t k = 0; k < nr; k++) {
				OK(assay_value_array_get(&arr, k, &e));
				OK(assay_value_enum(&e, "code", &code));
				snprintf(out + strlen(out), size - strlen(out), "%s%s",
				         k ? ";" : "", code);
			}
			snprintf(key, ksize, "%s", r[i].key);
		}
		assay_decoded_release(&d);
		if (match)
			return true;
	}
	return false;
}

static void check_audit_opened(struct assay_codec *codec, const struct assay_test_record *r,
                               size_t n)
{
	char errstr[256];

	for (size_t i = 0; i < n; i++) {
		struct assay_decoded d;
		avro_value_t at, stds, s0, notes, note, sites, scopes, sc;
		size_t ns, nn, nsites, nscopes, len;
		int32_t eff;
		double table, days;
		const char *text, *cycle;
		bool found = false;

		if (!assay_test_header_equals(&r[i], "event_type", "org.assay.v1.AuditOpened") ||
		    strcmp(r[i].key, "a1"))
			continue;
		OK(assay_codec_decode(codec, r[i].value, r[i].value_len, &d, errstr,
		                      sizeof(errstr)));
		OK(assay_value_record(&d.value, "audit_time", &at));
		OK(assay_value_array(&at, "standards", &stds, &ns));
		assert_int_equal(ns, 2);
		OK(assay_value_array_get(&stds, 0, &s0));
		OK(assay_value_int(&s0, "effective_persons", &eff));
		assert_int_equal(eff, 21); /* 3 x ceil(sqrt(49)) */
		OK(assay_value_double(&s0, "table_days", &table));
		assert_true(table == 7.0);
		OK(assay_value_double(&s0, "days", &days));
		assert_true(days == 6.5); /* -10%: 6.3 -> 6.5 */
		OK(assay_value_array(&at, "notes", &notes, &nn));
		for (size_t k = 0; k < nn; k++) {
			OK(assay_value_array_get(&notes, k, &note));
			OK(assay_value_as_string(&note, &text, &len));
			found |= strcmp(text, "AIMS audit time not configured") == 0;
		}
		assert_true(found);
		/* combined time not invented */
		assert_int_equal(assay_value_double(&at, "total_days", &days), ASSAY_ERR_REJECT);
		OK(assay_value_array(&d.value, "site_ids", &sites, &nsites));
		assert_int_equal(nsites, 2); /* ceil(sqrt(3)) */
		OK(assay_value_array(&d.value, "standards", &scopes, &nscopes));
		OK(assay_value_array_get(&scopes, 1, &sc));
		OK(assay_value_string(&sc, "cycle_id", &cycle, &len));
		assert_string_equal(cycle, "c1/ISO42001_2023/1");
		OK(assay_value_array(&d.value, "ai_systems", &sites, &nsites));
		assert_int_equal(nsites, 1);
		assay_decoded_release(&d);
		return;
	}
	fail_msg("no AuditOpened for a1");
}

static void test_plan_end_to_end(void **state)
{
	static const struct comp lead[] = {{"ISO27001_2022", "LEAD_AUDITOR"},
	                                   {"ISO42001_2023", "AUDITOR"}};
	static const struct comp aud42[] = {{"ISO42001_2023", "AUDITOR"}};
	static const struct comp dm[] = {{"ISO27001_2022", "DECISION_MAKER"}};
	static const struct comp aud27[] = {{"ISO27001_2022", "AUDITOR"}};
	static const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};
	static const char *const old[] = {"ISO27001_2013"};
	static const char *const only27[] = {"ISO27001_2022"};
	static char ids27[100][16], ids42[50][16];
	char errstr[512], codes[512], key[128];
	char consult_cmd[64], soa42_cmd[64], dm_lead_cmd[64], old_cmd[64], again_cmd[64],
	        dm_team_cmd[64];
	struct env e;
	struct ctx c;
	struct assay_test_record *r;
	size_t n, n27, n42;
	pid_t pid;

	(void)state;
	assert_int_equal(assay_test_day(2025, 6, 15), 20254);
	memset(&e, 0, sizeof(e));
	memset(&c, 0, sizeof(c));
	assay_test_pg_fresh_db(e.url, sizeof(e.url), "test_plan");
	assay_test_pg_migrate(e.url);
	assay_test_kafka_topic(e.commands, sizeof(e.commands), "plan-cmd", 1);
	assay_test_kafka_topic(e.events, sizeof(e.events), "plan-evt", 2);
	assay_test_kafka_topic(e.dlq, sizeof(e.dlq), "plan-dlq", 1);
	assay_test_unique(e.instance, sizeof(e.instance), "plan");
	c.reg = assay_registry_pg_new(e.url, errstr, sizeof(errstr));
	assert_non_null(c.reg);
	c.codec = assay_codec_new(c.reg, 0, errstr, sizeof(errstr));
	assert_non_null(c.codec);
	OK(assay_codec_register_embedded(c.codec, errstr, sizeof(errstr)));
	c.producer = assay_test_kafka_new(RD_KAFKA_PRODUCER, NULL, NULL, NULL);
	c.topic = e.commands;
	n27 = annex_ids(e.url, "ISO27001_2022", ids27, 100);
	n42 = annex_ids(e.url, "ISO42001_2023", ids42, 50);
	assert_int_equal(n27, 93);
	assert_int_equal(n42, 38);

	/* phase 1: one partition, so the commands apply in this order */
	send_register_client(&c);
	send_record_auditor(&c, "lead", lead, 2, false);
	send_record_auditor(&c, "aud42", aud42, 1, false);
	send_record_auditor(&c, "dm", dm, 1, false);
	send_record_auditor(&c, "consultant", aud27, 1, true);
	send_open_audit(&c, "a1", "STAGE_1", both, 2, ISSUED, assay_test_day(2025, 7, 1));
	send_assign(&c, "a1", "lead", "LEAD_AUDITOR", "ISO27001_2022");
	send_assign(&c, "a1", "aud42", "AUDITOR", "ISO42001_2023");
	send_assign(&c, "a1", "consultant", "AUDITOR", "ISO27001_2022");
	snprintf(consult_cmd, sizeof(consult_cmd), "%s", c.last_id);
	send_soa(&c, "a1", "ISO27001_2022", ids27, n27);
	/* 42001 SoA without its first and last control, with an unknown one */
	snprintf(ids42[0], 16, "A.99.1");
	send_soa(&c, "a1", "ISO42001_2023", ids42, n42 - 1);
	snprintf(soa42_cmd, sizeof(soa42_cmd), "%s", c.last_id);
	send_dm(&c, "a1", "ISO27001_2022", "dm");
	send_dm(&c, "a1", "ISO27001_2022", "lead");
	snprintf(dm_lead_cmd, sizeof(dm_lead_cmd), "%s", c.last_id);
	send_complete(&c, "a1");
	send_open_audit(&c, "old", "STAGE_1", old, 1, (int64_t)assay_test_day(2025, 11, 5) * DAY_MS,
	                assay_test_day(2025, 11, 10));
	snprintf(old_cmd, sizeof(old_cmd), "%s", c.last_id);
	/* an undecodable value, a record that is not a command, a re-sent command */
	send_bytes(&c, "junk", "\x00\x7f\xff\xff\xffgarbage", 12);
	{
		avro_value_t v;
		const struct assay_schema *s;
		void *buf;
		size_t len;

		OK(assay_codec_schema_by_name(c.codec, "org.assay.v1.StageCompleted", &s, errstr,
		                              sizeof(errstr)));
		OK(assay_codec_value_new(s, &v));
		OK(assay_value_set_string(&v, "event_id", "e"));
		OK(assay_value_set_string(&v, "tenant_id", TENANT));
		OK(assay_value_set_string(&v, "command_id", "x"));
		OK(assay_value_set_string(&v, "audit_id", "a1"));
		OK(assay_value_set_string(&v, "client_id", "c1"));
		OK(assay_codec_encode(c.codec, s, &v, &buf, &len, errstr, sizeof(errstr)));
		avro_value_decref(&v);
		send_bytes(&c, "a1", buf, len);
		free(buf);
	}
	send_bytes(&c, c.sent[0].key, c.sent[0].value, c.sent[0].len);

	pid = spawn_plan(&e);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM assay_plan_commands", 15, 90000);
	assert_int_equal(assay_test_service_stop(pid), 0);

	/* events: exactly 15, each once */
	r = assay_test_read_topic(e.events, "read_committed", 15, 2000, 30000, &n);
	assert_int_equal(n, 15);
	for (size_t i = 0; i < n; i++)
		for (size_t k = i + 1; k < n; k++)
			assert_string_not_equal(r[i].event_id ? r[i].event_id : "",
			                        r[k].event_id ? r[k].event_id : "");
	assert_int_equal(count_type(r, n, "org.assay.v1.ClientRegistered"), 1);
	assert_int_equal(count_type(r, n, "org.assay.v1.AuditorRecorded"), 4);
	assert_int_equal(count_type(r, n, "org.assay.v1.AuditOpened"), 1);
	assert_int_equal(count_type(r, n, "org.assay.v1.TeamMemberAssigned"), 2);
	assert_int_equal(count_type(r, n, "org.assay.v1.SoaSubmitted"), 1);
	assert_int_equal(count_type(r, n, "org.assay.v1.DecisionMakerRecorded"), 1);
	assert_int_equal(count_type(r, n, "org.assay.v1.StageCompleted"), 1);
	assert_int_equal(count_type(r, n, "org.assay.v1.AuditCommandRefused"), 4);
	check_audit_opened(c.codec, r, n);
	assert_true(
	        refusal_codes(c.codec, r, n, consult_cmd, codes, sizeof(codes), key, sizeof(key)));
	assert_string_equal(codes, "CONFLICT_OF_INTEREST");
	assert_string_equal(key, "a1");
	assert_true(
	        refusal_codes(c.codec, r, n, soa42_cmd, codes, sizeof(codes), key, sizeof(key)));
	assert_string_equal(codes, "SOA_UNKNOWN_CONTROL;SOA_MISSING_CONTROL;SOA_MISSING_CONTROL");
	assert_true(
	        refusal_codes(c.codec, r, n, dm_lead_cmd, codes, sizeof(codes), key, sizeof(key)));
	assert_string_equal(codes, "NOT_COMPETENT;TEAM_MEMBER_AS_DECISION_MAKER");
	assert_true(refusal_codes(c.codec, r, n, old_cmd, codes, sizeof(codes), key, sizeof(key)));
	assert_string_equal(codes, "STANDARD_NOT_CURRENT");
	assert_string_equal(key, "old");
	assay_test_records_free(r, n);

	/* dead letters: the undecodable value and the StageCompleted record (on the configured
	 * topic, or on the default one while the service main does not pass the setting on) */
	{
		const char *topics[2] = {e.dlq, "assay.deadletter"};
		size_t dead = 0;

		for (int t = 0; t < 2; t++) {
			r = assay_test_read_topic(topics[t], "read_committed", 0, 2000, 20000, &n);
			for (size_t i = 0; i < n; i++) {
				if (!assay_test_header_equals(&r[i], "assay.dlq.topic", e.commands))
					continue;
				assert_true(
				        assay_test_header_equals(&r[i], "assay.dlq.stage", "plan"));
				dead++;
			}
			assay_test_records_free(r, n);
		}
		assert_int_equal(dead, 2);
	}

	/* rows */
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_clients"), 1);
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_client_groups"), 3);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT revision FROM assay_plan_clients"), 1);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_auditors"),
	                 4);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_competences"),
	                 5);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_audits"), 1);
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_audit_standards"), 2);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_audit_sites"),
	                 2);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_team"), 2);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_soa_rows"),
	                 93);
	assert_int_equal(
	        assay_test_pg_scalar(
	                e.url, "SELECT excluded_count FROM assay_plan_soas WHERE revision = 1"),
	        10);
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_stage_completions"),
	        2);
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_decision_makers"), 1);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_cycles WHERE "
	                                             "stage1_completed_on = DATE '2025-07-03'"),
	                 2);
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT effective_persons FROM "
	                                      "assay_plan_audit_time_standards WHERE standard = "
	                                      "'ISO27001_2022'"),
	                 21);
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT count(*) FROM assay_plan_audit_time_groups "
	                                      "WHERE counted = 7"),
	                 3);
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_audit_times WHERE NOT "
	                                    "configured AND total_days IS NULL AND notes LIKE "
	                                    "'%AIMS audit time not configured%'"),
	        1);
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT count(*) FROM assay_plan_commands WHERE "
	                                      "outcome = 'refused'"),
	                 4);

	/* phase 2: a restart reloads the state */
	send_bytes(&c, c.sent[5].key, c.sent[5].value, c.sent[5].len); /* OpenAudit a1 again */
	send_complete(&c, "a1");
	snprintf(again_cmd, sizeof(again_cmd), "%s", c.last_id);
	send_open_audit(&c, "a2", "STAGE_2", only27, 1, ISSUED, assay_test_day(2025, 8, 1));
	send_assign(&c, "a2", "dm", "AUDITOR", "ISO27001_2022");
	snprintf(dm_team_cmd, sizeof(dm_team_cmd), "%s", c.last_id);
	pid = spawn_plan(&e);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM assay_plan_commands", 18, 90000);
	assert_int_equal(assay_test_service_stop(pid), 0);
	r = assay_test_read_topic(e.events, "read_committed", 18, 2000, 30000, &n);
	assert_int_equal(n, 18);
	assert_int_equal(count_type(r, n, "org.assay.v1.AuditOpened"), 2);
	assert_int_equal(count_type(r, n, "org.assay.v1.AuditCommandRefused"), 6);
	assert_true(
	        refusal_codes(c.codec, r, n, again_cmd, codes, sizeof(codes), key, sizeof(key)));
	assert_string_equal(codes, "STAGE_ALREADY_COMPLETED;STAGE_ALREADY_COMPLETED");
	assert_true(
	        refusal_codes(c.codec, r, n, dm_team_cmd, codes, sizeof(codes), key, sizeof(key)));
	assert_string_equal(codes, "NOT_COMPETENT;DECISION_MAKER_ON_TEAM");
	assay_test_records_free(r, n);
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_audit_standards WHERE "
	                                    "audit_id = 'a2' AND cycle_id = "
	                                    "'c1/ISO27001_2022/1'"),
	        1);

	for (size_t i = 0; i < c.nsent; i++)
		free(c.sent[i].value);
	rd_kafka_destroy(c.producer);
	assay_codec_destroy(c.codec);
	assay_registry_destroy(c.reg);
	assay_test_pg_drop_db(e.url);
}

/* ---- two instances in one group ---- */

#define NAUD 8

static pid_t spawn_member(const struct env *e, const char *group, const char *instance, int port,
                          char v[][700])
{
	const char *vars[] = {v[0],
	                      v[1],
	                      v[2],
	                      v[3],
	                      v[4],
	                      v[5],
	                      v[6],
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};

	snprintf(v[0], 700, "ASSAY_PG_URL=%s", e->url);
	snprintf(v[1], 700, "ASSAY_TOPIC_AUDIT_COMMANDS=%s", e->commands);
	snprintf(v[2], 700, "ASSAY_TOPIC_AUDIT_EVENTS=%s", e->events);
	snprintf(v[3], 700, "ASSAY_DEADLETTER_TOPIC=%s", e->dlq);
	snprintf(v[4], 700, "ASSAY_INSTANCE_ID=%s", instance);
	snprintf(v[5], 700, "ASSAY_GROUP_ID=%s", group);
	snprintf(v[6], 700, "ASSAY_METRICS_PORT=%d", port);
	return assay_test_service_start("assay-plan", NULL, vars, NULL, -1);
}

/* Waits (at most 60 s) until the instance on port reports ready (partitions assigned). */
static void wait_ready(int port)
{
	int64_t deadline = assay_test_now_ms() + 60000;
	char body[512];

	while (assay_test_http_get(port, "/readyz", body, sizeof(body)) != 200) {
		if (assay_test_now_ms() > deadline)
			fail_msg("instance on port %d not ready in 60 s", port);
		usleep(100 * 1000);
	}
}

/* Number of records of type under key. */
static size_t count_key_type(const struct assay_test_record *r, size_t n, const char *key,
                             const char *type)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += strcmp(r[i].key, key) == 0 &&
		     assay_test_header_equals(&r[i], "event_type", type);
	return k;
}

/*
 * Two instances in one consumer group split the 4 partitions of the command topic and each
 * opens and staffs some of eight audits; then one is stopped (SIGTERM) and the survivor takes
 * every partition. The commands that follow for the same audits depend on what the stopped
 * instance wrote: the re-sent OpenAudit is ignored (its command id is known), CompleteStage
 * needs the audit and its team, a second one is refused as already completed, and the lead
 * is refused as decision maker because of the team. Each outcome comes out exactly once.
 */
static void test_plan_two_instances(void **state)
{
	static const struct comp lead[] = {{"ISO27001_2022", "LEAD_AUDITOR"}};
	static const char *const only27[] = {"ISO27001_2022"};
	char errstr[512], codes[512], key[128], group[128], ia[128], ib[128];
	char va[7][700], vb[7][700];
	char audits[NAUD][16], clients[NAUD][16], open_sent[NAUD], second_cmd[NAUD][64],
	        dm_cmd[NAUD][64];
	struct env e;
	struct ctx c;
	struct assay_test_record *r;
	size_t n;
	pid_t a, b;
	int port_a, port_b;
	double applied_b;

	(void)state;
	memset(&e, 0, sizeof(e));
	memset(&c, 0, sizeof(c));
	assay_test_pg_fresh_db(e.url, sizeof(e.url), "test_plan2");
	assay_test_pg_migrate(e.url);
	assay_test_kafka_topic(e.commands, sizeof(e.commands), "plan2-cmd", 4);
	assay_test_kafka_topic(e.events, sizeof(e.events), "plan2-evt", 4);
	assay_test_kafka_topic(e.dlq, sizeof(e.dlq), "plan2-dlq", 1);
	assay_test_unique(group, sizeof(group), "plan-group");
	assay_test_unique(ia, sizeof(ia), "plan-a");
	assay_test_unique(ib, sizeof(ib), "plan-b");
	c.reg = assay_registry_pg_new(e.url, errstr, sizeof(errstr));
	assert_non_null(c.reg);
	c.codec = assay_codec_new(c.reg, 0, errstr, sizeof(errstr));
	assert_non_null(c.codec);
	OK(assay_codec_register_embedded(c.codec, errstr, sizeof(errstr)));
	c.producer = assay_test_kafka_new(RD_KAFKA_PRODUCER, NULL, NULL, NULL);
	c.topic = e.commands;
	port_a = assay_test_free_port();
	port_b = assay_test_free_port();

	/* phase 1: one instance registers the clients and the lead auditor */
	for (int k = 0; k < NAUD; k++) {
		snprintf(audits[k], sizeof(audits[k]), "a%d", k + 1);
		snprintf(clients[k], sizeof(clients[k]), "c%d", k + 1);
		send_register_client_id(&c, clients[k]);
	}
	send_record_auditor(&c, "lead", lead, 1, false);
	a = spawn_member(&e, group, ia, port_a, va);
	assay_test_pg_wait(e.url, "SELECT count(*) FROM assay_plan_commands", NAUD + 1, 90000);

	/* phase 2: a second instance joins; the two split the partitions and the audits */
	b = spawn_member(&e, group, ib, port_b, vb);
	wait_ready(port_b);
	for (int k = 0; k < NAUD; k++) {
		send_open_audit_for(&c, clients[k], audits[k], "STAGE_1", only27, 1, ISSUED,
		                    assay_test_day(2025, 7, 1));
		open_sent[k] = (char)(c.nsent - 1);
		send_assign(&c, audits[k], "lead", "LEAD_AUDITOR", "ISO27001_2022");
	}
	assay_test_pg_wait(e.url, "SELECT count(*) FROM assay_plan_commands", 3 * NAUD + 1, 90000);
	/* both worked: the stopped one must have applied some of the audit commands */
	applied_b = assay_test_metric(port_b, "assay_plan_commands_applied_total");
	assert_true(applied_b > 0);
	assert_true(assay_test_metric(port_a, "assay_plan_commands_applied_total") + applied_b ==
	            3 * NAUD + 1);

	/* phase 3: b leaves; a takes every partition and must know what b wrote */
	assert_int_equal(assay_test_service_stop(b), 0);
	for (int k = 0; k < NAUD; k++) {
		int i = open_sent[k];

		send_bytes(&c, c.sent[i].key, c.sent[i].value, c.sent[i].len); /* ignored */
		send_complete_stds(&c, audits[k], only27, 1);
		send_complete_stds(&c, audits[k], only27, 1);
		snprintf(second_cmd[k], sizeof(second_cmd[k]), "%s", c.last_id);
		send_dm(&c, audits[k], "ISO27001_2022", "lead");
		snprintf(dm_cmd[k], sizeof(dm_cmd[k]), "%s", c.last_id);
	}
	assay_test_pg_wait(e.url, "SELECT count(*) FROM assay_plan_commands", 6 * NAUD + 1, 120000);
	assert_int_equal(assay_test_service_stop(a), 0);

	/* events: each outcome exactly once */
	r = assay_test_read_topic(e.events, "read_committed", 6 * NAUD + 1, 2000, 30000, &n);
	assert_int_equal(n, 6 * NAUD + 1);
	for (size_t i = 0; i < n; i++)
		for (size_t k = i + 1; k < n; k++)
			assert_string_not_equal(r[i].event_id ? r[i].event_id : "",
			                        r[k].event_id ? r[k].event_id : "");
	assert_int_equal(count_type(r, n, "org.assay.v1.ClientRegistered"), NAUD);
	assert_int_equal(count_type(r, n, "org.assay.v1.AuditorRecorded"), 1);
	for (int k = 0; k < NAUD; k++) {
		assert_int_equal(count_key_type(r, n, audits[k], "org.assay.v1.AuditOpened"), 1);
		assert_int_equal(count_key_type(r, n, audits[k], "org.assay.v1.TeamMemberAssigned"),
		                 1);
		assert_int_equal(count_key_type(r, n, audits[k], "org.assay.v1.StageCompleted"), 1);
		assert_int_equal(
		        count_key_type(r, n, audits[k], "org.assay.v1.AuditCommandRefused"), 2);
		assert_true(refusal_codes(c.codec, r, n, second_cmd[k], codes, sizeof(codes), key,
		                          sizeof(key)));
		assert_string_equal(codes, "STAGE_ALREADY_COMPLETED");
		assert_string_equal(key, audits[k]);
		assert_true(refusal_codes(c.codec, r, n, dm_cmd[k], codes, sizeof(codes), key,
		                          sizeof(key)));
		assert_string_equal(codes, "NOT_COMPETENT;TEAM_MEMBER_AS_DECISION_MAKER");
	}
	assay_test_records_free(r, n);

	/* rows: one of each, no command twice */
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_audits"),
	                 NAUD);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_team"), NAUD);
	assert_int_equal(
	        assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_stage_completions"),
	        NAUD);
	assert_int_equal(assay_test_pg_scalar(e.url, "SELECT count(*) FROM assay_plan_cycles WHERE "
	                                             "stage1_completed_on = DATE '2025-07-03'"),
	                 NAUD);
	assert_int_equal(assay_test_pg_scalar(e.url,
	                                      "SELECT count(*) FROM assay_plan_commands WHERE "
	                                      "outcome = 'refused'"),
	                 2 * NAUD);

	for (size_t i = 0; i < c.nsent; i++)
		free(c.sent[i].value);
	rd_kafka_destroy(c.producer);
	assay_codec_destroy(c.codec);
	assay_registry_destroy(c.reg);
	assay_test_pg_drop_db(e.url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_plan_end_to_end, assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_plan_two_instances, assay_test_service_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
