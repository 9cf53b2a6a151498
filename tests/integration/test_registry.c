/*
 * The PostgreSQL schema registry against the local stack, in a fresh database of its own:
 * stable ids for the same (and whitespace-different) text, ids that survive a new handle,
 * one id under concurrent registration from two connections, unknown ids rejected, a killed
 * connection replaced transparently, and a missing table reported as fatal.
 */
#include "assay_test.h"
#include "assay_err.h"
#include "assay_registry.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db {
	char name[64];
	char url[1024];
};

static const char thing_json[] =
        "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"org.assay.test\",\"fields\":["
        "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"count\",\"type\":\"long\"}]}";
static const char thing_spaced_json[] =
        "{\n  \"namespace\": \"org.assay.test\",\n  \"type\" : \"record\",\n  \"name\": "
        "\"Thing\",\n"
        "  \"doc\": \"the same schema, laid out differently\",\n  \"fields\": [\n"
        "    {\"name\": \"id\", \"type\": {\"type\": \"string\"}},\n"
        "    {\"name\": \"count\", \"type\": \"long\", \"default\": 0}\n  ]\n}\n";
static const char other_json[] =
        "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"org.assay.test\",\"fields\":["
        "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"count\",\"type\":\"int\"}]}";

static PGconn *connect_ok(const char *url)
{
	PGconn *conn = PQconnectdb(url);

	if (PQstatus(conn) != CONNECTION_OK)
		fail_msg("connect %s: %s", url, PQerrorMessage(conn));
	return conn;
}

static void exec_ok(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType status = PQresultStatus(res);

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
		PQclear(res);
		fail_msg("%s: %s", sql, msg);
	}
	PQclear(res);
}

/* The single value of a one-row, one-column query, as a long. */
static long query_long(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	long v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		PQclear(res);
		fail_msg("%s: %s", sql, PQerrorMessage(conn));
	}
	v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/* The base URL's parameters with dbname replaced, as a key='value' string. */
static void db_url(char *out, size_t size, const char *base, const char *dbname)
{
	PQconninfoOption *opts = PQconninfoParse(base, NULL);
	size_t len = 0;

	assert_non_null(opts);
	out[0] = '\0';
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		const char *val = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;

		if (val == NULL)
			continue;
		len += (size_t)snprintf(out + len, size - len, "%s='", o->keyword);
		for (const char *p = val; *p != '\0' && len + 3 < size; p++) {
			if (*p == '\'' || *p == '\\')
				out[len++] = '\\';
			out[len++] = *p;
		}
		assert_true(len + 3 < size);
		out[len++] = '\'';
		out[len++] = ' ';
		out[len] = '\0';
	}
	PQconninfoFree(opts);
}

/* The CREATE TABLE assay_schemas statement of sql/001_core.sql. */
static char *schemas_table_sql(void)
{
	FILE *fp = fopen(ASSAY_SOURCE_DIR "/sql/001_core.sql", "r");
	static char text[65536];
	size_t n;
	char *start, *end;

	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	start = strstr(text, "CREATE TABLE assay_schemas");
	assert_non_null(start);
	end = strstr(start, "\n);");
	assert_non_null(end);
	end[3] = '\0';
	return start;
}

static int group_setup(void **state)
{
	struct db *db = calloc(1, sizeof(*db));
	char sql[256];
	PGconn *admin, *conn;

	assert_non_null(db);
	assay_test_unique(db->name, sizeof(db->name), "test_registry");
	for (char *p = db->name; *p != '\0'; p++)
		*p = *p == '-' ? '_' : (char)tolower((unsigned char)*p);
	admin = connect_ok(assay_test_pg_url());
	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", db->name);
	exec_ok(admin, sql);
	PQfinish(admin);
	db_url(db->url, sizeof(db->url), assay_test_pg_url(), db->name);
	conn = connect_ok(db->url);
	exec_ok(conn, schemas_table_sql());
	PQfinish(conn);
	*state = db;
	return 0;
}

