/*
 * PostgreSQL isolation for tests: a fresh, uniquely named database per test run on the
 * server of ASSAY_PG_URL, so tests that need schema never share it with each other, with
 * an earlier run, or with the services; and the small queries tests check rows with.
 * Failures fail the current cmocka test.
 */
#ifndef ASSAY_TEST_PG_H
#define ASSAY_TEST_PG_H

#include <stddef.h>

#include <libpq-fe.h>

/*
 * Creates a database named "<prefix>_<pid>_<counter>_<random>" (lowercased; any character
 * other than a-z, 0-9 and '_' becomes '_'; at most 63 bytes) on the ASSAY_PG_URL server and
 * writes its URL into url (same host, port, user, password and options, the new dbname).
 * url: size bytes, not NULL; prefix: not NULL, e.g. "test_migrate".
 */
void assay_test_pg_fresh_db(char *url, size_t size, const char *prefix);

/*
 * Drops the database that url names, with (FORCE): sessions still connected are ended.
 * A database that no longer exists is not an error. url: not NULL.
 */
void assay_test_pg_drop_db(const char *url);

/* Applies the embedded migrations (assay_embedded_migrations) to the database at url. */
void assay_test_pg_migrate(const char *url);

/* A fresh database (assay_test_pg_fresh_db) and one connection to it, for a test's setup. */
struct assay_test_pg_db {
	char url[512];
	PGconn *conn;
};

/* A fresh database "<prefix>_..." with conn connected to it; free with
 * assay_test_pg_db_destroy (conn closed, database dropped). */
struct assay_test_pg_db *assay_test_pg_db_new(const char *prefix);
void assay_test_pg_db_destroy(struct assay_test_pg_db *db);

/* Runs sql (any statement; its result is discarded). */
void assay_test_pg_exec(PGconn *conn, const char *sql);

/* The first column of the one row sql returns (strtoll of its text: NULL counts as 0); fails
 * the test when sql fails or returns other than one row. */
long long assay_test_pg_int(PGconn *conn, const char *sql);

/* The first column of the first row sql returns on a new connection to url, or -1 when there
 * is no row or it is NULL. */
long assay_test_pg_scalar(const char *url, const char *sql);

/* Waits, polling every 100 ms, until assay_test_pg_scalar(url, sql) is want; fails the test
 * with the last value after timeout_ms. */
void assay_test_pg_wait(const char *url, const char *sql, long want, int timeout_ms);

#endif
