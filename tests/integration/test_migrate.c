/*
 * Migrations against the local PostgreSQL, each test in a fresh database: the embedded files
 * applied and recorded once, concurrent migrators serialized by the advisory lock, and the
 * fatal errors (changed file, missing file, bad name, failing migration) naming the file,
 * with the lock released on every path.
 */
#include "assay_test.h"
#include "assay_test_pg.h"
#include "assay_migrate.h"
#include "assay_pg.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
	*state = assay_test_pg_db_new("test_migrate");
	return 0;
}

static int teardown(void **state)
{
	assay_test_pg_db_destroy(*state);
	return 0;
}

/* Advisory locks this session holds: 0 after every assay_migrate() call. */
static long long advisory_locks(PGconn *conn)
{
	return assay_test_pg_int(conn,
	                         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
	                         "pid = pg_backend_pid()");
}

static void sha256_hex(const char *data, size_t size, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	assert_int_equal(EVP_Digest(data, size, md, &n, EVP_sha256(), NULL), 1);
	for (i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

#define FILE_ENTRY(n, text)               \
	{                                 \
		n, text, sizeof(text) - 1 \
	}

static void test_fresh_db_applies_all_once(void **state)
{
	struct assay_test_pg_db *fx = *state;
	char err[512], sql[256], hex[65];
	size_t applied = 99, i;
	PGresult *res = NULL;

	assert_true(assay_embedded_migrations_count >= 1);
	if (assay_migrate_run(fx->conn, assay_embedded_migrations, &applied, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(applied, assay_embedded_migrations_count);
	assert_int_equal(advisory_locks(fx->conn), 0);

	/* recorded: version, name and the SHA-256 of the applied text, in order */
	assert_int_equal(assay_pg_query(fx->conn,
	                                "SELECT version, name, sha256, applied_at IS NOT NULL "
	                                "FROM assay_migrations ORDER BY version",
	                                0, NULL, &res, err, sizeof(err)),
	                 0);
	assert_int_equal(PQntuples(res), assay_embedded_migrations_count);
	for (i = 0; i < assay_embedded_migrations_count; i++) {
		const struct assay_embedded *f = &assay_embedded_migrations[i];

		assert_int_equal(strtol(PQgetvalue(res, (int)i, 0), NULL, 10),
		                 assay_migrate_version(f->name));
		assert_string_equal(PQgetvalue(res, (int)i, 1), f->name);
		sha256_hex(f->data, f->size, hex);
		assert_string_equal(PQgetvalue(res, (int)i, 2), hex);
		assert_string_equal(PQgetvalue(res, (int)i, 3), "t");
	}
	PQclear(res);
	/* the schema of 001_core.sql exists */
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM assay_offsets"), 0);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM assay_outbox"), 0);

	/* a second run applies nothing and changes nothing */
	applied = 99;
	if (assay_migrate_run(fx->conn, assay_embedded_migrations, &applied, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(applied, 0);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM assay_migrations"),
	                 assay_embedded_migrations_count);
	assert_int_equal(assay_migrate(fx->conn, assay_embedded_migrations, err, sizeof(err)), 0);

	/* a new file is applied on top, alone */
	{
		struct assay_embedded files[64];
		size_t n = assay_embedded_migrations_count;

		assert_true(n + 2 <= 64);
		memcpy(files, assay_embedded_migrations, n * sizeof(files[0]));
		files[n] = (struct assay_embedded)FILE_ENTRY(
		        "900_extra.sql", "CREATE TABLE extra (id int);\n"
		                         "INSERT INTO extra VALUES (1), (2);\n");
		files[n + 1] = (struct assay_embedded){NULL, NULL, 0};
		applied = 99;
		if (assay_migrate_run(fx->conn, files, &applied, err, sizeof(err)) != 0)
			fail_msg("%s", err);
		assert_int_equal(applied, 1);
		assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM extra"), 2);
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM assay_migrations WHERE version = 900 AND "
		         "name = '900_extra.sql'");
		assert_int_equal(assay_test_pg_int(fx->conn, sql), 1);
	}
	assert_int_equal(advisory_locks(fx->conn), 0);
}

struct racer {
	const char *url;
	const struct assay_embedded *files;
	pthread_barrier_t *barrier;
	size_t applied;
	int rc;
	char err[512];
};

static void *race(void *arg)
{
	struct racer *r = arg;
	PGconn *conn = NULL;

	r->rc = assay_pg_connect(r->url, &conn, r->err, sizeof(r->err));
	pthread_barrier_wait(r->barrier);
	if (r->rc == 0)
		r->rc = assay_migrate_run(conn, r->files, &r->applied, r->err, sizeof(r->err));
	PQfinish(conn);
	return NULL;
}

static void test_concurrent_migrators_apply_once(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_embedded files[64];
	size_t n = assay_embedded_migrations_count, i;
	struct racer racers[2];
	pthread_t threads[2];
	pthread_barrier_t barrier;

	/* The embedded files plus a slow one, so the two runs overlap: without the lock both
	 * would run 901 and the second CREATE TABLE would fail (42P07), or 001 twice. */
	assert_true(n + 2 <= 64);
	memcpy(files, assay_embedded_migrations, n * sizeof(files[0]));
	files[n] = (struct assay_embedded)FILE_ENTRY(
	        "901_slow.sql", "SELECT pg_sleep(0.3);\nCREATE TABLE slow (id int);\n"
	                        "INSERT INTO slow VALUES (1);\n");
	files[n + 1] = (struct assay_embedded){NULL, NULL, 0};

	assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
	for (i = 0; i < 2; i++) {
		racers[i] = (struct racer){.url = fx->url, .files = files, .barrier = &barrier};
		assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&barrier);
	for (i = 0; i < 2; i++)
		if (racers[i].rc != 0)
			fail_msg("migrator %zu: %s", i, racers[i].err);
	assert_int_equal(racers[0].applied + racers[1].applied, n + 1);
	assert_true(racers[0].applied == 0 || racers[1].applied == 0); /* one did it all */
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM assay_migrations"),
	                 n + 1);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM slow"), 1);
}

static void test_changed_file_is_fatal(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_embedded files[64];
	size_t n = assay_embedded_migrations_count, applied = 99;
	char err[512];

	if (assay_migrate(fx->conn, assay_embedded_migrations, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(n + 2 <= 64);
	memcpy(files, assay_embedded_migrations, (n + 1) * sizeof(files[0]));
	assert_string_equal(files[0].name, "001_core.sql");
	files[0].data = "CREATE TABLE assay_schemas (id int); -- edited\n";
	files[0].size = strlen(files[0].data);
	files[n] =
	        (struct assay_embedded)FILE_ENTRY("950_later.sql", "CREATE TABLE later (id int);");
	files[n + 1] = (struct assay_embedded){NULL, NULL, 0};

	assert_int_equal(assay_migrate_run(fx->conn, files, &applied, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_string_equal(err, "migration 001_core.sql was changed after it was applied");
	assert_int_equal(applied, 0);
	/* nothing after the check ran: 950 was not applied */
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM assay_migrations WHERE "
	                                             "version = 950"),
	                 0);
	assert_int_equal(advisory_locks(fx->conn), 0);

	/* a recorded migration whose file is gone */
	assert_int_equal(assay_migrate(fx->conn, &assay_embedded_migrations[1], err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "migration 001_core.sql (version 1) was applied but its file "
	                            "is missing"));
	assert_int_equal(advisory_locks(fx->conn), 0);

	/* the same version under another name */
	memcpy(files, assay_embedded_migrations, (n + 1) * sizeof(files[0]));
	files[0].name = "001_renamed.sql";
	assert_int_equal(assay_migrate(fx->conn, files, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "migration 001_renamed.sql has version 1"));
	assert_int_equal(advisory_locks(fx->conn), 0);

	/* the originals still pass */
	assert_int_equal(assay_migrate(fx->conn, assay_embedded_migrations, err, sizeof(err)), 0);
}

static void test_bad_names_are_fatal(void **state)
{
	struct assay_test_pg_db *fx = *state;
	char err[512];
	const struct assay_embedded bad_name[] = {
	        FILE_ENTRY("001_core.sql", "SELECT 1;"),
	        FILE_ENTRY("2-extra.sql", "SELECT 2;"),
	        {NULL, NULL, 0},
	};
	const struct assay_embedded duplicate[] = {
	        FILE_ENTRY("001_a.sql", "SELECT 1;"),
	        FILE_ENTRY("001_b.sql", "SELECT 2;"),
	        {NULL, NULL, 0},
	};
	const struct assay_embedded unordered[] = {
	        FILE_ENTRY("010_a.sql", "SELECT 1;"),
	        FILE_ENTRY("9_b.sql", "SELECT 2;"),
	        {NULL, NULL, 0},
	};

	assert_int_equal(assay_migrate(fx->conn, bad_name, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_string_equal(err, "migration file name 2-extra.sql invalid: expected NNN_name.sql");
	assert_int_equal(assay_migrate(fx->conn, duplicate, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "migration 001_b.sql invalid"));
	assert_int_equal(assay_migrate(fx->conn, unordered, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "migration 9_b.sql invalid"));
	/* refused before touching the database */
	assert_int_equal(assay_test_pg_int(fx->conn,
	                                   "SELECT count(*) FROM pg_tables WHERE tablename = "
	                                   "'assay_migrations'"),
	                 0);
}

static void test_failing_migration_rolls_back(void **state)
{
	struct assay_test_pg_db *fx = *state;
	char err[512];
	size_t applied = 99;
	const struct assay_embedded files[] = {
	        FILE_ENTRY("001_ok.sql", "CREATE TABLE ok (id int);"),
	        FILE_ENTRY("002_broken.sql", "CREATE TABLE half (id int);\nCREATE TABLEX nope;\n"),
	        FILE_ENTRY("003_after.sql", "CREATE TABLE after (id int);"),
	        {NULL, NULL, 0},
	};
	const struct assay_embedded gap[] = {
	        FILE_ENTRY("001_ok.sql", "CREATE TABLE ok (id int);"),
	        FILE_ENTRY("003_after.sql", "CREATE TABLE after (id int);"),
	        {NULL, NULL, 0},
	};

	assert_int_equal(assay_migrate_run(fx->conn, files, &applied, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "migration 002_broken.sql failed: syntax error"));
	assert_non_null(strstr(err, "(sqlstate 42601)"));
	assert_int_equal(applied, 1);
	assert_int_equal(PQtransactionStatus(fx->conn), PQTRANS_IDLE);
	assert_int_equal(advisory_locks(fx->conn), 0);
	/* 001 committed, 002 entirely rolled back, 003 never attempted */
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM assay_migrations"), 1);
	assert_int_equal(assay_test_pg_int(fx->conn,
	                                   "SELECT count(*) FROM pg_tables WHERE tablename IN "
	                                   "('ok', 'half', 'after')"),
	                 1);

	/* applying 003 now leaves a hole at 002 that can never be filled in order */
	applied = 99;
	if (assay_migrate_run(fx->conn, gap, &applied, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(applied, 1);
	assert_int_equal(assay_migrate_run(fx->conn, files, &applied, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(
	        strstr(err, "migration 002_broken.sql is older than the applied version 3"));
	assert_int_equal(advisory_locks(fx->conn), 0);

	/* a migration that tries to manage its own transaction */
	{
		const struct assay_embedded committing[] = {
		        FILE_ENTRY("001_ok.sql", "CREATE TABLE ok (id int);"),
		        FILE_ENTRY("003_after.sql", "CREATE TABLE after (id int);"),
		        FILE_ENTRY("004_commit.sql", "CREATE TABLE c (id int); COMMIT;"),
		        {NULL, NULL, 0},
		};

		assert_int_equal(assay_migrate(fx->conn, committing, err, sizeof(err)),
		                 ASSAY_ERR_FATAL);
		assert_non_null(strstr(err, "migration 004_commit.sql failed: it ended the "
		                            "transaction"));
		assert_int_equal(advisory_locks(fx->conn), 0);
	}

	/* COPY to or from the client cannot run in a migration; the connection survives */
	{
		const struct assay_embedded copy_in[] = {
		        FILE_ENTRY("001_ok.sql", "CREATE TABLE ok (id int);"),
		        FILE_ENTRY("003_after.sql", "CREATE TABLE after (id int);"),
		        FILE_ENTRY("005_copy.sql", "COPY ok FROM STDIN;"),
		        {NULL, NULL, 0},
		};
		const struct assay_embedded copy_out[] = {
		        FILE_ENTRY("001_ok.sql", "CREATE TABLE ok (id int);"),
		        FILE_ENTRY("003_after.sql", "CREATE TABLE after (id int);"),
		        FILE_ENTRY("005_copy.sql", "INSERT INTO ok VALUES (1); COPY ok TO STDOUT;"),
		        {NULL, NULL, 0},
		};

		assert_int_equal(assay_migrate(fx->conn, copy_in, err, sizeof(err)),
		                 ASSAY_ERR_FATAL);
		assert_non_null(
		        strstr(err, "migration 005_copy.sql failed: copy is not supported"));
		assert_int_equal(advisory_locks(fx->conn), 0);
		assert_int_equal(assay_migrate(fx->conn, copy_out, err, sizeof(err)),
		                 ASSAY_ERR_FATAL);
		assert_non_null(
		        strstr(err, "migration 005_copy.sql failed: copy is not supported"));
		assert_int_equal(advisory_locks(fx->conn), 0);
		assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM ok"), 0);
	}

	/* inside a caller's transaction: refused */
	assert_int_equal(assay_pg_exec(fx->conn, "BEGIN", err, sizeof(err)), 0);
	assert_int_equal(assay_migrate(fx->conn, gap, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "in a transaction"));
	assert_int_equal(assay_pg_exec(fx->conn, "ROLLBACK", err, sizeof(err)), 0);
}

/* Each test gets its own fresh database. */
#define FRESH(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        FRESH(test_fresh_db_applies_all_once),
	        FRESH(test_concurrent_migrators_apply_once),
	        FRESH(test_changed_file_is_fatal),
	        FRESH(test_bad_names_are_fatal),
	        FRESH(test_failing_migration_rolls_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