static int group_teardown(void **state)
{
	struct db *db = *state;
	char sql[256];
	PGconn *admin = connect_ok(assay_test_pg_url());

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db->name);
	exec_ok(admin, sql);
	PQfinish(admin);
	free(db);
	return 0;
}

static struct assay_registry *registry(const struct db *db)
{
	char errstr[256] = "";
	struct assay_registry *reg = assay_registry_pg_new(db->url, errstr, sizeof(errstr));

	if (reg == NULL)
		fail_msg("registry: %s", errstr);
	return reg;
}

static int32_t register_ok(struct assay_registry *reg, const char *json)
{
	char errstr[512] = "";
	int32_t id = 0;
	int rc = assay_registry_register(reg, json, &id, errstr, sizeof(errstr));

	if (rc != 0)
		fail_msg("register: %s: %s", assay_err_name(rc), errstr);
	assert_true(id > 0);
	return id;
}

static void test_same_text_same_id(void **state)
{
	struct db *db = *state;
	struct assay_registry *reg = registry(db);
	PGconn *conn = connect_ok(db->url);
	int32_t a = register_ok(reg, thing_json);
	int32_t b = register_ok(reg, thing_json);
	int32_t spaced = register_ok(reg, thing_spaced_json);
	int32_t other = register_ok(reg, other_json);
	char sql[256];

	assert_int_equal(a, b);
	assert_int_equal(spaced, a);
	assert_int_not_equal(other, a);
	/* one row each, the fingerprint is SHA-256 of the stored text, the full name is right */
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM assay_schemas WHERE id IN (%d, %d) AND full_name = "
	         "'org.assay.test.Thing' AND fingerprint = sha256(convert_to(schema_text, 'UTF8'))",
	         (int)a, (int)other);
	assert_int_equal(query_long(conn, sql), 2);
	PQfinish(conn);
	assay_registry_destroy(reg);
}

static void test_ids_survive_a_new_handle(void **state)
{
	struct db *db = *state;
	struct assay_registry *reg = registry(db);
	int32_t a = register_ok(reg, thing_json), again;
	char errstr[256] = "";
	char *text = NULL, *text2 = NULL;

	assert_int_equal(assay_registry_lookup(reg, a, &text, errstr, sizeof(errstr)), 0);
	assay_registry_destroy(reg);

	reg = registry(db);
	again = register_ok(reg, thing_spaced_json);
	assert_int_equal(again, a);
	assert_int_equal(assay_registry_lookup(reg, a, &text2, errstr, sizeof(errstr)), 0);
	assert_string_equal(text, text2);
	/* the stored text is the normalized one: parsing it gives back the same id */
	assert_int_equal(register_ok(reg, text2), a);
	free(text);
	free(text2);
	assay_registry_destroy(reg);
}

static void test_unknown_id_is_reject(void **state)
{
	struct db *db = *state;
	struct assay_registry *reg = registry(db);
	char errstr[256] = "";
	char *text = NULL;

	assert_int_equal(assay_registry_lookup(reg, 987654, &text, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_string_equal(errstr, "unknown schema id 987654");
	assert_null(text);
	assert_int_equal(assay_registry_lookup(reg, -1, &text, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assay_registry_destroy(reg);
}

#define CONCURRENT_SCHEMAS 40

struct racer {
	const struct db *db;
	pthread_barrier_t *barrier;
	int32_t ids[CONCURRENT_SCHEMAS];
	int rc;
	char errstr[256];
};

static void concurrent_json(char *buf, size_t size, int i)
{
	snprintf(buf, size,
	         "{\"type\":\"record\",\"name\":\"Race%d\",\"namespace\":\"org.assay.test\","
	         "\"fields\":[{\"name\":\"n\",\"type\":\"long\"}]}",
	         i);
}

/* Registers the same schemas as the other racer, meeting it at a barrier before each one. */
static void *race(void *arg)
{
	struct racer *r = arg;
	struct assay_registry *reg =
	        assay_registry_pg_new(r->db->url, r->errstr, sizeof(r->errstr));
	char json[256];

	r->rc = reg == NULL ? ASSAY_ERR_FATAL : 0;
	for (int i = 0; i < CONCURRENT_SCHEMAS; i++) {
		pthread_barrier_wait(r->barrier);
		if (r->rc != 0)
			continue;
		concurrent_json(json, sizeof(json), i);
		r->rc = assay_registry_register(reg, json, &r->ids[i], r->errstr,
		                                sizeof(r->errstr));
	}
	assay_registry_destroy(reg);
	return NULL;
}

static void test_concurrent_registration_one_id(void **state)
{
	struct db *db = *state;
	pthread_barrier_t barrier;
	struct racer racers[2];
	pthread_t threads[2];
	PGconn *conn;
	char sql[256];

	memset(racers, 0, sizeof(racers));
	assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
	for (int t = 0; t < 2; t++) {
		racers[t].db = db;
		racers[t].barrier = &barrier;
		assert_int_equal(pthread_create(&threads[t], NULL, race, &racers[t]), 0);
	}
	for (int t = 0; t < 2; t++)
		assert_int_equal(pthread_join(threads[t], NULL), 0);
	pthread_barrier_destroy(&barrier);
	for (int t = 0; t < 2; t++)
		if (racers[t].rc != 0)
			fail_msg("racer %d: %s: %s", t, assay_err_name(racers[t].rc),
			         racers[t].errstr);
	for (int i = 0; i < CONCURRENT_SCHEMAS; i++) {
		assert_true(racers[0].ids[i] > 0);
		assert_int_equal(racers[0].ids[i], racers[1].ids[i]);
		if (i > 0)
			assert_int_not_equal(racers[0].ids[i], racers[0].ids[i - 1]);
	}
	conn = connect_ok(db->url);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM assay_schemas WHERE full_name LIKE 'org.assay.test.Race%%'");
	assert_int_equal(query_long(conn, sql), CONCURRENT_SCHEMAS);
	PQfinish(conn);
}

/* The registry's connection is killed between calls: the next call reconnects by itself. */
static void test_reconnects_after_connection_loss(void **state)
{
	struct db *db = *state;
	struct assay_registry *reg = registry(db);
	int32_t a = register_ok(reg, thing_json);
	PGconn *conn = connect_ok(db->url);
	char errstr[256] = "", sql[512];
	char *text = NULL;

	snprintf(sql, sizeof(sql),
	         "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE "
	         "datname = "
	         "'%s' AND application_name = 'assay-registry'",
	         db->name);
	assert_int_equal(query_long(conn, sql), 1);
	if (assay_registry_lookup(reg, a, &text, errstr, sizeof(errstr)) != 0)
		fail_msg("lookup after the connection was killed: %s", errstr);
	free(text);
	assert_int_equal(register_ok(reg, thing_json), a);
	PQfinish(conn);
	assay_registry_destroy(reg);
}

/* Runs last: without the table the registry answers fatal, not retry. */
static void test_missing_table_is_fatal(void **state)
{
	struct db *db = *state;
	struct assay_registry *reg = registry(db);
	PGconn *conn = connect_ok(db->url);
	char errstr[512] = "";
	int32_t id = 0;
	char *text = NULL;

	exec_ok(conn, "DROP TABLE assay_schemas");
	PQfinish(conn);
	assert_int_equal(assay_registry_register(reg, thing_json, &id, errstr, sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "registry insert"));
	assert_non_null(strstr(errstr, "assay_schemas"));
	assert_int_equal(assay_registry_lookup(reg, 1, &text, errstr, sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assay_registry_destroy(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_same_text_same_id),
	        cmocka_unit_test(test_ids_survive_a_new_handle),
	        cmocka_unit_test(test_unknown_id_is_reject),
	        cmocka_unit_test(test_concurrent_registration_one_id),
	        cmocka_unit_test(test_reconnects_after_connection_loss),
	        cmocka_unit_test(test_missing_table_is_fatal),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
